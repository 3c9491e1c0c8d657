//! The attack suite (issue 17): one test per attack, each failing if the attack succeeds, run
//! over HTTP against the real `tessera serve` on every front where the attack applies.
//!
//! Forged, altered and out-of-date tokens are presented at every route that takes a bearer
//! token (standard introspection and token exchange, Tapis userinfo and v2, SFTPGo's two
//! logouts, ICA's token and refresh, DocSpace), each with a control showing that the same
//! route accepts the genuine token, so that no refusal is a route that refuses everything.
//!
//! Attacks already covered by the `api` suite, not repeated here:
//! - a token of one front at another, SFTPGo admin tokens at the user API and back, ICA and
//!   DocSpace tokens elsewhere, `typ` other than `at+jwt`, `crit` at introspection, Tapis,
//!   ICA, DocSpace and token exchange: `api/audience.rs`;
//! - API-key tokens laundered through exchanges, logout and revocation ending chains:
//!   `api/chains.rs`;
//! - concurrent password guessing at one node and at two PostgreSQL nodes, disabled accounts
//!   answering as wrong passwords, device user-code look-ups limited per address and per
//!   tenant: `api/limits.rs`, `api/errors.rs`;
//! - one refresh token presented 100 times at two nodes wins once: `api/nodes.rs`;
//! - oversized bodies in each front's format, repeated form parameters: `api/errors.rs`;
//! - the browser flow's attacks (a reused authorization code, which also revokes the tokens
//!   of its first redemption; PKCE downgrades: `plain`, a missing or wrong verifier, the
//!   challenge as verifier, a verifier sent for a code issued without PKCE; a code of another
//!   client or redirect URI; redirect URI tricks: prefix, suffix, userinfo, fragment, another
//!   port or scheme, case; an unknown client; CSRF on every form; a replayed session cookie
//!   after logout): `api/browser.rs`, where the login pages are driven as a browser would.
//!
//! Device user codes: 8 characters of a 20-consonant alphabet, 20^8 ~ 2^34.6 codes
//! (`tessera_core::device`; `guessing` checks that codes are drawn as stated). A tenant's
//! failed look-ups are capped (100 per 5-minute window by default, `api/limits.rs`) and a
//! code lives 10 minutes (at most three windows), so one pending code is found with
//! probability at most 300 / 20^8 ~ 1.2e-8, whatever the attacker's number of addresses
//! (README, "Device user codes").

#[path = "../api/harness.rs"]
mod harness;
#[path = "../api/pg.rs"]
mod pg;

mod fronts;

mod forgery;
mod guessing;
mod hygiene;
mod input;
mod panics;
mod replay;
mod tenants;
mod timing;
