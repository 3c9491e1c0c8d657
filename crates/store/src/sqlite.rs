//! The SQLite backend: one file in the data dir, WAL mode so that admin commands and the
//! server can use it at the same time, `synchronous = FULL` so that an acknowledged write
//! (a revocation, a rotation) survives a crash. Every write transaction begins with
//! `BEGIN IMMEDIATE`, taking the one writer lock first: the reads in it and the writes that
//! depend on them cannot interleave with another writer's, so nothing is locked row by row.
//! Writes that arrive together share one transaction and its one fsync, each under a
//! savepoint of its own ([`crate::group`]).

use crate::error::DbResult;
use crate::group::{GroupTx, Writer};
use crate::rows;
use crate::shared::{Arg, Conn, Dialect, Feed, args, conn_impl};
use crate::sql;
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqliteConnection, SqlitePool};
use std::path::Path;
use std::time::Duration;
use tessera_core::audit::AuditEvent;
use tessera_core::store::{Revocation, StoreError, StoreResult};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// One audit event (PostgreSQL inserts a batch in one statement over arrays).
const AUDIT_INSERT: &str = "INSERT INTO audit_events (at, tenant, event, actor_kind, actor_name, subject, \
     client_id, address, outcome, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

conn_impl!(SqliteConnection, Sqlite);

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection: SQLite has one writer at a time, and writers waiting here are served
    /// in turn, where writers on several connections would each sleep and retry the lock
    /// (the busy handler), which makes a loaded server's slowest writes far slower. The
    /// writes waiting share a commit (see [`crate::group`]).
    writer: Writer,
}

impl SqliteStore {
    /// Open (creating if needed) the database file and bring its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts.clone())
            .await
            .db()?;
        let applied: Option<i64> = sqlx::query_scalar(crate::APPLIED_VERSION).fetch_one(&pool).await.ok().flatten();
        crate::refuse_newer(applied, &MIGRATOR)?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let writer = Writer::new(opts.connect().await.db()?);
        Ok(SqliteStore { pool, writer })
    }

    pub async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }
}

#[async_trait]
impl Dialect for SqliteStore {
    type Db = Sqlite;
    type Conn = SqliteConnection;

    type Tx = GroupTx;

    const LOCKING: sql::Locking = sql::WRITER_LOCK;

    fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// `BEGIN IMMEDIATE`, or a savepoint in the transaction already open.
    async fn begin(&self) -> StoreResult<GroupTx> {
        self.writer.begin().await
    }

    async fn commit(tx: GroupTx) -> StoreResult<()> {
        tx.commit().await
    }

    async fn rollback(tx: GroupTx) -> StoreResult<()> {
        tx.rollback().await
    }

    /// In a transaction all the same: it may share a commit with others.
    async fn exec_one(&self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64> {
        let mut tx = self.writer.begin().await?;
        let n = tx.exec(sql, args).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// An embedded database: its busy and acquire timeouts bound every operation.
    fn deadline(&self) -> Option<Duration> {
        None
    }

    /// One writer at a time already orders the sequence numbers; nobody listens.
    async fn feed_lock(_: &mut SqliteConnection, _: Feed) -> StoreResult<()> {
        Ok(())
    }

    async fn revoke_families(
        conn: &mut SqliteConnection,
        families: &[String],
        now: i64,
    ) -> StoreResult<Vec<Revocation>> {
        let mut out = Vec::new();
        for family_id in families {
            conn.exec(sql::FAMILY_REVOKE, args![now, family_id]).await?;
            for r in conn.all(sql::FAMILY_LIVE_ACCESS, args![family_id, now]).await? {
                let rev = rows::revocation(&r)?;
                conn.exec(sql::REVOCATION_INSERT, args![&rev.tenant, &rev.jti, rev.expires_at]).await?;
                out.push(rev);
            }
        }
        Ok(out)
    }

    async fn recovery_codes_insert(
        conn: &mut SqliteConnection,
        tenant: &str,
        username: &str,
        hashes: &[String],
    ) -> StoreResult<()> {
        for h in hashes {
            conn.exec(sql::RECOVERY_INSERT, args![tenant, username, h]).await?;
        }
        Ok(())
    }

    async fn audit_insert(conn: &mut SqliteConnection, events: &[AuditEvent]) -> StoreResult<()> {
        for e in events {
            let a = args![
                e.at,
                &e.tenant,
                e.event.as_str(),
                e.actor.as_str(),
                &e.actor_name,
                &e.subject,
                &e.client_id,
                &e.address,
                e.outcome.as_str(),
                &e.request_id,
                &e.detail,
            ];
            conn.exec(AUDIT_INSERT, a).await?;
        }
        Ok(())
    }

    /// A single statement, committed on its own (or with others').
    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()> {
        self.exec_one(sql::REVOCATION_INSERT, args![&r.tenant, &r.jti, r.expires_at]).await.map(drop)
    }
}
