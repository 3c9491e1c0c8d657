//! What nodes of one database must agree on: the deployment's settings, and the schema's
//! version (a database a newer Tessera migrated is refused, not misread).

use crate::env::{Kind, pg_base_url, with_schema};
use crate::faults::run_on;
use crate::*;
use tessera_core::store::StoreError;

pub(crate) async fn a_deployment_setting_is_claimed_once_then_replaced_on_purpose(kind: Kind) {
    let env = Env::new(kind, "settings").await;
    let store = env.backend().await.store();
    assert_eq!(store.setting_get("public_url").await.unwrap(), None, "nothing recorded on a new database");
    let first = store.setting_claim("public_url", "listen http://a:1").await.unwrap();
    assert_eq!(first, "listen http://a:1");
    // A second claimant (another node starting) gets the first one's value.
    let second = store.setting_claim("public_url", "listen http://b:2").await.unwrap();
    assert_eq!(second, "listen http://a:1");
    store.setting_set("public_url", "configured https://lb").await.unwrap();
    assert_eq!(store.setting_get("public_url").await.unwrap().as_deref(), Some("configured https://lb"));
    // Another store on the same database reads the same.
    let other = env.backend().await.store();
    assert_eq!(other.setting_get("public_url").await.unwrap().as_deref(), Some("configured https://lb"));
}

pub(crate) async fn a_database_migrated_by_a_newer_version_is_refused(kind: Kind) {
    let env = Env::new(kind, "newer").await;
    drop(env.backend().await);
    // What a newer binary's migration would have left behind.
    let sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
               VALUES (99990101, 'from the future', TRUE, x'00', 0)";
    let pg_sql = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (99990101, 'from the future', TRUE, '\\x00', 0)";
    match kind {
        Kind::Sqlite => run_on::<sqlx::SqliteConnection>(&format!("sqlite://{}", env.target()), sql).await,
        Kind::Pg => {
            let url = with_schema(&pg_base_url(), env.schema.as_deref().unwrap());
            run_on::<sqlx::PgConnection>(&url, pg_sql).await
        }
    }
    let e = match tessera_store::open(&env.target(), &Env::pg_settings()).await {
        Ok(_) => panic!("a database of a newer schema was opened"),
        Err(e) => e,
    };
    assert!(matches!(e, StoreError::Newer(_)), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("99990101") && text.contains("newer"), "the message says why: {text}");
}
