//! Database faults are classified alike on both backends: the store answers the same error
//! kind for the same fault, so the fronts answer the same status.

use super::*;
use crate::env::{Kind, pg_base_url, with_schema};
use sqlx::Connection;
use tessera_core::principal::User;
use tessera_core::store::StoreError;
use tessera_core::{TenantName, Username};
use tessera_store::Backend;

/// Make alice's `given_name`, a text column, hold bytes that are no text.
async fn store_bytes_in_a_text_column(env: &Env) {
    match env.kind {
        Kind::Sqlite => {
            let sql = "UPDATE users SET given_name = x'c0ffee' WHERE username = 'alice'";
            run_on::<sqlx::SqliteConnection>(&format!("sqlite://{}", env.target()), sql).await
        }
        Kind::Pg => {
            let url = with_schema(&pg_base_url(), env.schema.as_deref().unwrap());
            let sql = "ALTER TABLE users ALTER COLUMN given_name TYPE bytea USING '\\xc0ffee'::bytea";
            run_on::<sqlx::PgConnection>(&url, sql).await
        }
    }
}

/// Run `sql` on a connection of its own to `url`.
pub(crate) async fn run_on<C: Connection>(url: &str, sql: &'static str)
where
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    let mut c = C::connect(url).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    c.close().await.unwrap();
}

pub(crate) async fn the_same_fault_is_the_same_error_kind_on_both_backends(kind: Kind) {
    let env = Env::new(kind, "faults").await;
    let auth = env.engine(settings()).await.unwrap();
    setup(&auth).await;
    let backend = env.backend().await;
    let store = backend.store();
    let (t, name) = (TenantName::parse("t").unwrap(), Username::parse("alice").unwrap());
    let alice = store.user_get(&t, &name).await.unwrap().expect("alice is stored");

    // A unique violation: the record exists already.
    let e = store.user_insert(&alice).await.unwrap_err();
    assert!(matches!(e, StoreError::Conflict(_)), "a second alice: {e:?}");

    // A foreign-key violation: the tenant the record belongs to does not exist. Nothing is
    // written.
    let stray = User { tenant: TenantName::parse("nowhere").unwrap(), ..alice.clone() };
    let e = store.user_insert(&stray).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "a user of no tenant: {e:?}");
    assert_eq!(store.user_get(&stray.tenant, &name).await.unwrap(), None);

    // An undecodable row: a text column holding bytes. Read by a store opened after the
    // change (PostgreSQL would otherwise refuse the statement it prepared before it).
    store_bytes_in_a_text_column(&env).await;
    let fresh = env.backend().await.store();
    let e = fresh.user_get(&t, &name).await.unwrap_err();
    assert!(matches!(e, StoreError::Corrupt(_)), "an undecodable user: {e:?}");
    assert!(matches!(fresh.user_list(&t).await.unwrap_err(), StoreError::Corrupt(_)));

    // The database out of reach (the pool closed): unavailable, try again later.
    match &backend {
        Backend::Sqlite(s) => s.close().await,
        Backend::Postgres(s) => s.close().await,
    }
    let e = store.ping().await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "a closed store: {e:?}");
    let e = store.tenant_get(&t).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable(_)), "a closed store: {e:?}");
}
