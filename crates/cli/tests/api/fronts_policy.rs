//! Policy decisions the fronts share (issue 13, findings 7 and 8): client authentication in
//! the device flow, front token lifetimes, key retirement after a lowered lifetime, the
//! storage of chosen client secrets, who may create clients, and who may read `/metrics`.

use crate::harness::{Auth, TestServer, b64e, decode_jwt, now};
use serde_json::{Value, json};
use std::time::Duration;

const PW: &str = "correct-horse-battery";
const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST /v3/oauth2/<path>` with a JSON body and an optional `X-Tapis-Token`: (status, body).
async fn tapis_post(s: &TestServer, path: &str, body: Value, token: Option<&str>) -> (u16, Value) {
    let mut req = s.http.post(format!("{}/v3/oauth2/{path}", s.base)).json(&body);
    if let Some(t) = token {
        req = req.header("X-Tapis-Token", t);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}")))
}

/// Asserts Tapis' error envelope with `status` and a message containing `word`.
#[track_caller]
fn assert_tapis_error(got: &(u16, Value), status: u16, word: &str, what: &str) {
    let (st, v) = got;
    assert_eq!(*st, status, "{what}: {v}");
    assert_eq!(v["status"], "error", "{what}: {v}");
    assert!(v["result"].is_null(), "{what}: {v}");
    assert!(v["message"].as_str().is_some_and(|m| m.contains(word)), "{what}: message should contain {word}: {v}");
}

/// A Tapis access token for a user (password grant without client).
async fn tapis_token(s: &TestServer, username: &str, password: &str) -> String {
    let (st, v) =
        tapis_post(s, "tokens", json!({"grant_type": "password", "username": username, "password": password}), None)
            .await;
    assert_eq!(st, 201, "tapis password grant: {v}");
    v["result"]["access_token"]["access_token"].as_str().expect("access token").to_owned()
}

// ----- 7: the device flow authenticates confidential clients ---------------------------------

#[tokio::test]
async fn device_flow_needs_a_confidential_clients_secret_on_both_calls() {
    let s = TestServer::start_with_env(&[("TESSERA_DEVICE_INTERVAL", "1")]).await;
    s.create_user("default", "bob", PW);
    let (id, secret) = s.create_client("default", DEVICE, None);

    // Tapis: the client_id alone is refused at device/code, in Tapis' envelope.
    let r = tapis_post(&s, "device/code", json!({"client_id": id}), None).await;
    assert_tapis_error(&r, 400, "invalid_client", "tapis device/code, id alone");
    // The standard endpoint refuses it too.
    let r = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&id)).await;
    r.assert_error(401, "invalid_client", "device_authorization, id alone");

    // With the key: a device code; approved; polling with the id alone is refused.
    let (st, v) = tapis_post(&s, "device/code", json!({"client_id": id, "client_key": secret}), None).await;
    assert_eq!(st, 200, "device/code with client_key: {v}");
    let code = v["result"]["device_code"].as_str().expect("device_code").to_owned();
    let user_code = v["result"]["user_code"].as_str().expect("user_code").to_owned();
    s.cli_ok(&["device", "approve", &user_code, "--tenant", "default", "--username", "bob"], None);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let poll = json!({"grant_type": "device_code", "client_id": id, "device_code": code});
    let r = tapis_post(&s, "tokens", poll.clone(), None).await;
    assert_tapis_error(&r, 400, "invalid_client", "tapis poll, id alone");
    let r = s.token("default", &[("grant_type", DEVICE), ("device_code", &code)], Auth::Public(&id)).await;
    r.assert_error(401, "invalid_client", "standard poll, id alone");
    let mut with_key = poll;
    with_key["client_key"] = secret.clone().into();
    let (st, v) = tapis_post(&s, "tokens", with_key, None).await;
    assert_eq!(st, 201, "tapis poll with the key: {v}");
    assert_eq!(
        decode_jwt(v["result"]["access_token"]["access_token"].as_str().expect("jwt")).claims["username"],
        "bob"
    );

    // A public client names itself and goes through.
    let public = s.create_public_client("default", DEVICE, None);
    let (st, v) = tapis_post(&s, "device/code", json!({"client_id": public}), None).await;
    assert_eq!(st, 200, "device/code for a public client: {v}");
}

// ----- 8a: front lifetimes are capped by the tenant's ---------------------------------------

#[tokio::test]
async fn front_session_tokens_never_outlive_the_tenants_access_lifetime() {
    let s = TestServer::start_with_env(&[("TESSERA_ACCESS_TTL", "120")]).await;
    s.create_user("default", "bob", PW);
    let sftpgo = s.http.get(format!("{}/api/v2/user/token", s.base)).basic_auth("bob", Some(PW)).send().await;
    let v: Value = sftpgo.expect("sftpgo token").json().await.expect("sftpgo JSON");
    let jwt = decode_jwt(v["access_token"].as_str().unwrap_or_else(|| panic!("sftpgo: {v}")));
    assert_eq!(jwt.claims["exp"].as_i64().unwrap() - jwt.claims["iat"].as_i64().unwrap(), 120, "sftpgo: {v}");

    let url = format!("{}/api/2.0/security/oauth2/token", s.base);
    let docspace = s.http.get(url).basic_auth("bob", Some(PW)).send().await;
    let v: Value = docspace.expect("docspace token").json().await.expect("docspace JSON");
    let jwt = decode_jwt(v["response"].as_str().unwrap_or_else(|| panic!("docspace: {v}")));
    assert_eq!(jwt.claims["exp"].as_i64().unwrap() - jwt.claims["iat"].as_i64().unwrap(), 120, "docspace: {v}");
}

// ----- 8b: a replaced key outlives every token it signed -------------------------------------

#[tokio::test]
async fn replaced_key_verifies_its_tokens_after_the_lifetime_was_lowered() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", None);
    let (iid, isecret) = s.create_client("default", "client_credentials", None);
    let old = s.cc_token("default", &id, &secret, None).await;
    let old_kid = decode_jwt(&old).header["kid"].as_str().expect("kid").to_owned();
    let exp = decode_jwt(&old).claims["exp"].as_i64().expect("exp");
    assert!(exp > now() + 3000, "a token of the default lifetime (3600 s)");

    // The lifetime drops to 2 s, then the key is replaced; wait until the server has both.
    s.cli_ok(&["tenant", "policy", "default", "--access-ttl", "2"], None);
    s.rotate_key("default");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let t = s.cc_token("default", &id, &secret, None).await;
        let jwt = decode_jwt(&t);
        if jwt.header["kid"] != old_kid.as_str()
            && jwt.claims["exp"].as_i64() == jwt.claims["iat"].as_i64().map(|i| i + 2)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the server never picked up the new key and lifetime");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Well past the new lifetime, the old key's token (valid for an hour) still verifies.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(s.is_active("default", &old, Auth::Basic(&iid, &isecret)).await, "old-key token must stay active");
    let jwks = s.jwks("default").await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().filter_map(|k| k["kid"].as_str()).collect();
    assert!(kids.contains(&old_kid.as_str()), "JWKS must still list the old kid {old_kid}: {kids:?}");
}

// ----- 8c: chosen client secrets are stored salted and slow -----------------------------------

/// SHA-256, base64url: how the store would keep a secret unsalted.
fn sha256_b64(s: &str) -> String {
    b64e(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes()).as_ref())
}

/// Every byte of the SQLite database (main file and write-ahead log).
fn database_bytes(s: &TestServer) -> Vec<u8> {
    let mut all = Vec::new();
    for name in ["tessera.db", "tessera.db-wal"] {
        if let Ok(b) = std::fs::read(s.data_dir.join(name)) {
            all.extend(b);
        }
    }
    assert!(!all.is_empty(), "no database in {}", s.data_dir.display());
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn chosen_client_secrets_are_hashed_with_argon2id() {
    let s = TestServer::start().await;
    s.cli_ok(&["tenant", "policy", "default", "--max-user-clients", "5"], None);
    s.create_user("default", "eve", PW);
    let eve = tapis_token(&s, "eve", PW).await;
    let key = "eve-chose-this-client-key-42";
    let body = json!({"client_id": "eve-app", "client_key": key});
    let (st, v) = tapis_post(&s, "clients", body, Some(&eve)).await;
    assert_eq!(st, 200, "create client with a chosen key: {v}");
    // The key works, at Tapis and at the standard endpoint.
    let grant =
        json!({"grant_type": "password", "username": "eve", "password": PW, "client_id": "eve-app", "client_key": key});
    let (st, v) = tapis_post(&s, "tokens", grant, None).await;
    assert_eq!(st, 201, "password grant with the chosen key: {v}");
    let form = [("grant_type", "password"), ("username", "eve"), ("password", PW)];
    s.token("default", &form, Auth::Basic("eve-app", key)).await.assert_ok("standard, Basic with the chosen key");
    s.token("default", &form, Auth::Basic("eve-app", "eve-chose-this-client-key-43")).await.assert_error(
        401,
        "invalid_client",
        "a wrong key",
    );

    let db = database_bytes(&s);
    assert!(!contains(&db, &sha256_b64(key)), "the chosen key must not be stored as its unsalted SHA-256");
    assert!(contains(&db, "$argon2id$"), "the chosen key is stored as an Argon2id hash");

    // A key of one repeated character is refused, however long.
    let weak = json!({"client_id": "eve-weak", "client_key": "x".repeat(30)});
    assert_tapis_error(&tapis_post(&s, "clients", weak, Some(&eve)).await, 400, "invalid_request", "weak key");
}

// ----- 8d: who may create clients through the Tapis API ---------------------------------------

#[tokio::test]
async fn only_admins_create_clients_unless_the_tenant_allows_users_some() {
    let s = TestServer::start().await;
    s.create_user("default", "bob", PW);
    let bob = tapis_token(&s, "bob", PW).await;
    let admin = tapis_token(&s, "admin", s.admin_password.as_deref().expect("bootstrap password")).await;

    // By default a user who is not an administrator may not.
    let r = tapis_post(&s, "clients", json!({"client_id": "bob-1"}), Some(&bob)).await;
    assert_tapis_error(&r, 403, "forbidden", "a user creates a client by default");
    let (st, v) = tapis_post(&s, "clients", json!({"client_id": "admin-1"}), Some(&admin)).await;
    assert_eq!(st, 200, "an admin creates a client: {v}");
    assert_eq!(v["result"]["owner"], "admin", "{v}");

    // The tenant allows one per user.
    s.cli_ok(&["tenant", "policy", "default", "--max-user-clients", "1"], None);
    let (st, v) = tapis_post(&s, "clients", json!({"client_id": "bob-1"}), Some(&bob)).await;
    assert_eq!(st, 200, "bob's first client: {v}");
    assert_eq!(v["result"]["owner"], "bob", "{v}");
    let r = tapis_post(&s, "clients", json!({"client_id": "bob-2"}), Some(&bob)).await;
    assert_tapis_error(&r, 403, "at most 1", "bob's second client");
    // An admin is not limited, nor is the operator.
    for n in 2..4 {
        let (st, v) = tapis_post(&s, "clients", json!({"client_id": format!("admin-{n}")}), Some(&admin)).await;
        assert_eq!(st, 200, "admin client {n}: {v}");
    }
    s.create_client("default", "client_credentials", None);
    // Deleting his client frees bob's slot.
    let del = s.http.delete(format!("{}/v3/oauth2/clients/bob-1", s.base)).header("X-Tapis-Token", &bob).send().await;
    assert_eq!(del.expect("delete").status().as_u16(), 200);
    let (st, v) = tapis_post(&s, "clients", json!({"client_id": "bob-2"}), Some(&bob)).await;
    assert_eq!(st, 200, "bob's client after deleting the first: {v}");
    let out = s.cli(&["tenant", "policy", "default", "--max-user-clients", "-1"], None);
    assert!(!out.status.success(), "a negative limit is refused: {}", out.stdout);
}

// ----- 8e: /metrics ---------------------------------------------------------------------------

#[tokio::test]
async fn metrics_token_is_required_when_set() {
    let token = "metrics-token-0123456789";
    let s = TestServer::start_with_env(&[("TESSERA_METRICS_TOKEN", token)]).await;
    let url = format!("{}/metrics", s.base);
    for (what, auth) in [("none", None), ("wrong", Some("metrics-token-0123456788")), ("right", Some(token))] {
        let mut req = s.http.get(&url);
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("GET /metrics");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        if what == "right" {
            assert_eq!(status, 200, "{what}: {text}");
            assert!(text.contains("tessera_http_requests_total"), "{text}");
        } else {
            assert_eq!(status, 401, "{what}: {text}");
            assert!(!text.contains("tessera_"), "{what}: no metrics in a refusal: {text}");
        }
    }
    assert!(!s.server_log().contains(token), "metrics token in the server log");
}

/// A non-loopback address of this machine (the one it would use to reach the outside).
fn outside_address() -> Option<std::net::IpAddr> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9").ok()?;
    Some(sock.local_addr().ok()?.ip()).filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

#[tokio::test]
async fn metrics_on_a_public_listener_answer_loopback_peers_only() {
    let Some(outside) = outside_address() else {
        panic!("this test needs a non-loopback interface to connect from");
    };
    let s = TestServer::start_on("0.0.0.0:0", &[]).await;
    let get = |ip: std::net::IpAddr| {
        let http = s.http.clone();
        let addr = std::net::SocketAddr::new(ip, s.port);
        async move {
            let r = http.get(format!("http://{addr}/metrics")).send().await.expect("GET /metrics");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let (st, text) = get(std::net::Ipv4Addr::LOCALHOST.into()).await;
    assert_eq!(st, 200, "from loopback: {text}");
    let (st, text) = get(outside).await;
    assert_eq!(st, 403, "from {outside}: {text}");
    assert!(!text.contains("tessera_"), "no metrics in a refusal: {text}");
    // The rest of the server answers everyone.
    let addr = std::net::SocketAddr::new(outside, s.port);
    let r = s.http.get(format!("http://{addr}/healthz")).send().await.expect("healthz");
    assert_eq!(r.status().as_u16(), 200);
}
