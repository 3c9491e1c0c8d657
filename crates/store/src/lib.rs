//! Tessera storage: the core's `Store` port over SQLite (embedded, the default).
//! PostgreSQL follows behind the same trait.

mod sqlite;

pub use sqlite::SqliteStore;
