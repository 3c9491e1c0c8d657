//! Tessera storage: the core's `Store` port over SQLite (embedded, the default) and
//! PostgreSQL (several nodes on one database), chosen by [`open`].

mod error;
mod group;
mod postgres;
mod rows;
mod shared;
mod sql;
mod sqlite;

pub use postgres::{CHANNEL, PgSettings, PgStore, is_postgres_url};
pub use sqlite::SqliteStore;

use shared::Sql;
use sqlx::migrate::Migrator;
use std::path::Path;
use std::sync::Arc;
use tessera_core::store::StoreError;
use tessera_core::store::{Store, StoreResult};
use tokio::sync::Notify;

/// An opened backend. The rest of the system sees only `Arc<dyn Store>` ([`Backend::store`]);
/// the binary also asks it for change wake-ups ([`Backend::listen`]).
#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

/// Open the store at `target`: a `postgres://` (or `postgresql://`) URL selects PostgreSQL,
/// anything else is the path of a SQLite file (an optional `sqlite:` or `sqlite://` prefix is
/// dropped). Either way the schema is migrated before this returns.
pub async fn open(target: &str, pg: &PgSettings) -> StoreResult<Backend> {
    if is_postgres_url(target) {
        return Ok(Backend::Postgres(PgStore::open(target, pg).await?));
    }
    let path = target.strip_prefix("sqlite://").or_else(|| target.strip_prefix("sqlite:")).unwrap_or(target);
    Ok(Backend::Sqlite(SqliteStore::open(Path::new(path)).await?))
}

impl Backend {
    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Backend::Sqlite(s) => Arc::new(Sql(s.clone())),
            Backend::Postgres(s) => Arc::new(Sql(s.clone())),
        }
    }

    /// `sqlite` or `postgres`, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Shared by several nodes (so the master key cannot simply be made up locally)?
    pub fn is_shared(&self) -> bool {
        matches!(self, Backend::Postgres(_))
    }

    /// Signalled when another node (or an admin command) committed a change or a revocation,
    /// so the caller can `sync()` at once instead of at its next poll. `None` for SQLite,
    /// which has no notifications: polling is the only way there. See [`PgStore::listen`].
    pub fn listen(&self) -> Option<Arc<Notify>> {
        match self {
            Backend::Sqlite(_) => None,
            Backend::Postgres(s) => Some(s.listen()),
        }
    }
}

/// Refuse a database whose schema is ahead of `migrator` (`applied` is the newest migration
/// recorded in it): a newer Tessera wrote it, and this binary would misread what it added.
/// sqlx would refuse too, but with a message about a missing migration file. (A failure to
/// read `applied`, a new database without the table, say, counts as `None`: any other failure
/// shows again at once when the migrations run.)
fn refuse_newer(applied: Option<i64>, migrator: &Migrator) -> StoreResult<()> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match applied {
        Some(v) if v > known => Err(StoreError::Newer(format!(
            "the database schema is at version {v}, newer than this binary knows (up to {known}): \
             a newer Tessera upgraded it; run that version (refusing to start rather than misread the data)"
        ))),
        _ => Ok(()),
    }
}

/// The newest migration recorded (`_sqlx_migrations` is sqlx's table).
const APPLIED_VERSION: &str = "SELECT MAX(version) FROM _sqlx_migrations";
