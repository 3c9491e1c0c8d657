//! `clients.create_client / list_clients / get_client / update_client / delete_client`.

use crate::common::*;
use tessera_compat_tapis::tapis_authenticator::models::Client;

fn ids(list: &[Client]) -> Vec<String> {
    list.iter().filter_map(|c| c.client_id.clone()).collect()
}

#[tokio::test]
async fn client_lifecycle() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, eve) = user_with_token(&s, "eve").await;
    let new = NewClient {
        client_id: Some("eve-app".into()),
        client_key: Some(KEY.into()),
        callback_url: Some("https://example.org/cb".into()),
        display_name: Some("Eve App".into()),
        description: Some("Eve's test client".into()),
    };
    let c = *ok(eve.clients.create_client(new).await, "create_client").result.expect("result");
    assert_eq!(c.client_id.as_deref(), Some("eve-app"));
    assert_eq!(c.client_key.as_deref(), Some(KEY), "the chosen key is echoed once");
    assert_eq!(c.owner.as_deref(), Some("eve"));
    assert_eq!(c.tenant_id.as_deref(), Some("default"));
    assert_eq!(c.callback_url.as_deref(), Some("https://example.org/cb"));
    assert_eq!(c.display_name.as_deref(), Some("Eve App"));
    assert_eq!(c.description.as_deref(), Some("Eve's test client"));
    assert_eq!(c.active, Some(true));
    assert!(c.create_time.as_deref().is_some_and(|t| !t.is_empty()), "create_time: {c:?}");
    assert!(c.last_update_time.as_deref().is_some_and(|t| !t.is_empty()), "last_update_time: {c:?}");

    let g = *ok(eve.clients.get_client("eve-app").await, "get_client").result.expect("result");
    assert_eq!(g.client_id.as_deref(), Some("eve-app"));
    assert_eq!(g.owner.as_deref(), Some("eve"));
    assert_eq!(g.display_name.as_deref(), Some("Eve App"));
    assert_eq!(g.callback_url.as_deref(), Some("https://example.org/cb"));
    assert_eq!(g.active, Some(true));
    assert!(g.client_key.is_none(), "client_key is shown only on create: {g:?}");

    let list = ok(eve.clients.list_clients(None, None, None).await, "list_clients").result.expect("result");
    assert_eq!(ids(&list), vec!["eve-app".to_string()]);
    assert!(list.iter().all(|c| c.client_key.is_none()), "no keys in lists: {list:?}");
    let paged =
        ok(eve.clients.list_clients(Some(10), Some(0), Some(false)).await, "list_clients with paging").result.unwrap();
    assert_eq!(ids(&paged), vec!["eve-app".to_string()]);

    let upd =
        UpdateClient { callback_url: Some("https://example.org/cb2".into()), display_name: Some("Eve App 2".into()) };
    let u = *ok(eve.clients.update_client("eve-app", upd).await, "update_client").result.expect("result");
    assert_eq!(u.display_name.as_deref(), Some("Eve App 2"));
    assert_eq!(u.callback_url.as_deref(), Some("https://example.org/cb2"));
    assert_eq!(u.client_id.as_deref(), Some("eve-app"));
    let g = *ok(eve.clients.get_client("eve-app").await, "get_client after update").result.unwrap();
    assert_eq!(g.display_name.as_deref(), Some("Eve App 2"));
    assert_eq!(g.callback_url.as_deref(), Some("https://example.org/cb2"));
    assert_eq!(g.description.as_deref(), Some("Eve's test client"), "update keeps other fields");

    // The client works for the token grants.
    let anon = s.tapis(None);
    let t =
        token_ok(anon.tokens.create_token(password_with_client("eve", "eve-app", KEY)).await, "password with eve-app");
    check_refresh(&t);
    check_access(&s, &t, "default", "eve", Some("eve-app"), "password").await;

    let d = *ok(eve.clients.delete_client("eve-app").await, "delete_client").result.expect("delete answers the client");
    assert_eq!(d.client_id.as_deref(), Some("eve-app"));
    err(eve.clients.get_client("eve-app").await, 404, "get_client after delete");
    let list = ok(eve.clients.list_clients(None, None, None).await, "list after delete").result.unwrap();
    assert!(list.is_empty(), "{list:?}");
    err(
        anon.tokens.create_token(password_with_client("eve", "eve-app", KEY)).await,
        400,
        "password with a deleted client",
    );
    err(
        anon.tokens.create_token(refresh_grant(&refresh(&t), "eve-app", KEY)).await,
        400,
        "refresh with a deleted client",
    );
    err(eve.clients.delete_client("eve-app").await, 404, "delete twice");
}

#[tokio::test]
async fn client_with_generated_id_and_key() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, eve) = user_with_token(&s, "eve").await;
    let c = *ok(eve.clients.create_client(NewClient::default()).await, "create_client {}").result.unwrap();
    let id = c.client_id.clone().filter(|s| !s.is_empty()).expect("generated client_id");
    let key = c.client_key.clone().filter(|s| !s.is_empty()).expect("generated client_key");
    assert_eq!(c.owner.as_deref(), Some("eve"));
    assert_eq!(c.active, Some(true));
    let t =
        token_ok(s.tapis(None).tokens.create_token(password_with_client("eve", &id, &key)).await, "password with it");
    check_refresh(&t);
}

#[tokio::test]
async fn client_errors() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, eve) = user_with_token(&s, "eve").await;
    let short =
        NewClient { client_id: Some("short-key".into()), client_key: Some("too-short".into()), ..Default::default() };
    err(eve.clients.create_client(short).await, 400, "client_key shorter than 24");
    let a = NewClient { client_id: Some("dup".into()), ..Default::default() };
    ok(eve.clients.create_client(a.clone()).await, "first dup");
    err_in(eve.clients.create_client(a).await, &[400, 409], "duplicate client_id");
    err(eve.clients.get_client("no-such-client").await, 404, "get unknown client");
    err(eve.clients.update_client("no-such-client", UpdateClient::default()).await, 404, "update unknown client");
    err(eve.clients.delete_client("no-such-client").await, 404, "delete unknown client");

    for (what, c) in [("no token", s.tapis(None)), ("garbage token", s.tapis(Some("garbage")))] {
        err(c.clients.create_client(NewClient::default()).await, 401, &format!("create_client, {what}"));
        err(c.clients.list_clients(None, None, None).await, 401, &format!("list_clients, {what}"));
        err(c.clients.get_client("dup").await, 401, &format!("get_client, {what}"));
        err(c.clients.update_client("dup", UpdateClient::default()).await, 401, &format!("update_client, {what}"));
        err(c.clients.delete_client("dup").await, 401, &format!("delete_client, {what}"));
    }
    // Nothing was deleted by the refused calls.
    ok(eve.clients.get_client("dup").await, "dup still there");
}

#[tokio::test]
async fn clients_are_private_to_their_owner() {
    let s = Server::start();
    allow_user_clients(&s);
    let (_jwt, eve) = user_with_token(&s, "eve").await;
    let (_jwt, frank) = user_with_token(&s, "frank").await;
    let admin_jwt = s.access_token("admin", &s.admin_password).await;
    let admin = s.tapis(Some(&admin_jwt));

    ok(
        eve.clients.create_client(NewClient { client_id: Some("eve-app".into()), ..Default::default() }).await,
        "eve creates",
    );
    ok(
        frank.clients.create_client(NewClient { client_id: Some("frank-app".into()), ..Default::default() }).await,
        "frank creates",
    );

    let fl = ok(frank.clients.list_clients(None, None, None).await, "frank lists").result.unwrap();
    assert_eq!(ids(&fl), vec!["frank-app".to_string()], "frank sees only his own");
    err(frank.clients.get_client("eve-app").await, 404, "frank gets eve's client");
    let upd = UpdateClient { display_name: Some("hijacked".into()), ..Default::default() };
    err(frank.clients.update_client("eve-app", upd).await, 404, "frank updates eve's client");
    err(frank.clients.delete_client("eve-app").await, 404, "frank deletes eve's client");
    let g = *ok(eve.clients.get_client("eve-app").await, "eve's client intact").result.unwrap();
    assert_ne!(g.display_name.as_deref(), Some("hijacked"));

    // An admin sees all of the tenant's clients.
    let al = ok(admin.clients.list_clients(None, None, None).await, "admin lists").result.unwrap();
    let mut got = ids(&al);
    got.sort();
    assert!(got.contains(&"eve-app".to_string()) && got.contains(&"frank-app".to_string()), "admin list: {got:?}");
    let g = *ok(admin.clients.get_client("eve-app").await, "admin gets eve's client").result.unwrap();
    assert_eq!(g.owner.as_deref(), Some("eve"));
}
