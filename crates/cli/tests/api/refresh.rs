//! Refresh tokens: rotation on every use, reuse detection revokes the family.

use crate::harness::{Auth, Expect, TestServer, assert_scope_eq};

const PW: &str = "correct horse battery";

#[tokio::test]
async fn refresh_rotation_and_reuse_detection() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "password,refresh_token", Some("read write"));
    s.create_user("default", "alice", PW);
    let auth = Auth::Basic(&id, &secret);
    let first = s.password_token("default", &id, &secret, "alice", PW, Some("read write")).await;
    let r1 = first["refresh_token"].as_str().expect("refresh_token").to_string();

    // Refresh once: a new access token and a new refresh token.
    let r = s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", &r1)], auth).await;
    let second = r.assert_ok("first refresh").clone();
    let cache = r.header("cache-control").unwrap_or_default();
    assert!(cache.contains("no-store"), "refresh response needs Cache-Control: no-store, got {cache:?}");
    let want = Expect { alg: "EdDSA", sub: "alice", client_id: &id, scope: "read write", issuer: None };
    s.check_access_token("default", &second, &want).await;
    let r2 = second["refresh_token"]
        .as_str()
        .expect("rotation: refresh response must carry a new refresh_token")
        .to_string();
    assert!(r2.starts_with("tsr_"), "{r2}");
    assert_ne!(r1, r2, "refresh token must rotate");
    assert_ne!(first["access_token"], second["access_token"]);

    // The old one again: reuse => invalid_grant, and the family dies.
    let r = s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", &r1)], auth).await;
    r.assert_error(400, "invalid_grant", "reused (rotated) refresh token");
    let r = s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", &r2)], auth).await;
    r.assert_error(400, "invalid_grant", "successor of a reused refresh token");
}

#[tokio::test]
async fn refresh_token_is_bound_to_its_client() {
    // RFC 6749 6: the refresh token must have been issued to the authenticated client.
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "password,refresh_token", Some("read"));
    let (other_id, other_secret) = s.create_client("default", "password,refresh_token", Some("read"));
    s.create_user("default", "alice", PW);
    let first = s.password_token("default", &id, &secret, "alice", PW, None).await;
    let rt = first["refresh_token"].as_str().expect("refresh_token").to_string();
    let r = s
        .token(
            "default",
            &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            Auth::Basic(&other_id, &other_secret),
        )
        .await;
    r.assert_error(400, "invalid_grant", "refresh token presented by another client");
}

#[tokio::test]
async fn refresh_can_narrow_but_not_widen_scope() {
    // RFC 6749 6: requested scope must not include any scope not originally granted.
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "password,refresh_token", Some("read write"));
    s.create_user("default", "alice", PW);
    let auth = Auth::Basic(&id, &secret);
    let first = s.password_token("default", &id, &secret, "alice", PW, Some("read")).await;
    let rt = first["refresh_token"].as_str().expect("refresh_token").to_string();
    let r = s
        .token("default", &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("scope", "read write")], auth)
        .await;
    r.assert_error(400, "invalid_scope", "refresh asking for more than originally granted");

    // Narrowing is allowed: a grant of "read write" refreshed down to "read".
    let first = s.password_token("default", &id, &secret, "alice", PW, Some("read write")).await;
    let rt = first["refresh_token"].as_str().expect("refresh_token").to_string();
    let r =
        s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", &rt), ("scope", "read")], auth).await;
    let body = r.assert_ok("narrowing refresh");
    assert_scope_eq(body["scope"].as_str().unwrap_or_default(), "read");
}
