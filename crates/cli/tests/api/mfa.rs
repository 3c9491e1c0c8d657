//! Two-factor authentication through the standard password grant and the device flow, as
//! a client sees them.

use crate::harness::*;
use tessera_core::totp;

#[tokio::test]
async fn password_grant_asks_for_the_code_then_accepts_it_once() {
    let s = TestServer::start().await;
    s.create_user("default", "carol", "carol's long password");
    let (id, secret) = s.create_client("default", "password", None);
    let out = s.cli_ok(&["user", "totp", "enable", "--username", "carol", "--json"], None);
    let enrol: serde_json::Value = serde_json::from_str(&out).expect("json");
    let raw = base32_decode(enrol["secret"].as_str().expect("secret"));
    let code = totp::code_at(&raw, now());
    let out = s.cli_ok(&["user", "totp", "confirm", "--username", "carol", "--code", &code, "--json"], None);
    let recovery: serde_json::Value = serde_json::from_str(&out).expect("json");
    let recovery = recovery["recovery_codes"][0].as_str().expect("codes").to_owned();

    let form = [("grant_type", "password"), ("username", "carol"), ("password", "carol's long password")];
    let r = s.token("default", &form, Auth::Basic(&id, &secret)).await;
    r.assert_error(400, "mfa_required", "no otp");
    let mut with = form.to_vec();
    with.push(("otp", &code));
    // The confirmation spent this step's code.
    s.token("default", &with, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", "replayed code");
    let mut with = form.to_vec();
    with.push(("otp", &recovery));
    s.token("default", &with, Auth::Basic(&id, &secret)).await.assert_ok("recovery code");
    s.token("default", &with, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", "recovery reused");
    // Wrong password with a valid-looking code is still just invalid_grant.
    let bad = [("grant_type", "password"), ("username", "carol"), ("password", "nope nope nope"), ("otp", "123456")];
    s.token("default", &bad, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", "wrong password");
    s.cli_ok(&["user", "totp", "disable", "--username", "carol"], None);
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_ok("2FA off");
}

#[tokio::test]
async fn device_flow_over_http_with_the_verification_page() {
    let s = TestServer::start_with_env(&[("TESSERA_DEVICE_INTERVAL", "1")]).await;
    s.create_user("default", "dave", "dave's long password");
    let id = s.create_public_client("default", "urn:ietf:params:oauth:grant-type:device_code", None);
    let r = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&id)).await;
    let d = r.assert_ok("device authorization").clone();
    let device_code = d["device_code"].as_str().expect("device_code").to_owned();
    let user_code = d["user_code"].as_str().expect("user_code").to_owned();
    assert_eq!(d["interval"], 1);
    assert!(d["verification_uri"].as_str().expect("uri").ends_with("/device"));
    let poll = [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code.as_str())];
    s.token("default", &poll, Auth::Public(&id)).await.assert_error(400, "authorization_pending", "pending");

    // The page shows the client and takes the user's approval.
    let page = s.get(&format!("/device?user_code={user_code}")).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("Approve") && page.text.contains(&user_code), "{}", page.text);
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    let http = reqwest::Client::new();
    let wrong = http
        .post(s.url("default", "/device"))
        .form(&[
            ("user_code", user_code.as_str()),
            ("username", "dave"),
            ("password", "wrong password"),
            ("action", "approve"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(wrong.status().as_u16(), 401);
    let ok = http
        .post(s.url("default", "/device"))
        .form(&[
            ("user_code", user_code.as_str()),
            ("username", "dave"),
            ("password", "dave's long password"),
            ("action", "approve"),
        ])
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let t = s.token("default", &poll, Auth::Public(&id)).await;
    let body = t.assert_ok("approved").clone();
    let jwt = decode_jwt(body["access_token"].as_str().expect("token"));
    assert_eq!(jwt.claims["sub"], "dave");
    s.token("default", &poll, Auth::Public(&id)).await.assert_error(400, "invalid_grant", "used once");
}
