//! Tessera storage: the core's `Store` port over SQLite (embedded, the default) and
//! PostgreSQL (several nodes on one database), chosen by [`open`].

mod postgres;
mod sqlite;

pub use postgres::{CHANNEL, PgSettings, PgStore, is_postgres_url};
pub use sqlite::SqliteStore;

use std::path::Path;
use std::sync::Arc;
use tessera_core::store::{Store, StoreResult};
use tokio::sync::Notify;

// The brute-force counters' statements, the same on both backends (SQLite numbers `$n`
// parameters by first appearance, so each first appears in order).

/// One more attempt for key $1 at $2 (a window that started at or before $3 is over): the
/// count and window start after it. Locks the row until the transaction ends.
const ATTEMPT_COUNT_SQL: &str = "INSERT INTO login_failures (key, window_start, failures) VALUES ($1, $2, 1) \
     ON CONFLICT (key) DO UPDATE SET \
     failures = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END, \
     window_start = CASE WHEN login_failures.window_start <= $3 THEN $2 ELSE login_failures.window_start END \
     RETURNING failures, window_start";
/// Give back one attempt of key $1 reserved at $2, if its window is still the one it was
/// reserved in (a later window starts after $2).
const ATTEMPT_RELEASE_SQL: &str =
    "UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND window_start <= $2 AND failures > 0";
/// Forget key $1's attempts.
const ATTEMPT_CLEAR_SQL: &str = "DELETE FROM login_failures WHERE key = $1";

/// The keys that settle attempts (see `Store::attempt_release`), each with whether it is
/// released (else cleared), in key order: the order in which every transaction on these
/// rows locks them.
fn attempt_release_plan<'a>(release: &[&'a str], clear: &[&'a str]) -> Vec<(&'a str, bool)> {
    let mut plan: Vec<(&str, bool)> = release.iter().map(|k| (*k, true)).collect();
    plan.extend(clear.iter().map(|k| (*k, false)));
    plan.sort_unstable();
    plan
}

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
            Backend::Sqlite(s) => Arc::new(s.clone()),
            Backend::Postgres(s) => Arc::new(s.clone()),
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
