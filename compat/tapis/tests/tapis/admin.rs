//! `admin.get_config / update_config`.

use crate::common::*;

async fn admin(s: &Server) -> TapisAuthenticator {
    let jwt = s.access_token("admin", &s.admin_password).await;
    s.tapis(Some(&jwt))
}

#[tokio::test]
async fn admin_config_get_and_ttls() {
    let s = Server::start();
    allow_user_clients(&s);
    user(&s, "alice");
    let a = admin(&s).await;
    let cfg = *ok(a.admin.get_config().await, "get_config").result.expect("result");
    let grants = cfg.allowable_grant_types.clone().expect("allowable_grant_types");
    for g in ["password", "refresh_token"] {
        assert!(grants.iter().any(|x| x == g), "allowable_grant_types should include {g}: {grants:?}");
    }
    assert!(
        grants.iter().any(|x| x.contains("device_code")),
        "allowable_grant_types should include device_code: {grants:?}"
    );
    assert!(cfg.default_access_token_ttl.is_some_and(|t| t > 0), "{cfg:?}");
    assert!(cfg.default_refresh_token_ttl.is_some_and(|t| t > 0), "{cfg:?}");

    let upd = NewTenantConfig {
        default_access_token_ttl: Some(600),
        default_refresh_token_ttl: Some(7200),
        ..Default::default()
    };
    let cfg2 = *ok(a.admin.update_config(upd).await, "update_config ttls").result.expect("result");
    assert_eq!(cfg2.default_access_token_ttl, Some(600));
    assert_eq!(cfg2.default_refresh_token_ttl, Some(7200));
    assert_eq!(cfg2.allowable_grant_types.as_ref(), Some(&grants), "grants unchanged by a ttl update");
    let cfg3 = *ok(a.admin.get_config().await, "get_config after update").result.unwrap();
    assert_eq!(cfg3.default_access_token_ttl, Some(600));
    assert_eq!(cfg3.default_refresh_token_ttl, Some(7200));

    let t = s.password_token("alice", PW).await;
    assert_eq!(t.access_token.expires_in, Some(600), "new access ttl applies to the next token");
    check_access(&s, &t, "default", "alice", None, "password").await;

    let alice = s.tapis(Some(&access(&t)));
    let (id, key) = tapis_client(&alice).await;
    let t =
        token_ok(s.tapis(None).tokens.create_token(password_with_client("alice", &id, &key)).await, "password+client");
    assert_eq!(t.access_token.expires_in, Some(600));
    check_refresh(&t);
    assert_eq!(t.refresh_token.as_ref().unwrap().expires_in, Some(7200), "new refresh ttl applies");
}

#[tokio::test]
async fn admin_config_restricts_grants() {
    let s = Server::start();
    allow_user_clients(&s);
    user(&s, "alice");
    let a = admin(&s).await;
    let alice = s.tapis(Some(&s.access_token("alice", PW).await));
    let (id, key) = tapis_client(&alice).await;
    let anon = s.tapis(None);
    let t = token_ok(anon.tokens.create_token(password_with_client("alice", &id, &key)).await, "password+client");

    let original = ok(a.admin.get_config().await, "get_config").result.unwrap().allowable_grant_types.unwrap();
    let without: Vec<String> = original.iter().filter(|g| *g != "password").cloned().collect();
    assert!(without.len() < original.len(), "password was allowed: {original:?}");
    let upd = NewTenantConfig { allowable_grant_types: Some(without.clone()), ..Default::default() };
    let cfg = *ok(a.admin.update_config(upd).await, "update_config grants").result.unwrap();
    assert_eq!(cfg.allowable_grant_types.as_ref(), Some(&without));

    err(anon.tokens.create_token(password_grant("alice", PW)).await, 400, "password grant when not allowed");
    err(
        anon.tokens.create_token(password_with_client("alice", &id, &key)).await,
        400,
        "password+client when not allowed",
    );
    // Other grants still work.
    let t2 = token_ok(anon.tokens.create_token(refresh_grant(&refresh(&t), &id, &key)).await, "refresh still allowed");
    check_refresh(&t2);

    let upd = NewTenantConfig { allowable_grant_types: Some(original.clone()), ..Default::default() };
    ok(a.admin.update_config(upd).await, "restore grants");
    token_ok(anon.tokens.create_token(password_grant("alice", PW)).await, "password grant allowed again");
}

#[tokio::test]
async fn admin_config_is_for_admins() {
    let s = Server::start();
    let (_jwt, alice) = user_with_token(&s, "alice").await;
    err(alice.admin.get_config().await, 403, "get_config as a plain user");
    err(
        alice.admin.update_config(NewTenantConfig { default_access_token_ttl: Some(60), ..Default::default() }).await,
        403,
        "update_config as a plain user",
    );
    for (what, c) in [("no token", s.tapis(None)), ("garbage token", s.tapis(Some("garbage")))] {
        err(c.admin.get_config().await, 401, &format!("get_config, {what}"));
        err(c.admin.update_config(NewTenantConfig::default()).await, 401, &format!("update_config, {what}"));
    }
    // The refused update changed nothing.
    let t = s.password_token("alice", PW).await;
    assert_ne!(t.access_token.expires_in, Some(60));

    // `tessera user create --role admin` makes another admin.
    s.create_user("default", "root2", PW, &["--role", "admin"]);
    let r2 = s.tapis(Some(&s.access_token("root2", PW).await));
    ok(r2.admin.get_config().await, "get_config as a --role admin user");
}
