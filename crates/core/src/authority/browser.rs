//! Browser sign-in: the authorization endpoint's checks (RFC 6749 section 4.1, RFC 7636 with
//! S256 only, RFC 8252 loopback redirects), browser sessions, remembered consent,
//! authorization codes and their redemption, and OpenID Connect (ID token, userinfo).

use super::grants::Holder;
use super::{Audience, Authority, TenantState};
use crate::audit::{ActorKind, AuditEvent, EventKind};
use crate::error::{Error, ErrorKind, Result};
use crate::grant::IssuedTokens;
use crate::keys::Alg;
use crate::name::{ClientId, TenantName, Username};
use crate::principal::{Client, GrantType, User, parse_scope};
use crate::secret::{self, Secret, prefix};
use crate::store::{BrowserSession, CodeRecord};
use crate::token::{ClaimSet, Provenance, amr};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;

/// How long an authorization code lives (RFC 6749 section 4.1.2 recommends at most 10 minutes).
pub const CODE_TTL: i64 = 60;
/// How long the password step of a sign-in stands while the person types their one-time code.
const SECOND_STEP_TTL: i64 = 300;
/// The OpenID Connect scopes every client of the code flow may ask for.
pub const OIDC_SCOPES: [&str; 3] = ["openid", "profile", "email"];
/// `acr` values: a password alone, or a password and a second factor.
pub const ACR_PASSWORD: &str = "urn:tessera:acr:pwd";
pub const ACR_MFA: &str = "urn:tessera:acr:mfa";

/// An authorization request (RFC 6749 section 4.1.1, OpenID Connect Core 3.1.2.1) as the
/// front read it from the query.
#[derive(Debug, Clone, Default)]
pub struct AuthorizeRequest {
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
}

/// OpenID Connect `prompt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// Sign in if there is no session, ask for consent if not given before.
    Default,
    /// Show nothing: `login_required` or `consent_required` instead.
    None,
    /// Sign in again even with a session.
    Login,
    /// Ask for consent even if given before.
    Consent,
}

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct Authorization {
    pub client: Arc<Client>,
    /// Where the answer goes: one of the client's registered redirect URIs (exactly, but for
    /// a loopback address's port).
    pub redirect_uri: String,
    pub state: Option<String>,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
}

/// Why an authorization request failed.
#[derive(Debug, Clone)]
pub enum AuthorizeError {
    /// The client or its redirect URI cannot be trusted: tell the person, redirect nowhere.
    Page(Error),
    /// Sent back to the client at its redirect URI (RFC 6749 section 4.1.2.1).
    Redirect { redirect_uri: String, state: Option<String>, error: Error },
}

impl Authorization {
    /// `error` for the client, at its redirect URI.
    pub fn fail(&self, error: Error) -> AuthorizeError {
        AuthorizeError::Redirect { redirect_uri: self.redirect_uri.clone(), state: self.state.clone(), error }
    }

    pub fn scope(&self) -> Option<String> {
        (!self.scopes.is_empty()).then(|| self.scopes.join(" "))
    }
}

/// Where a sign-in at the login page stands.
#[derive(Debug)]
pub enum SignInStep {
    /// Signed in: the cookie's secret (shown once) and the session.
    Done(Secret, BrowserSession),
    /// The password was right; the one-time code is next. The ticket stands for the password
    /// step (sealed, for this tenant and user, for a few minutes).
    SecondFactor { ticket: String },
    /// The password was right, and the account must have a second factor it does not have
    /// yet: the person sets one up (this secret, in their authenticator app) and confirms it
    /// with a first code, under the ticket of the password step.
    Enrol { ticket: String, enrolment: super::TotpEnrolment },
    /// Set up and signed in: the cookie's secret, the session, and the recovery codes
    /// (shown once).
    Enrolled(Secret, BrowserSession, Vec<String>),
}

/// The OpenID Connect userinfo answer (Core section 5.3.2): standard claims of the profile,
/// as the token's scopes allow.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The claims of an ID token (OpenID Connect Core section 2).
#[derive(Debug, Serialize)]
struct IdClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    acr: &'static str,
    amr: &'a [String],
    at_hash: String,
    sid: &'a str,
    azp: &'a str,
}

/// What the token endpoint was given for the authorization code grant.
pub(super) struct PresentedCode {
    pub code: Secret,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<Secret>,
}

/// Whether `requested` names the registered redirect URI `registered`: the same string, or
/// (RFC 8252 section 7.3) the same loopback IP literal URI with any port.
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    if requested.contains('#') {
        return false;
    }
    if registered == requested {
        return true;
    }
    matches!((loopback_without_port(registered), loopback_without_port(requested)), (Some(a), Some(b)) if a == b)
}

/// `http://127.0.0.1[:port]/rest` or `http://[::1][:port]/rest`, without the port.
fn loopback_without_port(uri: &str) -> Option<String> {
    let rest = uri.strip_prefix("http://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = ["127.0.0.1", "[::1]"].into_iter().find(|h| authority.starts_with(h))?;
    let port = &authority[host.len()..];
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    port_ok.then(|| format!("http://{host}{path}"))
}

/// RFC 7636 section 4.1: 43-128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 challenge of a verifier (RFC 7636 section 4.2).
pub fn s256(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// OpenID Connect `at_hash`: the left half of the access token's hash, with the hash of the
/// signing algorithm (SHA-512 for Ed25519, SHA-256 for ES256 and RS256).
fn at_hash(alg: Alg, access_token: &str) -> String {
    let algorithm = match alg {
        Alg::EdDSA => &aws_lc_rs::digest::SHA512,
        Alg::ES256 | Alg::RS256 => &aws_lc_rs::digest::SHA256,
    };
    let d = aws_lc_rs::digest::digest(algorithm, access_token.as_bytes());
    let (left, _) = d.as_ref().split_at(d.as_ref().len() / 2);
    URL_SAFE_NO_PAD.encode(left)
}

fn sign_in_ticket_context(tenant: &str) -> String {
    format!("sign-in-ticket:{tenant}")
}

impl Authority {
    // ----- the authorization request ------------------------------------------------------

    /// Check an authorization request. The client and the redirect URI are checked first:
    /// until both are known good, errors are for the person (never a redirect to a URI the
    /// client did not register); after, they go back to the client.
    pub async fn authorize_request(
        &self,
        tenant: &str,
        req: AuthorizeRequest,
    ) -> std::result::Result<Authorization, AuthorizeError> {
        let page = AuthorizeError::Page;
        let ts = self.tenant(tenant).map_err(page)?;
        let client_id = req.client_id.as_deref().ok_or_else(|| page(Error::invalid_request("client_id is missing")))?;
        let client = self
            .client(tenant, client_id)
            .await
            .map_err(page)?
            .ok_or_else(|| page(Error::invalid_client("unknown client")))?;
        let requested =
            req.redirect_uri.as_deref().ok_or_else(|| page(Error::invalid_request("redirect_uri is missing")))?;
        if !client.all_redirect_uris().any(|r| redirect_matches(r, requested)) {
            return Err(page(Error::invalid_request("redirect_uri is not registered for this client")));
        }
        let mut auth = Authorization {
            client: client.clone(),
            redirect_uri: requested.to_owned(),
            state: req.state,
            scopes: vec![],
            code_challenge: None,
            nonce: req.nonce,
            prompt: Prompt::Default,
            max_age: None,
        };
        match req.response_type.as_deref() {
            Some("code") => {}
            None => return Err(auth.fail(Error::invalid_request("response_type is missing"))),
            Some(_) => {
                let e = Error::new(ErrorKind::UnsupportedResponseType, "only response_type=code is supported");
                return Err(auth.fail(e));
            }
        }
        if !ts.tenant.allows(GrantType::AuthorizationCode) || !client.allows(GrantType::AuthorizationCode) {
            let e = Error::unauthorized_client("this client may not use the authorization code flow");
            return Err(auth.fail(e));
        }
        match (req.code_challenge, req.code_challenge_method.as_deref()) {
            (Some(c), Some("S256"))
                if c.len() == 43 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) =>
            {
                auth.code_challenge = Some(c);
            }
            (Some(_), Some("S256")) => {
                return Err(auth.fail(Error::invalid_request("code_challenge must be 43 base64url characters")));
            }
            (Some(_), None | Some(_)) => {
                return Err(auth.fail(Error::invalid_request("code_challenge_method must be S256")));
            }
            (None, Some(_)) => return Err(auth.fail(Error::invalid_request("code_challenge is missing"))),
            (None, None) if client.is_public() => {
                return Err(auth.fail(Error::invalid_request("a public client must use PKCE (code_challenge, S256)")));
            }
            (None, None) => {}
        }
        let mut allowed = client.scopes.clone();
        allowed.extend(OIDC_SCOPES.iter().map(|s| (*s).to_owned()));
        auth.scopes = match Self::grant_scope(&allowed, req.scope.as_deref()) {
            Ok(s) => s.as_deref().map(parse_scope).transpose().map_err(|e| auth.fail(e))?.unwrap_or_default(),
            Err(e) => return Err(auth.fail(e)),
        };
        auth.prompt = match req.prompt.as_deref() {
            None => Prompt::Default,
            Some("none") => Prompt::None,
            Some("login") => Prompt::Login,
            Some("consent") => Prompt::Consent,
            Some(_) => return Err(auth.fail(Error::invalid_request("prompt must be one of none, login, consent"))),
        };
        auth.max_age = match req.max_age.as_deref().map(str::parse::<i64>) {
            None => None,
            Some(Ok(m)) if m >= 0 => Some(m),
            Some(_) => return Err(auth.fail(Error::invalid_request("max_age must be a number of seconds"))),
        };
        if auth.nonce.as_ref().is_some_and(|n| n.len() > 512) || auth.state.as_ref().is_some_and(|s| s.len() > 2048) {
            return Err(auth.fail(Error::invalid_request("nonce or state is too long")));
        }
        Ok(auth)
    }

    /// Whether the session can answer `auth` without signing in again (`prompt`, `max_age`).
    pub fn session_fits(&self, auth: &Authorization, session: &BrowserSession) -> bool {
        auth.prompt != Prompt::Login && auth.max_age.is_none_or(|m| self.now() - session.auth_time <= m)
    }

    // ----- browser sessions ---------------------------------------------------------------

    /// The live session whose cookie is `cookie`, at this tenant. Use keeps it alive until
    /// its idle timeout; nothing does past its absolute end.
    pub async fn browser_session(&self, tenant: &str, cookie: Option<&str>) -> Result<Option<BrowserSession>> {
        let Some(cookie) = cookie.filter(|c| c.starts_with(prefix::BROWSER_SESSION) && c.len() < 200) else {
            return Ok(None);
        };
        let hash = secret::sha256_b64(cookie);
        let Some(s) = self.store.browser_session_get(&hash).await? else { return Ok(None) };
        let now = self.now();
        if s.tenant != tenant
            || s.revoked_at.is_some()
            || s.expires_at <= now
            || now - s.last_seen_at > self.settings.session_idle
        {
            return Ok(None);
        }
        match self.find_user(tenant, &s.username).await? {
            Some(u) if !u.disabled => {}
            _ => return Ok(None),
        }
        if now - s.last_seen_at >= 60 {
            self.store.browser_session_touch(&hash, now).await?;
        }
        Ok(Some(s))
    }

    /// The login page's first step: the password (counted against the brute-force limits by
    /// [`Self::sign_in`]). A user with two-factor authentication gets a ticket for the second.
    pub async fn browser_sign_in(
        &self,
        tenant: &str,
        username: &str,
        password: Secret,
        origin: Option<IpAddr>,
    ) -> Result<SignInStep> {
        match self.sign_in(tenant, username, password, None, origin).await {
            Ok((user, how)) => self.start_browser_session(&user, how).await,
            // The password was right (sign_in checks it before asking for the code).
            Err(e) if e.kind == ErrorKind::MfaRequired => {
                let exp = self.now() + SECOND_STEP_TTL;
                let plain = format!("{exp}\n{username}");
                let sealed = self.master.seal(self.rng.as_ref(), &sign_in_ticket_context(tenant), plain.as_bytes());
                let ticket = URL_SAFE_NO_PAD.encode(sealed);
                match self.find_user(tenant, username).await? {
                    Some(user) if !user.totp.enabled => {
                        Ok(SignInStep::Enrol { ticket, enrolment: self.start_totp(&user).await? })
                    }
                    _ => Ok(SignInStep::SecondFactor { ticket }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The login page's second step: a TOTP or recovery code for the user of `ticket`,
    /// counted against the same limits as the password.
    pub async fn browser_second_factor(
        &self,
        tenant: &str,
        ticket: &str,
        otp: Secret,
        origin: Option<IpAddr>,
    ) -> Result<SignInStep> {
        let expired = || Error::invalid_grant("the sign-in has expired; start again");
        let username = self.open_ticket(tenant, ticket)?;
        let username = username.as_str();
        let counters = self.limits.login(tenant, username, origin);
        let reserved_at = self.reserve_attempt(&counters).await?;
        let checked = match self.find_user(tenant, username).await? {
            Some(user) if !user.disabled => self.check_second_factor(&user, Some(&otp)).await.map(|()| user),
            _ => Err(expired()),
        };
        let failed = matches!(&checked, Err(e) if e.kind == ErrorKind::InvalidGrant);
        self.settle_attempt(&counters, reserved_at, failed, checked.is_ok()).await?;
        let user = checked?;
        let how = Provenance::sign_in(self.now(), true);
        self.start_browser_session(&user, how).await
    }

    /// The login page's enrolment step: the first code of the secret set up for the user of
    /// `ticket` (see [`SignInStep::Enrol`]), counted against the same limits as the password.
    pub async fn browser_enrol(
        &self,
        tenant: &str,
        ticket: &str,
        otp: Secret,
        origin: Option<IpAddr>,
    ) -> Result<SignInStep> {
        let expired = || Error::invalid_grant("the sign-in has expired; start again");
        let username = self.open_ticket(tenant, ticket)?;
        let counters = self.limits.login(tenant, &username, origin);
        let reserved_at = self.reserve_attempt(&counters).await?;
        let checked = match self.find_user(tenant, &username).await? {
            Some(user) if !user.disabled && !user.totp.enabled => {
                self.finish_totp(&user, otp.expose()).await.map(|codes| (user, codes))
            }
            _ => Err(expired()),
        };
        let failed = matches!(&checked, Err(e) if e.kind == ErrorKind::InvalidGrant);
        self.settle_attempt(&counters, reserved_at, failed, checked.is_ok()).await?;
        let e = AuditEvent::new(tenant, EventKind::TotpConfirm, ActorKind::User, Some(&username)).subject(&*username);
        self.record(e.detail("at=sign_in").outcome_of(&checked));
        let (user, codes) = checked?;
        match self.start_browser_session(&user, Provenance::sign_in(self.now(), true)).await? {
            SignInStep::Done(cookie, session) => Ok(SignInStep::Enrolled(cookie, session, codes)),
            other => Ok(other),
        }
    }

    /// The username a sign-in ticket of `tenant` stands for, if it is genuine and unexpired.
    fn open_ticket(&self, tenant: &str, ticket: &str) -> Result<String> {
        let expired = || Error::invalid_grant("the sign-in has expired; start again");
        let sealed = URL_SAFE_NO_PAD.decode(ticket).map_err(|_| expired())?;
        let plain = self.master.open(&sign_in_ticket_context(tenant), &sealed).map_err(|_| expired())?;
        let plain = std::str::from_utf8(&plain).map_err(|_| expired())?;
        let (exp, username) = plain.split_once('\n').ok_or_else(expired)?;
        if exp.parse::<i64>().map_err(|_| expired())? <= self.now() {
            return Err(expired());
        }
        Ok(username.to_owned())
    }

    async fn start_browser_session(&self, user: &User, how: Provenance) -> Result<SignInStep> {
        let now = self.now();
        let cookie = secret::generate_secret(self.rng.as_ref(), prefix::BROWSER_SESSION);
        let session = BrowserSession {
            token_hash: secret::sha256_b64(cookie.expose()),
            sid: secret::random_b64(self.rng.as_ref(), 16),
            tenant: user.tenant.to_string(),
            username: user.username.to_string(),
            auth_time: how.auth_time.unwrap_or(now),
            amr: how.amr,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.settings.session_ttl,
            revoked_at: None,
        };
        self.store.browser_session_insert(&session).await?;
        Ok(SignInStep::Done(cookie, session))
    }

    /// End a browser session (logout). False if it was not live.
    pub async fn end_browser_session(&self, tenant: &str, sid: &str) -> Result<bool> {
        let ts = self.tenant(tenant)?;
        Ok(self.store.browser_session_revoke(&ts.tenant.name, sid, self.now()).await?)
    }

    // ----- consent --------------------------------------------------------------------------

    /// Whether the person must be asked: never for a first-party client; else unless they
    /// allowed this client every scope it asks for before (and `prompt=consent` did not ask
    /// to be asked again).
    pub async fn consent_needed(&self, auth: &Authorization, session: &BrowserSession) -> Result<bool> {
        if auth.client.first_party {
            return Ok(false);
        }
        if auth.prompt == Prompt::Consent {
            return Ok(true);
        }
        let Ok(username) = Username::parse(&session.username) else { return Ok(true) };
        let given = self.store.consent_get(&auth.client.tenant, &username, &auth.client.client_id).await?;
        Ok(!given.is_some_and(|g| auth.scopes.iter().all(|s| g.contains(s))))
    }

    /// Remember that the person allowed the client these scopes (with those allowed before).
    pub async fn remember_consent(&self, auth: &Authorization, session: &BrowserSession) -> Result<()> {
        let username = Username::parse(&session.username)?;
        let (tenant, client_id): (&TenantName, &ClientId) = (&auth.client.tenant, &auth.client.client_id);
        let mut scopes = self.store.consent_get(tenant, &username, client_id).await?.unwrap_or_default();
        for s in &auth.scopes {
            if !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        Ok(self.store.consent_put(tenant, &username, client_id, &scopes, self.now()).await?)
    }

    // ----- codes --------------------------------------------------------------------------

    /// A new authorization code for `auth`, for the person of `session` (shown once).
    pub async fn issue_code(&self, auth: &Authorization, session: &BrowserSession) -> Result<Secret> {
        let now = self.now();
        let code = secret::generate_secret(self.rng.as_ref(), prefix::AUTHORIZATION_CODE);
        let record = CodeRecord {
            code_hash: secret::sha256_b64(code.expose()),
            tenant: auth.client.tenant.to_string(),
            client_id: auth.client.client_id.to_string(),
            redirect_uri: auth.redirect_uri.clone(),
            code_challenge: auth.code_challenge.clone(),
            nonce: auth.nonce.clone(),
            scope: auth.scope(),
            username: session.username.clone(),
            auth_time: session.auth_time,
            amr: session.amr.clone(),
            sid: session.sid.clone(),
            created_at: now,
            expires_at: now + CODE_TTL,
            used_at: None,
            family_id: None,
        };
        self.store.code_insert(&record).await?;
        Ok(code)
    }

    /// The authorization code grant (RFC 6749 section 4.1.3, RFC 7636 section 4.6). A code
    /// presented a second time fails and revokes every token its first redemption issued
    /// (section 4.1.2).
    pub(super) async fn redeem_code(
        &self,
        ts: &TenantState,
        client: &Client,
        presented: PresentedCode,
        claim_set: ClaimSet,
        now: i64,
    ) -> Result<IssuedTokens> {
        let invalid = || Error::invalid_grant("the authorization code is invalid, expired or was already used");
        let code = presented.code.expose();
        if !code.starts_with(prefix::AUTHORIZATION_CODE) || code.len() > 200 {
            return Err(invalid());
        }
        let hash = secret::sha256_b64(code);
        let rec = self.store.code_get(&hash).await?.ok_or_else(invalid)?;
        if rec.tenant != ts.tenant.name || rec.client_id != client.client_id {
            return Err(invalid());
        }
        if rec.used_at.is_some() {
            if let Some(family) = &rec.family_id {
                self.revoke_family(ts, family, now).await?;
            }
            return Err(Error::invalid_grant(
                "the authorization code was already used; the tokens issued for it have been revoked",
            ));
        }
        if rec.expires_at <= now {
            return Err(invalid());
        }
        match presented.redirect_uri.as_deref() {
            Some(u) if u == rec.redirect_uri => {}
            _ => return Err(Error::invalid_grant("redirect_uri differs from the authorization request's")),
        }
        match (&rec.code_challenge, &presented.code_verifier) {
            (Some(challenge), Some(v)) => {
                if !valid_verifier(v.expose()) || !secret::ct_eq(s256(v.expose()).as_bytes(), challenge.as_bytes()) {
                    return Err(Error::invalid_grant("the code_verifier does not match the code_challenge"));
                }
            }
            (Some(_), None) => return Err(Error::invalid_grant("code_verifier is required (PKCE)")),
            // RFC 9700 section 2.1.1: a verifier without a challenge is a downgrade attempt.
            (None, Some(_)) => return Err(Error::invalid_grant("no code_challenge was sent for this code")),
            (None, None) => {}
        }
        let family_id = secret::random_b64(self.rng.as_ref(), 16);
        if !self.store.code_redeem(&hash, now, &family_id).await? {
            // Another redemption won a race: the code is spent, and so are its tokens.
            if let Some(family) = self.store.code_get(&hash).await?.and_then(|r| r.family_id) {
                self.revoke_family(ts, &family, now).await?;
            }
            return Err(invalid());
        }
        let user = match self.find_user(&ts.tenant.name, &rec.username).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(Error::invalid_grant("the user is disabled or gone")),
        };
        let provenance = Provenance { auth_time: Some(rec.auth_time), amr: rec.amr.clone(), ..Provenance::default() };
        let holder =
            Holder::new(client, &user.username, rec.scope.clone(), claim_set).in_session(family_id, provenance);
        let mut issued = self.issue_for_user(ts, holder, now).await?;
        let openid = rec.scope.as_deref().is_some_and(|s| s.split(' ').any(|w| w == "openid"));
        if openid {
            issued.id_token = Some(self.id_token(ts, &user, &rec, &issued.access_token, now)?);
        }
        Ok(issued)
    }

    /// The ID token of a redeemed code (OpenID Connect Core sections 2 and 3.1.3.6).
    fn id_token(
        &self,
        ts: &TenantState,
        user: &User,
        rec: &CodeRecord,
        access_token: &str,
        now: i64,
    ) -> Result<String> {
        let key = ts.ring.signing_key(now).ok_or_else(|| Error::unavailable("the tenant has no active signing key"))?;
        let claims = IdClaims {
            iss: &ts.issuer,
            sub: &user.username,
            aud: &rec.client_id,
            exp: now + ts.access_ttl,
            iat: now,
            auth_time: rec.auth_time,
            nonce: rec.nonce.as_deref(),
            acr: if rec.amr.iter().any(|m| m == amr::OTP) { ACR_MFA } else { ACR_PASSWORD },
            amr: &rec.amr,
            at_hash: at_hash(key.alg, access_token),
            sid: &rec.sid,
            azp: &rec.client_id,
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| Error::internal("claims encoding"))?;
        key.sign_jwt(&payload)
    }

    /// Check an ID token this tenant issued (a logout's `id_token_hint`): signature with the
    /// key its header names and that key's algorithm, `typ: JWT`, issuer. Expiry is not
    /// checked (OpenID Connect RP-Initiated Logout section 2 allows an expired hint). Returns
    /// the client (`aud`) and the session (`sid`).
    pub fn id_token_hint(&self, tenant: &str, token: &str) -> Result<(String, Option<String>)> {
        let bad = || Error::invalid_request("id_token_hint is not an ID token of this issuer");
        let ts = self.tenant(tenant)?;
        let parsed = crate::token::parse(token).map_err(|_| bad())?;
        if parsed.header.typ.as_deref() != Some("JWT") || parsed.header.crit.is_some() {
            return Err(bad());
        }
        let kid = parsed.header.kid.as_deref().ok_or_else(bad)?;
        let key = ts.ring.verifying_key(kid, self.now(), ts.key_ttl).ok_or_else(bad)?;
        parsed.verify_with(key).map_err(|_| bad())?;
        let c = &parsed.claims;
        if c["iss"].as_str() != Some(ts.issuer.as_str()) {
            return Err(bad());
        }
        let aud = c["aud"].as_str().ok_or_else(bad)?.to_owned();
        Ok((aud, c["sid"].as_str().map(str::to_owned)))
    }

    /// A fresh random token (a form's CSRF token): 192 bits, base64url.
    pub fn random_token(&self) -> String {
        secret::random_b64(self.rng.as_ref(), 24)
    }

    /// A client of the tenant by id, for the pages (its name, its logout URIs).
    pub async fn client_named(&self, tenant: &str, client_id: &str) -> Result<Option<Arc<Client>>> {
        self.client(tenant, client_id).await
    }

    /// OpenID Connect userinfo (Core section 5.3): the profile of the user an access token
    /// with `openid` in scope speaks for.
    pub async fn userinfo(&self, tenant: &str, token: &str) -> Result<UserInfo> {
        let (user, claims) = self.bearer_user(tenant, token, &[Audience::Issuer]).await?;
        let scopes: Vec<&str> = claims.scope.as_deref().unwrap_or("").split(' ').collect();
        if !scopes.contains(&"openid") {
            return Err(Error::forbidden("the token was not issued with the openid scope"));
        }
        let p = &user.profile;
        let mut info = UserInfo { sub: claims.sub.clone(), ..UserInfo::default() };
        if scopes.contains(&"profile") {
            info.preferred_username = Some(user.username.to_string());
            info.given_name = p.given_name.clone();
            info.family_name = p.last_name.clone();
            let full: Vec<&str> = [&p.given_name, &p.last_name].into_iter().flatten().map(String::as_str).collect();
            info.name = (!full.is_empty()).then(|| full.join(" "));
        }
        if scopes.contains(&"email") {
            info.email = p.email.clone();
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_or_by_loopback_port() {
        let reg = "https://app.example/cb";
        assert!(redirect_matches(reg, reg));
        for tricked in [
            "https://app.example/cb/",
            "https://app.example/cbx",
            "https://app.example/c",
            "https://app.example/cb?x=1",
            "https://app.example/cb#f",
            "https://evil@app.example/cb",
            "https://app.example:8443/cb",
            "https://app.example.evil/cb",
            "http://app.example/cb",
        ] {
            assert!(!redirect_matches(reg, tricked), "{tricked}");
        }
        let native = "http://127.0.0.1/cb";
        assert!(redirect_matches(native, "http://127.0.0.1:53123/cb"));
        assert!(redirect_matches("http://127.0.0.1:8000/cb", "http://127.0.0.1:9/cb"));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:4000/cb"));
        for tricked in [
            "http://127.0.0.1:53123/cb2",
            "http://127.0.0.1:80@evil.example/cb",
            "http://127.0.0.1.evil.example/cb",
            "http://127.0.0.1:/cb",
            "https://127.0.0.1:5/cb",
            "http://localhost:5/cb",
        ] {
            assert!(!redirect_matches(native, tricked), "{tricked}");
        }
        // The port rule is for loopback addresses only.
        assert!(!redirect_matches("http://app.example:80/cb", "http://app.example:81/cb"));
    }

    #[test]
    fn pkce_s256_of_the_rfc_example() {
        // RFC 7636 appendix B.
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(valid_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!valid_verifier("short"));
        assert!(!valid_verifier(&"a b".repeat(20)));
    }
}
