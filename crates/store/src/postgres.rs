//! The PostgreSQL backend: one database shared by every node of a deployment. The rules that
//! SQLite gets from its single writer are made explicit here: a refresh family is locked
//! (`FOR UPDATE`) while one of its tokens is rotated or the family is revoked, and writers of
//! the revocation list and the change feed serialise on a transaction advisory lock so that
//! sequence numbers become visible in commit order (readers follow them with a cursor and
//! must never see 7 before 6). Those transactions also `NOTIFY` the other nodes.

use crate::error::DbResult;
use crate::rows;
use crate::shared::{Arg, Conn, Dialect, Feed, args, conn_impl};
use crate::sql;
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgConnection, PgPool, Postgres};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tessera_core::audit::AuditEvent;
use tessera_core::store::{Revocation, StoreError, StoreResult};
use tokio::sync::Notify;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The channel every write to the revocation list or the change feed notifies; the payload
/// is the writer's schema, so deployments sharing one database (tests do) ignore each other.
pub const CHANNEL: &str = "tessera_changes";

conn_impl!(PgConnection, Postgres);

/// Take a feed's advisory lock (class $1, the other key a hash of the schema name; held until
/// commit, so sequence numbers are visible in commit order) and queue the notification on
/// channel $2 (delivered at commit, dropped on rollback).
const FEED_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext(current_schema()::text), $1), pg_notify($2, current_schema()::text)";
/// Revoke the families $2 (an array) at $1.
const FAMILIES_REVOKE: &str =
    "UPDATE refresh_families SET revoked_at = $1 WHERE family_id = ANY($2) AND revoked_at IS NULL";
/// The live access tokens of the families $1 at $2, as revocations.
const FAMILIES_LIVE_ACCESS: &str = "SELECT tenant, access_jti AS jti, access_exp AS expires_at FROM refresh_tokens \
     WHERE family_id = ANY($1) AND access_exp > $2";
/// Put the live access tokens of the families $1 at $2 on the revocation list.
const FAMILIES_REVOCATIONS_INSERT: &str = "INSERT INTO revocations (tenant, jti, expires_at) \
     SELECT tenant, access_jti, access_exp FROM refresh_tokens WHERE family_id = ANY($1) AND access_exp > $2 \
     ON CONFLICT (jti) DO NOTHING";
/// A user's ($1, $2) recovery codes $3 (an array), in one statement.
const RECOVERY_INSERT_ALL: &str =
    "INSERT INTO recovery_codes (tenant, username, code_hash) SELECT $1, $2, h FROM UNNEST($3::text[]) AS h";
/// A batch of audit events, one array per column, in one statement.
const AUDIT_INSERT_ALL: &str = "INSERT INTO audit_events (at, tenant, event, actor_kind, actor_name, subject, \
     client_id, address, outcome, request_id, detail) SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], \
     $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])";

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Connections per node.
    pub pool_size: u32,
    /// Bound on each statement (server side) and on waiting for a connection (client side):
    /// with the database gone, an operation fails with `Unavailable` after about this long.
    pub timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings { pool_size: 16, timeout: Duration::from_secs(5) }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    shared: Arc<Shared>,
}

struct Shared {
    connect: PgConnectOptions,
    timeout: Duration,
    /// The longest any one store operation may take, whatever the network does.
    deadline: Duration,
    schema: String,
    listener: OnceLock<Listener>,
}

struct Listener {
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Is this a PostgreSQL connection URL?
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl PgStore {
    /// Connect (TLS per the URL's `sslmode`, schema per its `options=-csearch_path=...`) and
    /// bring the schema up to date. Several nodes may do this at once: sqlx's migrator takes
    /// an advisory lock.
    pub async fn open(url: &str, settings: &PgSettings) -> StoreResult<Self> {
        let mut connect: PgConnectOptions =
            url.parse().map_err(|e| StoreError::Unavailable(format!("invalid database URL: {e}")))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("tessera");
        }
        let ms = settings.timeout.as_millis().max(1);
        // NOTICEs ("relation already exists, skipping" from the migrator) are not news.
        connect = connect.options([("statement_timeout", ms.to_string().as_str()), ("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(settings.timeout)
            // sqlx pings every connection on release already; pinging on acquire too would
            // add a round trip to every query. Only a connection that sat idle (and so may
            // have been cut by a database restart) is checked before it is handed out.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(1) {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect.clone())
            .await
            .db()?;
        // Migrations may rewrite big tables: no statement timeout for them, on a connection
        // that is closed afterwards rather than returned to the pool.
        let mut conn = pool.acquire().await.db()?.detach();
        sqlx::query("SET statement_timeout = 0").execute(&mut conn).await.db()?;
        let applied: Option<i64> = sqlx::query_scalar(crate::APPLIED_VERSION).fetch_one(&mut conn).await.ok().flatten();
        crate::refuse_newer(applied, &MIGRATOR)?;
        MIGRATOR.run(&mut conn).await.map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let _ = sqlx::Connection::close(conn).await;
        let schema: String = sqlx::query_scalar("SELECT current_schema()::text").fetch_one(&pool).await.db()?;
        Ok(PgStore {
            pool,
            shared: Arc::new(Shared {
                connect,
                timeout: settings.timeout,
                // A connection wait plus a statement, and some slack.
                deadline: settings.timeout * 2 + Duration::from_secs(1),
                schema,
                listener: OnceLock::new(),
            }),
        })
    }

    /// The schema this store works in (`public` unless the URL sets a search path).
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// Wake-ups for the sync loop: the returned `Notify` is signalled (`notify_one`, so a
    /// signal given while nobody waits is kept) whenever any node commits a revocation or a
    /// change, and after the listening connection is (re)established, since notifications
    /// sent while it was down are lost. One task per store listens on its own connection and
    /// reconnects by itself; it stops when the last clone of this store is dropped. Call
    /// within a Tokio runtime. Every call returns the same `Notify`: it has one consumer.
    pub fn listen(&self) -> Arc<Notify> {
        self.shared
            .listener
            .get_or_init(|| {
                let wake = Arc::new(Notify::new());
                let task = tokio::spawn(listen_loop(
                    self.shared.connect.clone(),
                    self.shared.timeout,
                    self.shared.schema.clone(),
                    wake.clone(),
                ));
                Listener { wake, task }
            })
            .wake
            .clone()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn listen_loop(connect: PgConnectOptions, timeout: Duration, schema: String, wake: Arc<Notify>) {
    // Its own one-connection pool: the listening connection is never handed to a query.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(timeout)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(connect);
    let mut failures = 0u32;
    loop {
        let err = listen_session(&pool, &schema, &wake, &mut failures).await;
        failures += 1;
        if failures == 1 {
            tracing::warn!(error = %err, "lost the postgres notification channel; reconnecting (polling continues)");
        } else {
            tracing::debug!(error = %err, failures, "postgres notification channel still down");
        }
        let backoff = Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
        tokio::time::sleep(backoff).await;
    }
}

async fn listen_session(pool: &PgPool, schema: &str, wake: &Notify, failures: &mut u32) -> sqlx::Error {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    listener.ignore_pool_close_event(true);
    if let Err(e) = listener.listen(CHANNEL).await {
        return e;
    }
    if *failures > 0 {
        tracing::info!("postgres notification channel restored");
    }
    *failures = 0;
    // Whatever was committed while nobody listened is picked up by a sync now.
    wake.notify_one();
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.payload() == schema => wake.notify_one(),
            Ok(Some(_)) => {}
            // The connection dropped and was re-established: notifications may be lost.
            Ok(None) => wake.notify_one(),
            Err(e) => return e,
        }
    }
}

#[async_trait]
impl Dialect for PgStore {
    type Db = Postgres;
    type Conn = PgConnection;

    type Tx = sqlx::Transaction<'static, Postgres>;

    const LOCKING: sql::Locking = sql::ROW_LOCKS;

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn begin(&self) -> StoreResult<Self::Tx> {
        crate::shared::began();
        self.pool.begin_with(Self::LOCKING.begin).await.db()
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        tx.commit().await.db()
    }

    async fn rollback(tx: Self::Tx) -> StoreResult<()> {
        tx.rollback().await.db()
    }

    /// In autocommit: one round trip.
    async fn exec_one(&self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64> {
        self.pool.acquire().await.db()?.exec(sql, args).await
    }

    /// The server-side statement timeout and the pool's acquire timeout cover a database that
    /// is down or slow; this covers one that vanished mid-query without closing the connection
    /// (a network partition), where a read would otherwise wait for TCP to give up, for many
    /// minutes.
    fn deadline(&self) -> Option<Duration> {
        Some(self.shared.deadline)
    }

    async fn feed_lock(conn: &mut PgConnection, feed: Feed) -> StoreResult<()> {
        crate::shared::sent(1);
        sqlx::query(FEED_LOCK).bind(feed as i32).bind(CHANNEL).execute(&mut *conn).await.db()?;
        Ok(())
    }

    async fn revoke_families(conn: &mut PgConnection, families: &[String], now: i64) -> StoreResult<Vec<Revocation>> {
        if families.is_empty() {
            return Ok(Vec::new());
        }
        crate::shared::sent(1);
        sqlx::query(FAMILIES_REVOKE).bind(now).bind(families).execute(&mut *conn).await.db()?;
        crate::shared::sent(1);
        let rows = sqlx::query(FAMILIES_LIVE_ACCESS).bind(families).bind(now).fetch_all(&mut *conn).await.db()?;
        let out = rows.iter().map(rows::revocation).collect::<StoreResult<Vec<_>>>()?;
        if !out.is_empty() {
            Self::feed_lock(conn, Feed::Revocations).await?;
            crate::shared::sent(1);
            sqlx::query(FAMILIES_REVOCATIONS_INSERT).bind(families).bind(now).execute(&mut *conn).await.db()?;
        }
        Ok(out)
    }

    async fn recovery_codes_insert(
        conn: &mut PgConnection,
        tenant: &str,
        username: &str,
        hashes: &[String],
    ) -> StoreResult<()> {
        crate::shared::sent(1);
        sqlx::query(RECOVERY_INSERT_ALL).bind(tenant).bind(username).bind(hashes).execute(&mut *conn).await.db()?;
        Ok(())
    }

    /// One statement for the whole batch, column by column.
    async fn audit_insert(conn: &mut PgConnection, events: &[AuditEvent]) -> StoreResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let text = |f: fn(&AuditEvent) -> Option<&str>| events.iter().map(f).collect::<Vec<_>>();
        crate::shared::sent(1);
        sqlx::query(AUDIT_INSERT_ALL)
            .bind(events.iter().map(|e| e.at).collect::<Vec<_>>())
            .bind(text(|e| Some(&e.tenant)))
            .bind(text(|e| Some(e.event.as_str())))
            .bind(text(|e| Some(e.actor.as_str())))
            .bind(text(|e| e.actor_name.as_deref()))
            .bind(text(|e| e.subject.as_deref()))
            .bind(text(|e| e.client_id.as_deref()))
            .bind(text(|e| e.address.as_deref()))
            .bind(text(|e| Some(e.outcome.as_str())))
            .bind(text(|e| e.request_id.as_deref()))
            .bind(text(|e| e.detail.as_deref()))
            .execute(&mut *conn)
            .await
            .db()?;
        Ok(())
    }

    /// In a transaction of its own, under the revocation list's lock.
    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()> {
        crate::shared::began();
        let mut tx = self.pool.begin().await.db()?;
        Self::feed_lock(&mut tx, Feed::Revocations).await?;
        tx.exec(sql::REVOCATION_INSERT, args![&r.tenant, &r.jti, r.expires_at]).await?;
        // Acknowledged only once committed (synchronous_commit, the server's default).
        tx.commit().await.db()
    }
}
