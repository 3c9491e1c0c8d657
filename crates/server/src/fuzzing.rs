//! The bodies of the fuzz targets (`fuzz/`, cargo-fuzz), shared with the test that replays
//! their committed corpus (`crates/cli/tests/fuzz_corpus`), so that both run the same code.
//! Each function takes the fuzzer's bytes, runs a parser (or a whole front) on them, and
//! panics only on a broken invariant: a panic is a finding.

use crate::AppState;
use crate::extract::{basic_credentials, bearer_token, cookie_value, header_text, parse_form};
pub use crate::panic::Front;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use tessera_core::authority::{Actor, NewClient, Session};
use tessera_core::clock::{SystemClock, SystemRng};
use tessera_core::keys::{Alg, KeyRing, MasterKey, SigningKey, generate_pkcs8};
use tessera_core::principal::{GrantType, Profile};
use tessera_core::secret::{Argon2id, InlineHasher, Secret};
use tessera_core::store::Store;
use tessera_core::{Authority, DEFAULT_TENANT, Settings, token, totp};
use tower::ServiceExt;

/// At most this many header lines are read from an input (the rest is ignored).
const MAX_HEADERS: usize = 32;

/// Headers from `Name: value` lines (lines that are not a valid header are skipped).
fn headers_of(text: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in text.split('\n').take(MAX_HEADERS) {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.trim().as_bytes()), HeaderValue::from_bytes(value.trim_start().as_bytes()))
        else {
            continue;
        };
        h.append(name, value);
    }
    h
}

/// The input split at its first blank line: header lines, then the body.
fn head_and_body(data: &[u8]) -> (&str, &[u8]) {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(i) => (data.get(..i).unwrap_or_default(), data.get(i + 2..).unwrap_or_default()),
        None => (data, &[][..]),
    };
    (std::str::from_utf8(head).unwrap_or(""), body)
}

/// The form parser: `Content-Type` and other header lines, a blank line, the body.
pub fn form(data: &[u8]) {
    let (head, body) = head_and_body(data);
    let headers = headers_of(head);
    if let Ok(mut f) = parse_form(&headers, body) {
        for name in ["grant_type", "client_id", "client_secret", "scope", "token", "username", "password", ""] {
            if let Some(v) = f.remove(name) {
                assert!(!v.is_empty(), "an empty value counts as absent");
                assert!(f.remove(name).is_none(), "a parameter is read once");
            }
        }
    }
}

/// The credential parsers: HTTP Basic, Bearer, cookies and plain header values, on header lines.
pub fn credentials(data: &[u8]) {
    let headers = headers_of(&String::from_utf8_lossy(data));
    if let Ok(Some((user, secret))) = basic_credentials(&headers) {
        // Both parts were form-decoded from UTF-8; what is left is text.
        let _ = (user.len(), secret.expose().len());
    }
    if let Some(t) = bearer_token(&headers) {
        assert_eq!(t, t.trim(), "a bearer token is trimmed");
    }
    for bare in [false, true] {
        if let Some(v) = cookie_value(&headers, "asc_auth_key", bare) {
            assert!(!v.is_empty() && !v.contains(';'), "a cookie value is one non-empty pair's value: {v:?}");
        }
    }
    for name in ["x-tapis-token", "x-api-key", "x-sftpgo-otp", "apikeybearer"] {
        if let Some(v) = header_text(&headers, name) {
            assert!(!v.is_empty() && v == v.trim());
        }
    }
}

/// The TOTP code and recovery code parsers: an 8-byte time, a 20-byte secret, then the typed
/// code. A code the secret generates for a time is accepted at that time.
pub fn totp(data: &[u8]) {
    let (Some(time), Some(secret), Some(typed)) = (data.get(..8), data.get(8..28), data.get(28..)) else { return };
    let mut t = [0u8; 8];
    t.copy_from_slice(time);
    let now = i64::from_le_bytes(t);
    let typed = String::from_utf8_lossy(typed);
    if let Some(step) = totp::matching_step(secret, &typed, now) {
        assert!((step - now.div_euclid(30)).abs() <= 1, "a code matches within one step of now");
    }
    if now >= 0 {
        // Accepted at the first step of the window it matches (codes of two steps may be equal).
        let step = totp::matching_step(secret, &totp::code_at(secret, now), now);
        assert!(step.is_some_and(|s| (s - now / 30).abs() <= 1), "the code of now is refused now: {step:?}");
    }
    let normal = totp::normalize_recovery_code(&typed);
    assert!(normal.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert_eq!(totp::normalize_recovery_code(&normal), normal, "normalising twice changes nothing");
}

const ISSUER: &str = "https://tessera.test";
const TENANT: &str = "fuzz";
/// The time the JWT target verifies at.
const NOW: i64 = 1_800_000_000;

/// A tenant's key set as the server holds it: one key of each algorithm.
static RING: LazyLock<KeyRing> = LazyLock::new(|| {
    let keys = [Alg::EdDSA, Alg::ES256, Alg::RS256].into_iter().enumerate().map(|(i, alg)| {
        let der = generate_pkcs8(alg).unwrap_or_else(|e| panic!("generate a {alg} key: {}", e.description));
        let key = SigningKey::from_pkcs8(&format!("k{i}"), alg, &der, 0, 0)
            .unwrap_or_else(|e| panic!("load a {alg} key: {}", e.description));
        Arc::new(key)
    });
    KeyRing::new(keys.collect())
});

/// The JWT parser and verifier with a real key set. The first byte chooses: below 0x80, the
/// rest is a compact token as presented; else the rest is `header JSON \n claims JSON`, signed
/// with the key the byte picks (so that claims are checked past a good signature), then
/// verified as is and with one byte of the token flipped.
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let ring = &*RING;
    let verify = |t: &str| token::verify(t, ring, ISSUER, TENANT, NOW, 3600);
    if mode < 0x80 {
        if let Ok(t) = std::str::from_utf8(rest) {
            let _ = token::parse(t);
            if let Ok(claims) = verify(t) {
                panic!("a token no key here signed was accepted: {claims:?}");
            }
        }
        return;
    }
    let (header, claims) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..).unwrap_or_default()),
        None => (rest, &[][..]),
    };
    let keys = ring.keys();
    let Some(key) = keys.get(usize::from(mode) % keys.len()) else { return };
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims));
    let Ok(sig) = key.sign_raw(input.as_bytes()) else { return };
    let jws = format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
    if let Ok(c) = verify(&jws) {
        assert_eq!((c.iss.as_str(), c.tenant.as_str()), (ISSUER, TENANT), "accepted for another issuer or tenant");
        assert!(c.exp > NOW, "accepted expired");
    }
    // One flipped bit anywhere is a token no key signed (or not a token at all).
    let at = (usize::from(mode) * 7919 + rest.len()) % jws.len();
    let mut altered = jws.into_bytes();
    if let Some(b) = altered.get_mut(at) {
        *b ^= 0x01;
    }
    if let Ok(t) = std::str::from_utf8(&altered)
        && let Ok(c) = verify(t)
    {
        // Any change to the signed text breaks the signature; base64url is decoded strictly,
        // so a changed signature character is a changed signature or no token at all.
        panic!("a token altered at byte {at} was accepted: {c:?}");
    }
}

/// The path a front is served under.
fn base(front: Front) -> &'static str {
    match front {
        Front::OAuth => "",
        Front::Tapis => "/v3/oauth2",
        Front::Sftpgo => "/api/v2",
        Front::Ica => "/ica/rest",
        Front::DocSpace => "/api/2.0",
        Front::Admin => "/admin/v1",
    }
}

/// The known user's password, and the chosen client's id and secret (the corpus uses them).
pub const PASSWORD: &str = "fuzzing-password-1";
pub const USER: &str = "alice";
pub const CLIENT_ID: &str = "fuzz-client";
pub const CLIENT_SECRET: &str = "fuzz-client-secret-0123456789";
/// In an input, replaced by a live access token of [`USER`] (default audience), by one of the
/// tenant's administrator, and by an API key of [`USER`]: values no corpus file could hold.
pub const TOKEN_MARK: &str = "@TOKEN@";
pub const ADMIN_MARK: &str = "@ADMIN@";
pub const KEY_MARK: &str = "@KEY@";

/// A whole server (the router, over a real store) for the front targets: a runtime, the
/// default tenant with [`USER`] and client [`CLIENT_ID`], and an API key.
pub struct Fronts {
    rt: tokio::runtime::Runtime,
    auth: Arc<Authority>,
    router: axum::Router,
    user: tessera_core::principal::User,
    admin: tessera_core::principal::User,
    api_key: String,
}

impl Fronts {
    /// The server over the store `make_store` opens (on this server's runtime). Passwords are
    /// hashed with tiny Argon2 parameters and failed sign-ins are never locked, so that every
    /// input is checked the same way whatever came before.
    pub fn open<F, Fut>(make_store: F) -> Result<Fronts, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Arc<dyn Store>, String>>,
    {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let (auth, user, admin, api_key) = rt.block_on(async {
            let store = make_store().await?;
            let rng = Arc::new(SystemRng);
            let hasher = Arc::new(InlineHasher { argon: Argon2id::new(8, 1, 1), rng: rng.clone() });
            let mut settings = Settings { public_url: "http://tessera.test".into(), ..Settings::default() };
            settings.limits.per_user = u32::MAX / 2;
            settings.limits.per_origin = u32::MAX / 2;
            settings.limits.device_per_origin = u32::MAX / 2;
            settings.limits.device_per_tenant = u32::MAX / 2;
            let err = |e: tessera_core::Error| e.description;
            let auth =
                Authority::open(store, Arc::new(SystemClock), rng, hasher, MasterKey::generate(&SystemRng), settings)
                    .await
                    .map_err(err)?;
            auth.bootstrap().await.map_err(err)?;
            let op = Actor::Operator;
            let admin = auth.get_user(&op, DEFAULT_TENANT, "admin").await.map_err(err)?;
            let roles = vec![];
            let user = auth
                .create_user(&op, DEFAULT_TENANT, USER, Secret::new(PASSWORD), roles, Profile::default())
                .await
                .map_err(err)?;
            let grants = vec![
                GrantType::Password,
                GrantType::RefreshToken,
                GrantType::ClientCredentials,
                GrantType::DeviceCode,
                GrantType::TokenExchange,
            ];
            let mut client = NewClient::new(DEFAULT_TENANT, "fuzz", grants);
            client.client_id = Some(CLIENT_ID.into());
            client.secret = Some(Secret::new(CLIENT_SECRET));
            auth.create_client(&op, client).await.map_err(err)?;
            let (_, key) = auth.create_api_key(&op, DEFAULT_TENANT, USER, "fuzz", None, vec![]).await.map_err(err)?;
            Ok::<_, String>((Arc::new(auth), user, admin, key.expose().to_owned()))
        })?;
        let router = crate::router(AppState::new(auth.clone(), None, crate::MetricsAccess::Open));
        Ok(Fronts { rt, auth, router, user, admin, api_key })
    }

    /// One request to `front`: `METHOD /path?query` (below the front's base path), header
    /// lines, a blank line, the body. The answer is never a 500: bad input is the client's
    /// error, and the server's own failures here would be bugs.
    pub fn request(&self, front: Front, data: &[u8]) {
        let (head, body) = head_and_body(data);
        let (first, rest) = head.split_once('\n').unwrap_or((head, ""));
        let Some((method, path)) = first.split_once(' ') else { return };
        let Ok(method) = Method::from_bytes(method.as_bytes()) else { return };
        let Ok(uri) = format!("{}{}", base(front), path.trim_end()).parse::<axum::http::Uri>() else { return };
        let token = |user| {
            let session = Session {
                audience: None,
                ttl: None,
                scope: None,
                extra: Default::default(),
                provenance: Default::default(),
            };
            self.auth.issue_session(user, session).map(|t| t.access_token).unwrap_or_default()
        };
        let (token, admin) = (token(&self.user), token(&self.admin));
        let fill = |s: &str| s.replace(TOKEN_MARK, &token).replace(ADMIN_MARK, &admin).replace(KEY_MARK, &self.api_key);
        let rest = fill(rest);
        let body = match std::str::from_utf8(body) {
            Ok(text) => fill(text).into_bytes(),
            Err(_) => body.to_vec(),
        };
        let mut req = Request::new(Body::from(body));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers_of(&rest);
        let (status, body) = self.rt.block_on(async {
            let Ok(res) = self.router.clone().oneshot(req).await;
            let status = res.status();
            // No limit: a list of everything the fuzzer made may be long, and that is no finding.
            (status, axum::body::to_bytes(res.into_body(), usize::MAX).await)
        });
        let body = body.unwrap_or_else(|e| panic!("the answer's body could not be read: {e}"));
        assert!(
            status != StatusCode::INTERNAL_SERVER_ERROR,
            "{front:?} answered 500: {}",
            String::from_utf8_lossy(&body)
        );
    }
}
