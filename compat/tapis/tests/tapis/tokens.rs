//! `tokens.create_token`: the password grant, with and without a client, and its failures.

use crate::common::*;

#[tokio::test]
async fn password_grant_without_client_gives_access_token_only() {
    let s = Server::start();
    user(&s, "alice");
    let r = ok(s.tapis(None).tokens.create_token(password_grant("alice", PW)).await, "password grant");
    let t = *r.result.expect("result");
    assert!(t.refresh_token.is_none(), "no client => no refresh token, got {:?}", t.refresh_token);
    let c = check_access(&s, &t, "default", "alice", None, "password").await;
    assert_eq!(c["tapis/refresh_count"], 0, "first issue: {c}");
    // The crate's RefreshMiddleware needs an integer exp.
    assert!(c["exp"].as_i64().unwrap() > now());
}

#[tokio::test]
async fn token_endpoints_ignore_a_bad_x_tapis_token() {
    let s = Server::start();
    user(&s, "alice");
    // The crate sends X-Tapis-Token on every call; where no auth is needed it must not matter.
    for junk in ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"] {
        let c = s.tapis(Some(junk));
        let t = token_ok(c.tokens.create_token(password_grant("alice", PW)).await, "create_token with junk header");
        check_access(&s, &t, "default", "alice", None, "password").await;
    }
    // A revoked (but well-formed) token as the header.
    let jwt = s.access_token("alice", PW).await;
    ok(s.tapis(None).tokens.revoke_token(RevokeTokenRequest { token: Some(jwt.clone()) }).await, "revoke");
    let c = s.tapis(Some(&jwt));
    token_ok(c.tokens.create_token(password_grant("alice", PW)).await, "create_token with revoked header");
}

#[tokio::test]
async fn password_grant_failures_are_400_envelopes() {
    let s = Server::start();
    user(&s, "alice");
    let c = s.tapis(None);
    err(c.tokens.create_token(password_grant("alice", "wrong-password-123")).await, 400, "wrong password");
    err(c.tokens.create_token(password_grant("nobody", PW)).await, 400, "unknown user");
    let mut nt = password_grant("alice", PW);
    nt.password = None;
    err(c.tokens.create_token(nt).await, 400, "missing password");
    let mut nt = password_grant("alice", PW);
    nt.username = None;
    err(c.tokens.create_token(nt).await, 400, "missing username");
    let mut nt = password_grant("alice", PW);
    nt.grant_type = None;
    err(c.tokens.create_token(nt).await, 400, "missing grant_type");
    let mut nt = password_grant("alice", PW);
    nt.grant_type = Some("magic".into());
    err(c.tokens.create_token(nt).await, 400, "unknown grant_type");
    let v = err(
        c.tokens
            .create_token(NewToken {
                grant_type: Some("authorization_code".into()),
                code: Some("abc".into()),
                redirect_uri: Some("https://example.org/cb".into()),
                ..Default::default()
            })
            .await,
        400,
        "authorization_code",
    );
    // The code grant runs now (crates/cli/tests/api/browser.rs); without a client it is refused.
    let m = message(&v).to_lowercase();
    assert!(m.contains("client"), "authorization_code without a client should say so: {m}");
    // A disabled user gets no token.
    s.cli_ok(&["user", "disable", "--tenant", "default", "--username", "alice"]);
    err(c.tokens.create_token(password_grant("alice", PW)).await, 400, "disabled user");
}

#[tokio::test]
async fn password_grant_with_tapis_client_gives_refresh_token() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, authed) = user_with_token(&s, "alice").await;
    let (id, key) = tapis_client(&authed).await;
    let t =
        token_ok(s.tapis(None).tokens.create_token(password_with_client("alice", &id, &key)).await, "password+client");
    let rt = check_refresh(&t);
    assert!(rt.len() > 20, "refresh token too short: {rt}");
    let c = check_access(&s, &t, "default", "alice", Some(&id), "password").await;
    assert_eq!(c["tapis/refresh_count"], 0, "{c}");

    let anon = s.tapis(None);
    err(
        anon.tokens.create_token(password_with_client("alice", &id, "wrong-key-wrong-key-wrong-key")).await,
        400,
        "wrong client_key",
    );
    err(anon.tokens.create_token(password_with_client("alice", "no-such-client", &key)).await, 400, "unknown client");
    let mut nt = password_with_client("alice", &id, &key);
    nt.password = Some("wrong-password-123".into());
    err(anon.tokens.create_token(nt).await, 400, "client ok, wrong password");

    check_refresh_jti(&t);
}

#[tokio::test]
async fn password_grant_with_cli_client() {
    let s = Server::start();
    user(&s, "alice");
    let (id, secret) = s.cli_client(
        "default",
        "tapis-cli-app",
        "password,refresh_token,urn:ietf:params:oauth:grant-type:device_code",
        false,
    );
    let key = secret.expect("secret");
    let t = token_ok(
        s.tapis(None).tokens.create_token(password_with_client("alice", &id, &key)).await,
        "password+cli client",
    );
    check_refresh(&t);
    let c = check_access(&s, &t, "default", "alice", Some(&id), "password").await;
    assert_eq!(c["tapis/refresh_count"], 0, "{c}");
}

/// The crate cannot send Basic client auth or show a success status code: raw HTTP for those.
#[tokio::test]
async fn raw_wire_basic_auth_status_and_content_type() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, authed) = user_with_token(&s, "alice").await;
    let (id, key) = tapis_client(&authed).await;
    let url = format!("{}/v3/oauth2/tokens", s.base);
    let r = s
        .http
        .post(&url)
        .basic_auth(&id, Some(&key))
        .json(&json!({"grant_type": "password", "username": "alice", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "POST /v3/oauth2/tokens answers 201");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "success", "{v}");
    assert!(
        v["result"]["refresh_token"]["refresh_token"].as_str().is_some_and(|t| t.starts_with("tsr_")),
        "Basic client => refresh token: {v}"
    );
    let (_, claims) = s.verify_jwt("default", v["result"]["access_token"]["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["tapis/client_id"], id.as_str());

    // Errors: JSON content type and the error envelope.
    let r = s
        .http
        .post(&url)
        .json(&json!({"grant_type": "password", "username": "alice", "password": "wrong-password-123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error");
    assert!(v["result"].is_null());
    assert_eq!(v["metadata"], json!({}), "{v}");

    let r = s.http.get(format!("{}/v3/oauth2/userinfo", s.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");

    // A form-encoded body is accepted too (as by the real service).
    let r = s
        .http
        .post(&url)
        .form(&[("grant_type", "password"), ("username", "alice"), ("password", PW)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201, "form body");
}
