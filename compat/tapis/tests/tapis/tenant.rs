//! A tenant chosen by the Host header. The crate cannot send to `acme.localhost` (it would
//! not resolve), so requests for that tenant use raw HTTP with an explicit Host header; the
//! crate client on 127.0.0.1 (the default tenant) must reject acme's tokens.

use crate::common::*;

async fn tapis_raw(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    host: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rb = s.http.request(method, format!("{}/v3/oauth2{path}", s.base)).header("Host", host);
    if let Some(t) = token {
        rb = rb.header("X-Tapis-Token", t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
}

#[tokio::test]
async fn tenant_by_host_header() {
    let s = Server::start();
    s.cli_ok(&["tenant", "create", "acme", "--host", "acme.localhost"]);
    // Same username in both tenants, different passwords.
    s.create_user("acme", "alice", "acme-password-123", &["--email", "alice@acme.example"]);
    user(&s, "alice");
    let host = format!("acme.localhost:{}", s.port);
    let acme_issuer = format!("{}/t/acme", s.base);

    // The running server picks the new tenant up.
    let mut seen = Value::Null;
    for _ in 0..40 {
        let (st, v) =
            tapis_raw(&s, reqwest::Method::GET, "/.well-known/oauth-authorization-server", &host, None, None).await;
        if st == 200 && v["result"]["issuer"] == acme_issuer.as_str() {
            seen = v;
            break;
        }
        seen = v;
        sleep(0.25).await;
    }
    assert_eq!(seen["result"]["issuer"], acme_issuer.as_str(), "metadata at Host acme.localhost: {seen}");

    let (st, v) = tapis_raw(
        &s,
        reqwest::Method::POST,
        "/tokens",
        &host,
        None,
        Some(json!({"grant_type": "password", "username": "alice", "password": "acme-password-123"})),
    )
    .await;
    assert_eq!(st, 201, "password grant at acme: {v}");
    let jwt = v["result"]["access_token"]["access_token"].as_str().expect("access token").to_owned();
    let (_, c) = s.verify_jwt("acme", &jwt).await;
    assert_eq!(c["iss"], acme_issuer.as_str(), "{c}");
    assert_eq!(c["sub"], "alice@acme", "{c}");
    assert_eq!(c["tenant"], "acme", "{c}");
    assert_eq!(c["tapis/tenant_id"], "acme", "{c}");
    assert_eq!(c["tapis/username"], "alice", "{c}");
    assert!(c["exp"].is_i64(), "{c}");

    // acme's password is not the default tenant's.
    err(
        s.tapis(None).tokens.create_token(password_grant("alice", "acme-password-123")).await,
        400,
        "acme password at default",
    );

    // acme's token at the default tenant (through the crate): 401.
    let at_default = s.tapis(Some(&jwt));
    err(at_default.profiles.get_userinfo().await, 401, "acme token at the default tenant: userinfo");
    err(at_default.clients.list_clients(None, None, None).await, 401, "acme token at the default tenant: list_clients");
    err(
        at_default.tokens.create_v2_token(V2Token { access_token: jwt.clone() }).await,
        401,
        "acme token at the default tenant: v2",
    );

    // ...and good at acme.
    let (st, v) = tapis_raw(&s, reqwest::Method::GET, "/userinfo", &host, Some(&jwt), None).await;
    assert_eq!(st, 200, "userinfo at acme: {v}");
    assert_eq!(v["result"]["username"], "alice");
    assert_eq!(v["result"]["email"], "alice@acme.example");

    // A default-tenant token at acme: 401.
    let dflt = s.access_token("alice", PW).await;
    let (st, v) = tapis_raw(&s, reqwest::Method::GET, "/userinfo", &host, Some(&dflt), None).await;
    assert_eq!(st, 401, "default token at acme: {v}");
    assert_eq!(v["status"], "error");
    ok(s.tapis(Some(&dflt)).profiles.get_userinfo().await, "default token at default");

    // A token revoked through acme's front is dead there.
    let (st, _) =
        tapis_raw(&s, reqwest::Method::POST, "/tokens/revoke", &host, None, Some(json!({"token": jwt}))).await;
    assert_eq!(st, 200);
    let (st, _) = tapis_raw(&s, reqwest::Method::GET, "/userinfo", &host, Some(&jwt), None).await;
    assert_eq!(st, 401, "revoked acme token at acme");
}
