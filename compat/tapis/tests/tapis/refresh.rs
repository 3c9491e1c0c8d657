//! `tokens.create_token` with grant_type refresh_token: rotation, counting, reuse detection.

use crate::common::*;

#[tokio::test]
async fn refresh_grant_rotates_and_counts() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, authed) = user_with_token(&s, "alice").await;
    let (id, key) = tapis_client(&authed).await;
    let anon = s.tapis(None);
    let t0 = token_ok(anon.tokens.create_token(password_with_client("alice", &id, &key)).await, "password+client");
    let rt0 = check_refresh(&t0);

    let t1 = token_ok(anon.tokens.create_token(refresh_grant(&rt0, &id, &key)).await, "refresh 1");
    let rt1 = check_refresh(&t1);
    assert_ne!(rt1, rt0, "refresh tokens rotate");
    let c1 = check_access(&s, &t1, "default", "alice", Some(&id), c1_grant(&s, &t1).await.as_str()).await;
    assert_eq!(c1["tapis/refresh_count"], 1, "after one refresh: {c1}");
    assert_ne!(access(&t1), access(&t0));

    let t2 = token_ok(anon.tokens.create_token(refresh_grant(&rt1, &id, &key)).await, "refresh 2");
    let rt2 = check_refresh(&t2);
    assert_ne!(rt2, rt1);
    let c2 = check_access(&s, &t2, "default", "alice", Some(&id), c1_grant(&s, &t2).await.as_str()).await;
    assert_eq!(c2["tapis/refresh_count"], 2, "after two refreshes: {c2}");

    // The refreshed access token is good for the user APIs.
    let me = ok(s.tapis(Some(&access(&t2))).profiles.get_userinfo().await, "userinfo with refreshed token");
    assert_eq!(me.result.unwrap().username.as_deref(), Some("alice"));

    check_refresh_jti(&t0);
    check_refresh_jti(&t2);
}

/// The grant recorded in a refreshed token: either the original grant (as the real
/// authenticator carries it in the refresh token) or `refresh_token`.
async fn c1_grant(s: &Server, t: &TokenResponse) -> String {
    let (_, c) = s.verify_jwt("default", &access(t)).await;
    let g =
        c["tapis/grant_type"].as_str().unwrap_or_else(|| panic!("tapis/grant_type must be a string: {c}")).to_owned();
    assert!(g == "password" || g == "refresh_token", "tapis/grant_type of a refreshed token: {g}");
    g
}

#[tokio::test]
async fn refresh_reuse_kills_the_family() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, authed) = user_with_token(&s, "alice").await;
    let (id, key) = tapis_client(&authed).await;
    let anon = s.tapis(None);
    let t0 = token_ok(anon.tokens.create_token(password_with_client("alice", &id, &key)).await, "password+client");
    let rt0 = check_refresh(&t0);
    let t1 = token_ok(anon.tokens.create_token(refresh_grant(&rt0, &id, &key)).await, "refresh");
    let rt1 = check_refresh(&t1);

    err(anon.tokens.create_token(refresh_grant(&rt0, &id, &key)).await, 400, "reuse of a rotated refresh token");
    err(anon.tokens.create_token(refresh_grant(&rt1, &id, &key)).await, 400, "successor after reuse (family revoked)");
}

#[tokio::test]
async fn refresh_grant_needs_its_client() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, authed) = user_with_token(&s, "alice").await;
    let (id, key) = tapis_client(&authed).await;
    let (other_id, other_key) = tapis_client(&authed).await;
    let anon = s.tapis(None);
    let t0 = token_ok(anon.tokens.create_token(password_with_client("alice", &id, &key)).await, "password+client");
    let rt0 = check_refresh(&t0);

    let no_client =
        NewToken { refresh_token: Some(rt0.clone()), grant_type: Some("refresh_token".into()), ..Default::default() };
    err(anon.tokens.create_token(no_client).await, 400, "refresh without client");
    err(
        anon.tokens.create_token(refresh_grant(&rt0, &id, "wrong-key-wrong-key-wrong-key")).await,
        400,
        "refresh, wrong key",
    );
    err(anon.tokens.create_token(refresh_grant(&rt0, &other_id, &other_key)).await, 400, "refresh by another client");
    err(anon.tokens.create_token(refresh_grant("tsr_not-a-real-token", &id, &key)).await, 400, "unknown refresh token");
    let missing = NewToken {
        client_id: Some(id.clone()),
        client_key: Some(key.clone()),
        grant_type: Some("refresh_token".into()),
        ..Default::default()
    };
    err(anon.tokens.create_token(missing).await, 400, "refresh_token missing");
    // An access token is not a refresh token.
    err(anon.tokens.create_token(refresh_grant(&access(&t0), &id, &key)).await, 400, "access token as refresh token");
}
