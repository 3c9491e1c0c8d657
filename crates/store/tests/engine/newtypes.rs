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
