//! First start, restart and shutdown: state lives in the data dir.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{Auth, TestServer, decode_jwt};

const PW: &str = "correct horse battery";

#[tokio::test]
async fn first_start_bootstraps_data_dir_and_admin() {
    let mut s = TestServer::start().await;
    let key = s.data_dir.join("master.key");
    let meta = std::fs::metadata(&key).unwrap_or_else(|e| panic!("{} missing: {e}", key.display()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "master.key must be 0600");
    assert!(s.data_dir.join("tessera.db").exists(), "tessera.db missing");

    let listen_at = s.startup_lines.iter().position(|l| l.starts_with("tessera listening on ")).unwrap();
    let boot_at = s
        .startup_lines
        .iter()
        .position(|l| l.starts_with("bootstrap admin: username=admin password="))
        .unwrap_or_else(|| panic!("no bootstrap admin line on first start: {:?}", s.startup_lines));
    assert!(boot_at < listen_at, "bootstrap line must come before the listening line");
    let admin_pw = s.admin_password.clone().unwrap();
    assert!(admin_pw.len() >= 10, "bootstrap password too short: {admin_pw:?}");

    // The bootstrap admin can log in with the printed password.
    let (id, secret) = s.create_client("default", "password", None);
    let body = s.password_token("default", &id, &secret, "admin", &admin_pw, None).await;
    assert_eq!(decode_jwt(body["access_token"].as_str().unwrap()).claims["sub"], "admin");

    // Shown once: a restart does not print (or reset) it.
    s.restart().await;
    assert!(
        !s.startup_lines.iter().any(|l| l.contains("bootstrap admin")),
        "bootstrap admin printed again on restart: {:?}",
        s.startup_lines
    );
    s.password_token("default", &id, &secret, "admin", &admin_pw, None).await;
}

#[tokio::test]
async fn state_survives_restart() {
    let mut s = TestServer::start().await;
    s.create_tenant("acme", &["--alg", "ES256"]);
    let (id, secret) = s.create_client("acme", "client_credentials,password,refresh_token", Some("read"));
    s.create_user("acme", "alice", PW);
    let auth = Auth::Basic(&id, &secret);

    let kept = s.cc_token("acme", &id, &secret, None).await;
    let revoked = s.cc_token("acme", &id, &secret, None).await;
    let body = s.password_token("acme", &id, &secret, "alice", PW, None).await;
    let rt = body["refresh_token"].as_str().expect("refresh_token").to_string();
    let r = s.revoke("acme", &revoked, auth).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(!s.is_active("acme", &revoked, auth).await);
    let kid = decode_jwt(&kept).header["kid"].as_str().unwrap().to_string();

    s.restart().await;

    // Client and key: the client still authenticates, old tokens still verify.
    assert!(s.is_active("acme", &kept, auth).await, "token issued before restart must stay active");
    assert!(!s.is_active("acme", &revoked, auth).await, "token revoked before restart must stay inactive");
    let fresh = decode_jwt(&s.cc_token("acme", &id, &secret, None).await);
    assert_eq!(fresh.header["kid"], kid.as_str(), "signing key should survive restart");
    assert_eq!(fresh.header["alg"], "ES256", "tenant algorithm should survive restart");
    assert!(s.jwk("acme", &kid).await.is_some(), "kid {kid} missing from JWKS after restart");
    // User and refresh token.
    s.password_token("acme", &id, &secret, "alice", PW, None).await;
    let r = s.token("acme", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], auth).await;
    r.assert_ok("refresh token issued before restart");
}

#[tokio::test]
async fn sigterm_shuts_down_cleanly() {
    let mut s = TestServer::start().await;
    let r = s.get("/healthz").await;
    assert_eq!(r.status, 200);
    let st = s.stop().expect("server did not exit within 10 s of SIGTERM");
    assert!(st.success(), "SIGTERM should end in a clean exit, got {st}");
}
