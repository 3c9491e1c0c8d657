//! `tokens.revoke_token` and `tokens.create_v2_token`, checked with the standard
//! `/oauth2/introspect` of a confidential CLI client.

use crate::common::*;

#[tokio::test]
async fn revoke_access_token() {
    let s = Server::start();
    let (jwt, authed) = user_with_token(&s, "alice").await;
    let (iid, isecret) = introspector(&s, "default");
    ok(authed.profiles.get_userinfo().await, "userinfo before revoke");
    let before = s.introspect("default", &iid, &isecret, &jwt).await;
    assert_eq!(before["active"], true, "{before}");

    // Revoking with the token itself in X-Tapis-Token (the crate sends it on every call).
    let r = ok(authed.tokens.revoke_token(RevokeTokenRequest { token: Some(jwt.clone()) }).await, "revoke_token");
    assert!(r.message.as_deref().is_some_and(|m| !m.is_empty()));

    let after = s.introspect("default", &iid, &isecret, &jwt).await;
    assert_eq!(after["active"], false, "{after}");
    err(authed.profiles.get_userinfo().await, 401, "userinfo with a revoked token");
    err(authed.clients.list_clients(None, None, None).await, 401, "list_clients with a revoked token");

    // Other tokens of the same user are untouched.
    let fresh = s.access_token("alice", PW).await;
    ok(s.tapis(Some(&fresh)).profiles.get_userinfo().await, "userinfo with another token");
}

#[tokio::test]
async fn revoke_refresh_token() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, authed) = user_with_token(&s, "alice").await;
    let (id, key) = tapis_client(&authed).await;
    let (iid, isecret) = introspector(&s, "default");
    let anon = s.tapis(None);
    let t = token_ok(anon.tokens.create_token(password_with_client("alice", &id, &key)).await, "password+client");
    let rt = check_refresh(&t);
    ok(anon.tokens.revoke_token(RevokeTokenRequest { token: Some(rt.clone()) }).await, "revoke refresh token");
    let v = s.introspect("default", &iid, &isecret, &rt).await;
    assert_eq!(v["active"], false, "{v}");
    err(anon.tokens.create_token(refresh_grant(&rt, &id, &key)).await, 400, "refresh with a revoked refresh token");
}

#[tokio::test]
async fn revoke_needs_a_token() {
    let s = Server::start();
    let anon = s.tapis(None);
    err(anon.tokens.revoke_token(RevokeTokenRequest { token: None }).await, 400, "revoke without token");
}

#[tokio::test]
async fn v2_exchange_then_revoke() {
    let s = Server::start();
    let (jwt, authed) = user_with_token(&s, "alice").await;
    let (iid, isecret) = introspector(&s, "default");
    let (_, claims) = s.verify_jwt("default", &jwt).await;
    let left = claims["exp"].as_i64().unwrap() - now();

    let r = ok(authed.tokens.create_v2_token(V2Token { access_token: jwt.clone() }).await, "create_v2_token");
    let v2 = *r.result.expect("create_v2_token: no result");
    let tsl = v2.access_token.clone().expect("v2 access_token");
    assert!(tsl.starts_with("tsl_"), "v2 token should start tsl_: {tsl}");
    let expires_in = v2.expires_in.expect("v2 expires_in") as i64;
    assert!(
        expires_in > 0 && expires_in <= left + 1 && expires_in >= left - 60,
        "v2 expires_in {expires_in}, v3 has {left} s left"
    );
    assert!(v2.refresh_token.is_none(), "v2 refresh_token should be null: {:?}", v2.refresh_token);

    let v = s.introspect("default", &iid, &isecret, &tsl).await;
    assert_eq!(v["active"], true, "v2 token introspects active: {v}");
    assert_eq!(v["username"], "alice", "{v}");

    ok(s.tapis(None).tokens.revoke_token(RevokeTokenRequest { token: Some(tsl.clone()) }).await, "revoke v2 token");
    let v = s.introspect("default", &iid, &isecret, &tsl).await;
    assert_eq!(v["active"], false, "v2 token after revoke: {v}");
}

#[tokio::test]
async fn v2_exchange_failures() {
    let s = Server::start();
    let (jwt, authed) = user_with_token(&s, "alice").await;
    let (other, _) = user_with_token(&s, "bob").await;

    err(
        s.tapis(None).tokens.create_v2_token(V2Token { access_token: jwt.clone() }).await,
        401,
        "v2 without X-Tapis-Token",
    );
    err(
        s.tapis(Some("garbage")).tokens.create_v2_token(V2Token { access_token: jwt.clone() }).await,
        401,
        "v2 with invalid X-Tapis-Token",
    );
    err_in(
        authed.tokens.create_v2_token(V2Token { access_token: other.clone() }).await,
        &[400, 403],
        "v2 of another user's token",
    );
    err_in(
        authed.tokens.create_v2_token(V2Token { access_token: "garbage".into() }).await,
        &[400, 401],
        "v2 of a garbage token",
    );

    let dead = s.access_token("alice", PW).await;
    ok(s.tapis(None).tokens.revoke_token(RevokeTokenRequest { token: Some(dead.clone()) }).await, "revoke");
    err(
        s.tapis(Some(&dead)).tokens.create_v2_token(V2Token { access_token: dead.clone() }).await,
        401,
        "v2 with revoked X-Tapis-Token",
    );
}
