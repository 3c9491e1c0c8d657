//! The device flow: `tokens.generate_device_code`, approval or denial by the CLI, and polling
//! with `tokens.create_token` (grant_type device_code). The server runs with
//! TESSERA_DEVICE_INTERVAL=1.

use crate::common::*;
use tessera_compat_tapis::tapis_authenticator::models::DeviceCodeResponse;

/// The crate's device flow sends a `client_id` alone: that of a public client (made with the
/// CLI's `--public`; a confidential client must send its key, see
/// `confidential_client_must_authenticate_for_device_flow`).
fn public_device_client(s: &Server) -> String {
    let grants = "password,refresh_token,urn:ietf:params:oauth:grant-type:device_code";
    s.cli_client("default", "tv-app", grants, true).0
}

async fn device_code(s: &Server, client: &TapisAuthenticator, client_id: &str) -> DeviceCodeResponse {
    let r = ok(
        client.tokens.generate_device_code(NewDeviceCode { client_id: client_id.into() }).await,
        "generate_device_code",
    );
    let d = *r.result.expect("generate_device_code: no result");
    assert_eq!(d.client_id, client_id);
    assert!(!d.device_code.is_empty());
    let letters: String = d.user_code.chars().filter(|c| *c != '-').collect();
    assert_eq!(letters.len(), 8, "user_code should be 8 characters (maybe XXXX-XXXX): {}", d.user_code);
    assert!(
        letters.chars().all(|c| c.is_ascii_uppercase() && !"AEIOU".contains(c)),
        "user_code from a reduced A-Z alphabet: {}",
        d.user_code
    );
    assert!(d.verification_uri.starts_with("http"), "verification_uri: {}", d.verification_uri);
    let _ = s;
    d
}

fn pending_message(v: &Value, word: &str, what: &str) {
    let m = message(v);
    assert!(m.contains(word), "{what}: message should contain {word}: {m}");
}

#[tokio::test]
async fn device_flow_approved_by_cli() {
    let s = Server::start();
    user(&s, "bob");
    let id = public_device_client(&s);
    let anon = s.tapis(None);
    let d = device_code(&s, &anon, &id).await;
    // Default lifetime 600 s: expires_in is the expiry instant.
    let exp = d.expires_in.timestamp();
    assert!((exp - (now() + 600)).abs() <= 60, "expires_in {} should be ~now+600", d.expires_in);

    sleep(1.2).await;
    let v = err(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, 400, "poll before approval");
    pending_message(&v, "authorization_pending", "poll before approval");

    s.cli_ok(&["device", "approve", &d.user_code, "--tenant", "default", "--username", "bob"]);
    sleep(1.2).await;
    let t = token_ok(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, "poll after approval");
    let c = check_access(&s, &t, "default", "bob", Some(&id), "device_code").await;
    assert_eq!(c["tapis/refresh_count"], 0, "{c}");
    let me = ok(s.tapis(Some(&access(&t))).profiles.get_userinfo().await, "userinfo with device token");
    assert_eq!(me.result.unwrap().username.as_deref(), Some("bob"));

    // A device code gives tokens once.
    sleep(1.2).await;
    err(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, 400, "second redemption of a device code");
}

#[tokio::test]
async fn device_flow_denied_with_cli_client() {
    let s = Server::start();
    user(&s, "bob");
    let id = public_device_client(&s);
    let anon = s.tapis(None);
    let d = device_code(&s, &anon, &id).await;
    s.cli_ok(&["device", "deny", &d.user_code, "--tenant", "default", "--username", "bob"]);
    sleep(1.2).await;
    let v = err(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, 400, "poll after denial");
    pending_message(&v, "access_denied", "poll after denial");
}

#[tokio::test]
async fn device_flow_approve_with_bare_user_code() {
    // Approving with the code exactly as shown is covered above; here the code is typed
    // without its separator, as users do.
    let s = Server::start();
    user(&s, "bob");
    let id = public_device_client(&s);
    let anon = s.tapis(None);
    let d = device_code(&s, &anon, &id).await;
    let bare: String = d.user_code.chars().filter(|c| *c != '-').collect();
    s.cli_ok(&["device", "approve", &bare, "--tenant", "default", "--username", "bob"]);
    sleep(1.2).await;
    let t = token_ok(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, "poll after approval");
    check_access(&s, &t, "default", "bob", Some(&id), "device_code").await;
}

#[tokio::test]
async fn device_flow_slow_down() {
    let s = Server::start();
    user(&s, "bob");
    let id = public_device_client(&s);
    let anon = s.tapis(None);
    let d = device_code(&s, &anon, &id).await;
    sleep(1.2).await;
    let v = err(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, 400, "first poll");
    pending_message(&v, "authorization_pending", "first poll");
    let v = err(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, 400, "immediate second poll");
    pending_message(&v, "slow_down", "immediate second poll");
}

#[tokio::test]
async fn device_flow_expired() {
    let s = Server::start_with_env(&[("TESSERA_DEVICE_TTL", "2")]);
    user(&s, "bob");
    let id = public_device_client(&s);
    let anon = s.tapis(None);
    let d = device_code(&s, &anon, &id).await;
    assert!((d.expires_in.timestamp() - (now() + 2)).abs() <= 5, "expires_in {} should be ~now+2", d.expires_in);
    sleep(3.5).await;
    let v = err(anon.tokens.create_token(device_grant(&id, &d.device_code)).await, 400, "poll after expiry");
    pending_message(&v, "expired_token", "poll after expiry");
}

#[tokio::test]
async fn device_code_failures() {
    let s = Server::start();
    let (jwt, _authed) = user_with_token(&s, "bob").await;
    let id = public_device_client(&s);
    let other_id = public_device_client(&s);

    // X-Tapis-Token may be present and is ignored (valid or not).
    device_code(&s, &s.tapis(Some(&jwt)), &id).await;
    let junk = s.tapis(Some("garbage"));
    let d = device_code(&s, &junk, &id).await;

    let anon = s.tapis(None);
    err(
        anon.tokens.generate_device_code(NewDeviceCode { client_id: "no-such-client".into() }).await,
        400,
        "device code for unknown client",
    );
    err(
        anon.tokens.generate_device_code(NewDeviceCode { client_id: String::new() }).await,
        400,
        "device code, empty client_id",
    );

    sleep(1.2).await;
    err(anon.tokens.create_token(device_grant(&id, "not-a-device-code")).await, 400, "unknown device_code");
    let no_code =
        NewToken { client_id: Some(id.clone()), grant_type: Some("device_code".into()), ..Default::default() };
    err(anon.tokens.create_token(no_code).await, 400, "device_code missing");
    let no_client = NewToken {
        device_code: Some(d.device_code.clone()),
        grant_type: Some("device_code".into()),
        ..Default::default()
    };
    err(anon.tokens.create_token(no_client).await, 400, "client_id missing");

    // Approved, but redeemed by another client: refused.
    s.cli_ok(&["device", "approve", &d.user_code, "--tenant", "default", "--username", "bob"]);
    sleep(1.2).await;
    err(anon.tokens.create_token(device_grant(&other_id, &d.device_code)).await, 400, "device code of another client");

    // Unknown user codes are refused by the CLI.
    let out = s.cli(&["device", "approve", "BCDF-GHJK", "--tenant", "default", "--username", "bob"]);
    assert!(!out.status.success(), "approving an unknown code should fail: {}", out.stdout);
    assert!(out.stderr.starts_with("error: "), "stderr: {}", out.stderr);
}

/// `POST /v3/oauth2/device/code` over raw HTTP (the crate's `NewDeviceCode` has no key):
/// (status, body).
async fn device_code_raw(s: &Server, body: Value, basic: Option<(&str, &str)>) -> (u16, Value) {
    let url = format!("{}/v3/oauth2/device/code", s.base);
    let mut req = s.http.post(&url).json(&body);
    if let Some((id, key)) = basic {
        req = req.basic_auth(id, Some(key));
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("device/code: not JSON ({e}): {text}")))
}

#[tokio::test]
async fn confidential_client_must_authenticate_for_device_flow() {
    let s = Server::start();
    user(&s, "bob");
    let grants = "password,refresh_token,urn:ietf:params:oauth:grant-type:device_code";
    let (id, key) = s.cli_client("default", "tv-conf", grants, false);
    let key = key.expect("a confidential client has a key");
    let anon = s.tapis(None);

    // The client_id alone (what the crate sends) does not start a device flow for it.
    let v = err(
        anon.tokens.generate_device_code(NewDeviceCode { client_id: id.clone() }).await,
        400,
        "device code, confidential client_id alone",
    );
    pending_message(&v, "invalid_client", "device code, confidential client_id alone");
    let (status, v) =
        device_code_raw(&s, json!({"client_id": id, "client_key": "a-wrong-key-of-enough-length"}), None).await;
    assert_eq!((status, v["status"].as_str()), (400, Some("error")), "device code, wrong key: {v}");
    pending_message(&v, "invalid_client", "device code, wrong key");

    // With its key, in the body or as Basic, it does.
    let (status, v) = device_code_raw(&s, json!({"client_id": id}), Some((&id, &key))).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("success")), "device code, Basic: {v}");
    let (status, v) = device_code_raw(&s, json!({"client_id": id, "client_key": key}), None).await;
    assert_eq!((status, v["status"].as_str()), (200, Some("success")), "device code, client_key: {v}");
    let code = v["result"]["device_code"].as_str().expect("device_code").to_owned();
    let user_code = v["result"]["user_code"].as_str().expect("user_code").to_owned();
    s.cli_ok(&["device", "approve", &user_code, "--tenant", "default", "--username", "bob"]);
    sleep(1.2).await;

    // Approved, but polled with the client_id alone: refused (and the code stays unused).
    let v = err(anon.tokens.create_token(device_grant(&id, &code)).await, 400, "poll, confidential client_id alone");
    pending_message(&v, "invalid_client", "poll, confidential client_id alone");
    let with_key = NewToken { client_key: Some(key.clone()), ..device_grant(&id, &code) };
    let t = token_ok(anon.tokens.create_token(with_key).await, "poll with the client's key");
    check_access(&s, &t, "default", "bob", Some(&id), "device_code").await;
    check_refresh(&t);
}
