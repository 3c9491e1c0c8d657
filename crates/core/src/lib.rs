//! Tessera core: the domain (tenants, principals, grants, tokens, keys) and the engine
//! (`Authority`) that decides. No I/O here: storage is the `Store` port, time and
//! randomness are injected.

// Input must never reach a panic: no unwrap, expect or indexing outside tests (issue 17). Where
// one is proven unreachable, it says why in an `#[allow]` on the spot.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod audit;
pub mod authority;
pub mod clock;
pub mod device;
pub mod error;
pub mod grant;
pub mod keys;
pub mod name;
pub mod page;
pub mod principal;
pub mod revocation;
pub mod scan;
pub mod secret;
pub mod store;
pub mod tenant;
pub mod throttle;
pub mod token;
pub mod totp;

pub use authority::{Authority, DEFAULT_TENANT, Settings};
pub use error::{Error, ErrorKind, Result};
pub use name::{ClientId, RedirectUri, TenantName, Username};
