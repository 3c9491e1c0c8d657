//! Typed values keep the stored text of today: a refresh family's grant is written and read
//! by its short name (`password`, `device_code`, ...), as rows already stored hold it.

use super::*;
use crate::env::{pg_base_url, with_schema};
use crate::faults::run_on;
use tessera_core::secret::sha256_b64;

/// Run `sql` on the test's database, whatever its backend.
async fn raw(env: &Env, sql: &'static str) {
    match env.kind {
        Kind::Sqlite => run_on::<sqlx::SqliteConnection>(&format!("sqlite://{}", env.target()), sql).await,
        Kind::Pg => {
            let url = with_schema(&pg_base_url(), env.schema.as_deref().unwrap());
            run_on::<sqlx::PgConnection>(&url, sql).await
        }
    }
}

pub(crate) async fn refresh_grant_types_are_stored_by_their_short_names(kind: Kind) {
    let env = Env::new(kind, "grantnames").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let rt = auth.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
    let backend = env.backend().await;
    let store = backend.store();
    let by_password = store.refresh_get(&sha256_b64(rt.expose())).await.unwrap().expect("stored");
    assert_eq!(by_password.grant_type, GrantType::Password);
    // A family begun by the device flow, as the engine would store it.
    let mut by_device = by_password.clone();
    by_device.token_hash = sha256_b64("another token");
    by_device.family_id = "another-family".into();
    by_device.grant_type = GrantType::DeviceCode;
    store.refresh_insert(&by_device).await.unwrap();
    // Only rows holding exactly today's text survive.
    raw(&env, "DELETE FROM refresh_tokens WHERE grant_type NOT IN ('password', 'device_code')").await;
    let read = store.refresh_get(&by_device.token_hash).await.unwrap().expect("stored as `device_code`");
    assert_eq!(read.grant_type, GrantType::DeviceCode);
    assert!(store.refresh_get(&by_password.token_hash).await.unwrap().is_some(), "stored as `password`");
    // A row written before (token exchange's short name) reads back as its grant.
    raw(&env, "UPDATE refresh_tokens SET grant_type = 'token_exchange' WHERE family_id = 'another-family'").await;
    let read = store.refresh_get(&by_device.token_hash).await.unwrap().unwrap();
    assert_eq!(read.grant_type, GrantType::TokenExchange);
}

/// A name a caller typed that breaks the rules names nothing: the answer of an unknown name,
/// word for word; creating with one is the error of today; a stored one that breaks them is
/// corrupt data, not a name.
pub(crate) async fn names_that_break_the_rules_are_unknown(kind: Kind) {
    let env = Env::new(kind, "badnames").await;
    let auth = env.engine(settings()).await.unwrap();
    let client = setup(&auth).await;
    let op = &Actor::Operator;
    for (bad, unknown) in [("a b", "nobody"), (&*"x".repeat(129), "nobody")] {
        let e = auth.get_user(op, "t", bad).await.unwrap_err();
        let u = auth.get_user(op, "t", unknown).await.unwrap_err();
        assert_eq!((e.kind, e.description), (u.kind, format!("user `{bad}` not found")));
        let e = auth.set_user_disabled(op, "t", bad, true).await.unwrap_err();
        assert_eq!((e.kind, e.description), (ErrorKind::NotFound, format!("user `{bad}` not found in tenant `t`")));
        let e = auth.get_client(op, "t", bad).await.unwrap_err();
        assert_eq!((e.kind, e.description), (ErrorKind::NotFound, format!("client `{bad}` not found")));
        assert!(auth.list_api_keys(op, "t", Some(bad)).await.unwrap().is_empty());
        let grant = Grant::Password { username: bad.into(), password: Secret::new("correct horse battery"), otp: None };
        let e = auth.token("t", &client, TokenRequest::new(grant)).await.unwrap_err();
        assert_eq!((e.kind, e.description.as_str()), (ErrorKind::InvalidGrant, "invalid username or password"));
        let foreign = ClientAuth::Basic { client_id: bad.into(), secret: Secret::new("whatever") };
        let e = auth.token("t", &foreign, password()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidClient);
    }
    let e = auth.get_user(op, "Not-A-Tenant", "alice").await.unwrap_err();
    assert_eq!((e.kind, e.description.as_str()), (ErrorKind::NotFound, "tenant `Not-A-Tenant` not found"));
    // Creating: the messages of today.
    let e = auth.create_user(op, "t", "a b", Secret::new("correct horse battery"), vec![], Profile::default());
    let e = e.await.unwrap_err().description;
    assert_eq!(e, "invalid username `a b`: use 1-128 letters, digits and . _ - @ +");
    let e = auth.create_tenant(op, "A", Alg::EdDSA, None, None, None, vec![]).await.unwrap_err().description;
    assert_eq!(e, "invalid tenant name `A`: use 1-63 lowercase letters, digits and inner dashes");
    let mut spec = NewClient::new("t", "app", vec![GrantType::Password]);
    spec.client_id = Some("no spaces".into());
    let e = auth.create_client(op, spec).await.unwrap_err().description;
    assert_eq!(e, "client_id must be 1-128 of letters, digits, - _ .");
    let mut spec = NewClient::new("t", "web", vec![GrantType::Password]);
    spec.callback_url = Some("ftp://web.example/cb".into());
    let e = auth.create_client(op, spec).await.unwrap_err().description;
    assert_eq!(e, "callback_url must be an http(s) URL");
    let mut spec = NewClient::new("t", "web", vec![GrantType::Password]);
    spec.callback_url = Some("https://web.example/cb".into());
    let (web, _) = auth.create_client(op, spec).await.unwrap();
    assert_eq!(web.callback_url.as_deref(), Some("https://web.example/cb"));
    let long = Some(format!("https://web.example/{}", "x".repeat(2000)));
    let update = tessera_core::authority::ClientUpdate { callback_url: long, ..Default::default() };
    let e = auth.update_client(op, "t", &web.client_id, update).await.unwrap_err().description;
    assert_eq!(e, "callback_url must be an http(s) URL");
    let stored = auth.get_client(op, "t", &web.client_id).await.unwrap();
    assert_eq!(stored.callback_url.as_deref(), Some("https://web.example/cb"), "unchanged");
    // A stored name that breaks the rules does not come out as a name.
    raw(&env, "UPDATE clients SET client_id = 'not valid' WHERE callback_url IS NULL").await;
    let backend = env.backend().await;
    let t = tessera_core::TenantName::parse("t").unwrap();
    let e = backend.store().client_list(&t).await.unwrap_err();
    assert!(matches!(e, tessera_core::store::StoreError::Corrupt(_)), "{e:?}");
}
