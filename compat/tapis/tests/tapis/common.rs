//! Helpers shared by the Tapis tests.
#![allow(dead_code)]

pub use serde_json::{Value, json};
pub use std::time::Duration;
pub use tessera_compat_tapis::tapis_authenticator::TapisAuthenticator;
pub use tessera_compat_tapis::tapis_authenticator::models::{
    NewClient, NewDeviceCode, NewTenantConfig, NewToken, RevokeTokenRequest, TokenResponse, UpdateClient, V2Token,
};
pub use tessera_compat_tapis::*;

/// A password every test user gets (the CLI wants at least 10 characters).
pub const PW: &str = "correct-horse-battery";
/// A client key long enough for the Tapis clients API (>= 24 characters).
pub const KEY: &str = "a-client-key-of-32-characters!!!";

pub async fn sleep(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

/// Creates `username` in the default tenant with PW and a profile.
pub fn user(s: &Server, username: &str) {
    let email = format!("{username}@example.org");
    let given = format!("Given{username}");
    s.create_user("default", username, PW, &["--email", &email, "--given-name", &given, "--last-name", "Tester"]);
}

/// A user with an access token and a crate client carrying it.
pub async fn user_with_token(s: &Server, username: &str) -> (String, TapisAuthenticator) {
    user(s, username);
    let jwt = s.access_token(username, PW).await;
    let c = s.tapis(Some(&jwt));
    (jwt, c)
}

/// A Tapis client created through `POST /v3/oauth2/clients` by the holder of `authed`;
/// returns (client_id, client_key).
pub async fn tapis_client(authed: &TapisAuthenticator) -> (String, String) {
    let r = ok(authed.clients.create_client(NewClient::default()).await, "create_client");
    let c = r.result.expect("create_client: no result");
    (c.client_id.expect("client_id"), c.client_key.expect("client_key"))
}

pub fn password_with_client(username: &str, client_id: &str, client_key: &str) -> NewToken {
    NewToken {
        username: Some(username.into()),
        password: Some(PW.into()),
        client_id: Some(client_id.into()),
        client_key: Some(client_key.into()),
        grant_type: Some("password".into()),
        ..Default::default()
    }
}

pub fn password_grant(username: &str, password: &str) -> NewToken {
    NewToken {
        username: Some(username.into()),
        password: Some(password.into()),
        grant_type: Some("password".into()),
        ..Default::default()
    }
}

pub fn refresh_grant(refresh_token: &str, client_id: &str, client_key: &str) -> NewToken {
    NewToken {
        refresh_token: Some(refresh_token.into()),
        client_id: Some(client_id.into()),
        client_key: Some(client_key.into()),
        grant_type: Some("refresh_token".into()),
        ..Default::default()
    }
}

pub fn device_grant(client_id: &str, device_code: &str) -> NewToken {
    NewToken {
        client_id: Some(client_id.into()),
        device_code: Some(device_code.into()),
        grant_type: Some("device_code".into()),
        ..Default::default()
    }
}

/// The access-token string of a token answer.
pub fn access(t: &TokenResponse) -> String {
    t.access_token.access_token.clone().expect("access_token.access_token")
}

/// The refresh-token string of a token answer (which must have one).
pub fn refresh(t: &TokenResponse) -> String {
    t.refresh_token
        .as_ref()
        .unwrap_or_else(|| panic!("no refresh_token in {t:?}"))
        .refresh_token
        .clone()
        .expect("refresh_token.refresh_token")
}

/// The `result` of a create_token answer, checked for the envelope.
pub fn token_ok<E: std::fmt::Debug>(
    r: Result<
        tessera_compat_tapis::tapis_authenticator::models::CreateToken201Response,
        tessera_compat_tapis::tapis_authenticator::apis::Error<E>,
    >,
    what: &str,
) -> TokenResponse {
    *ok(r, what).result.unwrap_or_else(|| panic!("{what}: no result"))
}

/// Checks the access-token half of a token answer and the JWT's claims, verified against the
/// tenant's JWKS. Returns the claims.
pub async fn check_access(
    s: &Server,
    t: &TokenResponse,
    tenant: &str,
    username: &str,
    client_id: Option<&str>,
    grant: &str,
) -> Value {
    let at = &t.access_token;
    let jwt = at.access_token.as_deref().expect("access_token string");
    let expires_in = at.expires_in.unwrap_or_else(|| panic!("access_token.expires_in missing: {at:?}")) as i64;
    assert!(expires_in > 0, "expires_in {expires_in}");
    let expires_at = rfc3339_secs(at.expires_at.as_deref().unwrap_or_else(|| panic!("no expires_at: {at:?}")));
    let jti = at.jti.as_deref().unwrap_or_else(|| panic!("no jti: {at:?}"));
    assert!(!jti.is_empty());

    let (_header, c) = s.verify_jwt(tenant, jwt).await;
    let issuer = if tenant == "default" { s.base.clone() } else { format!("{}/t/{tenant}", s.base) };
    assert_eq!(c["iss"], issuer.as_str(), "iss: {c}");
    assert_eq!(c["sub"], format!("{username}@{tenant}").as_str(), "sub: {c}");
    let exp = c["exp"].as_i64().unwrap_or_else(|| panic!("exp must be an integer: {c}"));
    let iat = c["iat"].as_i64().unwrap_or_else(|| panic!("iat must be an integer: {c}"));
    assert!((exp - iat - expires_in).abs() <= 1, "exp - iat = {} but expires_in = {expires_in}: {c}", exp - iat);
    assert!((exp - expires_at).abs() <= 1, "exp {exp} vs expires_at {expires_at}");
    assert!((iat - now()).abs() <= 120, "iat {iat} far from now {}", now());
    assert_eq!(c["jti"], jti, "jti claim vs answer: {c}");
    assert_eq!(c["tenant"], tenant, "tenant: {c}");
    match client_id {
        Some(id) => {
            assert_eq!(c["client_id"], id, "client_id: {c}");
            assert_eq!(c["tapis/client_id"], id, "tapis/client_id: {c}");
        }
        None => {
            assert!(c.get("client_id").is_none_or(Value::is_null), "client_id should be null/absent: {c}");
            assert!(c.get("tapis/client_id").is_some_and(Value::is_null), "tapis/client_id must be null: {c}");
        }
    }
    assert_eq!(c["tapis/tenant_id"], tenant, "tapis/tenant_id: {c}");
    assert_eq!(c["tapis/username"], username, "tapis/username: {c}");
    assert_eq!(c["tapis/token_type"], "access", "tapis/token_type: {c}");
    assert_eq!(c["tapis/account_type"], "user", "tapis/account_type: {c}");
    assert_eq!(c["tapis/delegation"], false, "tapis/delegation: {c}");
    assert!(c.get("tapis/delegation_sub").is_some_and(Value::is_null), "tapis/delegation_sub must be null: {c}");
    assert_eq!(c["tapis/grant_type"], grant, "tapis/grant_type: {c}");
    assert!(c["tapis/refresh_count"].is_i64(), "tapis/refresh_count must be an integer: {c}");
    c
}

/// Checks the refresh-token half of a token answer.
pub fn check_refresh(t: &TokenResponse) -> String {
    let rt = t.refresh_token.as_ref().unwrap_or_else(|| panic!("no refresh_token: {t:?}"));
    let s = rt.refresh_token.clone().expect("refresh_token string");
    assert!(s.starts_with("tsr_"), "refresh token should start tsr_: {s}");
    let ttl = rt.expires_in.unwrap_or_else(|| panic!("refresh expires_in missing: {rt:?}")) as i64;
    assert!(ttl > 0, "refresh expires_in {ttl}");
    let at = rfc3339_secs(rt.expires_at.as_deref().unwrap_or_else(|| panic!("refresh expires_at missing: {rt:?}")));
    assert!((at - (now() + ttl)).abs() <= 120, "refresh expires_at {at} vs now+ttl {}", now() + ttl);
    s
}

/// The refresh-token object carries its own `jti` (spec: "its own expires_in integer,
/// expires_at RFC 3339 with offset, jti"). Kept out of [`check_refresh`] so that one missing
/// field fails only the tests that are about it.
#[track_caller]
pub fn check_refresh_jti(t: &TokenResponse) {
    let rt = t.refresh_token.as_ref().unwrap_or_else(|| panic!("no refresh_token: {t:?}"));
    assert!(rt.jti.as_deref().is_some_and(|j| !j.is_empty()), "refresh_token.jti missing: {rt:?}");
    assert_ne!(rt.jti, t.access_token.jti, "refresh and access jti should differ");
}

/// A confidential client made by the CLI, for standard introspection.
pub fn introspector(s: &Server, tenant: &str) -> (String, String) {
    let (id, secret) = s.cli_client(tenant, "introspector", "client_credentials", false);
    (id, secret.expect("confidential client has a secret"))
}

/// Lets users who are not administrators create up to 10 clients through the clients API
/// (the default is none: `tessera tenant policy default --max-user-clients N`).
pub fn allow_user_clients(s: &Server) {
    s.cli_ok(&["tenant", "policy", "default", "--max-user-clients", "10"]);
}
