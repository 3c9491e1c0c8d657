//! One classification of database errors for both backends, and the `.db()` that applies it.

use tessera_core::store::{StoreError, StoreResult};

/// What a database error means to the rest of the system, the same on SQLite and PostgreSQL:
/// - a unique violation is a `Conflict` (the record exists already);
/// - a foreign-key violation is `NotFound`: the only writes that can break a reference insert
///   a row whose parent (tenant, refresh family) does not exist, or no longer does; retrying
///   would not help, so it is not `Unavailable`;
/// - a row that cannot be decoded (a missing column, a value of the wrong type or a NULL where
///   none may be) is `Corrupt`, like a stored value that does not parse: retrying would not
///   help either;
/// - anything else (connection refused or lost, pool or statement timeout, a busy database,
///   serialization failure or deadlock, a closed pool) is `Unavailable`: try again later.
pub(crate) fn classify(e: &sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict("record".into()),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound("referenced record".into()),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(e.to_string()),
        _ => {
            tracing::warn!(error = %e, "database error");
            StoreError::Unavailable(e.to_string())
        }
    }
}

/// `.db()?` instead of `.map_err(...)?` on every sqlx result.
pub(crate) trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for Result<T, sqlx::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(|e| classify(&e))
    }
}

/// A stored value that does not parse.
pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}
