//! Group commit for SQLite's one writer.
//!
//! Every write waits for its transaction's commit to reach the disk (`synchronous = FULL`),
//! and a commit costs an fsync that takes far longer than the statements before it. So the
//! writes that arrive while one is in progress share the next commit: each runs inside the
//! open transaction under a savepoint of its own, and its caller is answered once the
//! transaction that holds it has committed. A write that fails or is refused is rolled back
//! to its savepoint without touching the others; a commit that fails fails every write in
//! it, and none of them is acknowledged.
//!
//! The writer connection sits behind a fair (first come, first served) lock. A write
//! ([`Writer::begin`]) takes the lock, joins the open transaction or opens one
//! (`BEGIN IMMEDIATE`) and sets its savepoint; when it ends ([`GroupTx::commit`]) it releases
//! the savepoint and the lock, then queues for the lock again: the writes that were waiting
//! meanwhile get it first and join the same transaction, and whichever member gets the lock
//! once they are done commits for all of them. A group is also closed when it holds
//! [`MAX_GROUP`] writes, which bounds how long its first member waits.

use crate::error::DbResult;
use crate::shared::{began, sent};
use crate::sql;
use sqlx::{Executor, SqliteConnection};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};
use tessera_core::store::{StoreError, StoreResult};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The most writes one transaction holds.
pub(crate) const MAX_GROUP: usize = 100;

/// The one connection that writes, shared by a store's clones.
#[derive(Clone)]
pub(crate) struct Writer(Arc<Mutex<State>>);

struct State {
    conn: SqliteConnection,
    /// The open transaction, if any, and how many writes have joined it.
    open: Option<(Arc<Group>, usize)>,
    /// A write left without ending (an error returned early, a cancelled request): its
    /// savepoint is still open and is rolled back by whoever takes the lock next.
    dirty: bool,
    /// Closed with the store: writes are refused.
    closed: bool,
}

/// One transaction's outcome, set once when it commits or fails, before the lock is released.
#[derive(Default)]
struct Group {
    outcome: OnceLock<StoreResult<()>>,
}

impl Writer {
    pub(crate) fn new(conn: SqliteConnection) -> Self {
        Writer(Arc::new(Mutex::new(State { conn, open: None, dirty: false, closed: false })))
    }

    /// Begin a write: the returned transaction runs its statements through `&mut *tx` and
    /// ends with [`GroupTx::commit`] or [`GroupTx::rollback`]; dropped, it is rolled back.
    pub(crate) async fn begin(&self) -> StoreResult<GroupTx> {
        let s = Arc::clone(&self.0).lock_owned().await;
        detached(self.clone().start(s)).await
    }

    async fn start(self, mut s: OwnedMutexGuard<State>) -> StoreResult<GroupTx> {
        if s.closed {
            return Err(StoreError::Unavailable("the store is closed".into()));
        }
        settle(&mut s).await;
        if s.open.as_ref().is_some_and(|(_, members)| *members >= MAX_GROUP) {
            close(&mut s).await;
        }
        let group = match &mut s.open {
            Some((group, members)) => {
                *members += 1;
                Arc::clone(group)
            }
            None => {
                began();
                s.conn.execute(sql::WRITER_LOCK.begin).await.db()?;
                let group = Arc::new(Group::default());
                s.open = Some((Arc::clone(&group), 1));
                group
            }
        };
        let closer = Closer { writer: self, group };
        sent(2); // the savepoint and its release
        if let Err(e) = s.conn.execute("SAVEPOINT w").await.db() {
            fail(&mut s, e.clone()).await;
            return Err(e);
        }
        s.dirty = true;
        Ok(GroupTx { state: s, closer })
    }

    /// Commit the open transaction, if any, and refuse writes from now on (on shutdown).
    pub(crate) async fn close(&self) {
        let mut s = self.0.lock().await;
        settle(&mut s).await;
        if s.open.is_some() {
            close(&mut s).await;
        }
        s.closed = true;
    }
}

/// A write in progress: the writer connection is this write's until it ends.
pub(crate) struct GroupTx {
    state: OwnedMutexGuard<State>,
    closer: Closer,
}

impl GroupTx {
    /// Keep this write's changes and wait for the transaction holding them to commit.
    pub(crate) async fn commit(self) -> StoreResult<()> {
        self.end("RELEASE w").await
    }

    /// Undo this write's changes (the rest of its transaction goes on).
    pub(crate) async fn rollback(self) -> StoreResult<()> {
        self.end("ROLLBACK TO w; RELEASE w").await
    }

    async fn end(self, how: &'static str) -> StoreResult<()> {
        let GroupTx { mut state, closer } = self;
        detached(async move {
            match state.conn.execute(how).await.db() {
                Ok(_) => state.dirty = false,
                // The savepoint is gone: so is the transaction (SQLite rolls back a transaction
                // on some errors, a full disk say), and every write in it.
                Err(e) => fail(&mut state, e).await,
            }
            drop(state);
            closer.wait().await
        })
        .await
    }
}

impl Deref for GroupTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.state.conn
    }
}

impl DerefMut for GroupTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.state.conn
    }
}

/// Sees a write's transaction closed: waits for its outcome, committing it if no one else
/// will; if dropped first (a cancelled caller), a task does that instead, so a transaction
/// never stays open holding the database's write lock.
struct Closer {
    writer: Writer,
    group: Arc<Group>,
}

impl Closer {
    async fn wait(self) -> StoreResult<()> {
        if self.group.outcome.get().is_none() {
            let mut s = self.writer.0.lock().await;
            see_closed(&mut s, &self.group).await;
        }
        self.outcome()
    }

    fn outcome(&self) -> StoreResult<()> {
        match self.group.outcome.get() {
            Some(o) => o.clone(),
            None => Err(StoreError::Unavailable("the write's transaction was lost".into())),
        }
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        if self.group.outcome.get().is_some() {
            return;
        }
        let (writer, group) = (self.writer.clone(), Arc::clone(&self.group));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let mut s = writer.0.lock().await;
                see_closed(&mut s, &group).await;
            });
        }
    }
}

/// Run `op` to its end even if the caller stops waiting for it (a request cancelled by its
/// client): the connection's state and what is recorded of it must not part, as they would if
/// a `BEGIN` or a `COMMIT` were sent and its outcome never recorded.
async fn detached<T: Send + 'static>(op: impl Future<Output = StoreResult<T>> + Send + 'static) -> StoreResult<T> {
    tokio::spawn(op).await.unwrap_or_else(|e| Err(StoreError::Unavailable(format!("a database task failed: {e}"))))
}

/// Under the lock: close `group` unless it is closed already.
async fn see_closed(s: &mut State, group: &Arc<Group>) {
    if group.outcome.get().is_some() {
        return;
    }
    settle(s).await;
    if s.open.as_ref().is_some_and(|(open, _)| Arc::ptr_eq(open, group)) {
        close(s).await;
    }
}

/// Roll back a write left without ending.
async fn settle(s: &mut State) {
    if !s.dirty {
        return;
    }
    s.dirty = false;
    if let Err(e) = s.conn.execute("ROLLBACK TO w; RELEASE w").await.db() {
        fail(s, e).await;
    }
}

/// Commit the open transaction; every write in it gets the outcome.
async fn close(s: &mut State) {
    let Some((group, _)) = s.open.take() else { return };
    match s.conn.execute("COMMIT").await.db() {
        Ok(_) => {
            let _ = group.outcome.set(Ok(()));
        }
        Err(e) => {
            let _ = s.conn.execute("ROLLBACK").await;
            let _ = group.outcome.set(Err(e));
        }
    }
}

/// Roll back the open transaction: every write in it fails with `e`.
async fn fail(s: &mut State, e: StoreError) {
    s.dirty = false;
    let _ = s.conn.execute("ROLLBACK").await;
    if let Some((group, _)) = s.open.take() {
        let _ = group.outcome.set(Err(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::{Conn, args};
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
    use sqlx::{ConnectOptions, Connection};
    use std::path::PathBuf;
    use std::time::Duration;

    /// What a test returns: its failures as errors, with `?`.
    type Try<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

    struct Db(PathBuf);

    impl Drop for Db {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl Db {
        async fn new(name: &str) -> Try<Db> {
            let dir = std::env::temp_dir().join(format!("tessera-group-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let db = Db(dir);
            db.connect().await?.execute("CREATE TABLE t (k TEXT PRIMARY KEY)").await?;
            Ok(db)
        }

        /// A database, its writer, and a write of `key` in progress.
        async fn writing(name: &str, key: &str) -> Try<(Db, Writer, GroupTx)> {
            let db = Db::new(name).await?;
            let w = db.writer().await?;
            let mut tx = w.begin().await?;
            insert(&mut tx, key).await?;
            Ok((db, w, tx))
        }

        async fn connect(&self) -> Try<SqliteConnection> {
            Ok(SqliteConnectOptions::new()
                .filename(self.0.join("db"))
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_millis(500))
                .connect()
                .await?)
        }

        async fn writer(&self) -> Try<Writer> {
            Ok(Writer::new(self.connect().await?))
        }

        /// The committed keys, as another connection sees them.
        async fn keys(&self) -> Try<Vec<String>> {
            let mut c = self.connect().await?;
            let keys = sqlx::query_scalar("SELECT k FROM t ORDER BY k").fetch_all(&mut c).await?;
            c.close().await?;
            Ok(keys)
        }
    }

    async fn insert(tx: &mut GroupTx, k: &str) -> StoreResult<u64> {
        tx.exec("INSERT INTO t (k) VALUES ($1)", args![k]).await
    }

    /// Another write of `key`, started while the caller holds the writer, so that it queues
    /// for the lock; returned once it has started. `keep`: it holds the writer a while, then
    /// commits; otherwise it is dropped holding its write (a cancelled request).
    async fn queued_write(w: &Writer, key: &'static str, keep: bool) -> tokio::task::JoinHandle<StoreResult<()>> {
        let started = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn({
            let (w, started) = (w.clone(), started.clone());
            async move {
                started.store(true, std::sync::atomic::Ordering::SeqCst);
                let mut tx = w.begin().await?;
                insert(&mut tx, key).await?;
                if !keep {
                    return Ok(());
                }
                // Still this write's until it ends: no commit can happen meanwhile.
                tokio::time::sleep(Duration::from_millis(100)).await;
                tx.commit().await
            }
        });
        for _ in 0..200 {
            if started.load(std::sync::atomic::Ordering::SeqCst) {
                // Its next step is the lock: a margin for a loaded machine to take it.
                tokio::time::sleep(Duration::from_millis(250)).await;
                return task;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the other write never started");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_waited_for_the_lock_shares_the_commit_of_the_one_before() -> Try {
        let (db, w, a) = Db::writing("share", "a").await?;
        let b = queued_write(&w, "b", true).await;
        a.commit().await?;
        // a was answered only once the transaction holding b's write, too, had committed.
        assert_eq!(db.keys().await?, ["a", "b"]);
        b.await??;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_or_failed_write_leaves_the_others_in_its_transaction_alone() -> Try {
        let db = Db::new("alone").await?;
        let w = db.writer().await?;
        let mut tasks = Vec::new();
        for i in 0..60 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                let mut tx = w.begin().await?;
                insert(&mut tx, &format!("k{i:02}")).await?;
                match i % 3 {
                    0 => tx.commit().await.map(|()| true),
                    // Refused: rolled back to its savepoint.
                    1 => tx.rollback().await.map(|()| false),
                    // A failed statement (a duplicate key), then the transaction dropped.
                    _ => insert(&mut tx, &format!("k{i:02}")).await.map(|_| true),
                }
            }));
        }
        let mut kept = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match (i % 3, t.await?) {
                (0, Ok(true)) => kept.push(format!("k{i:02}")),
                (1, Ok(false)) => {}
                (2, Err(StoreError::Conflict(_))) => {}
                (n, r) => panic!("write {i} (kind {n}): {r:?}"),
            }
        }
        assert_eq!(db.keys().await?, kept);
        assert_eq!(kept.len(), 20);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_dropped_midway_is_undone_and_frees_the_database() -> Try {
        let (db, w, a) = Db::writing("dropped", "kept").await?;
        // Waits for the lock, then is dropped holding a write: a cancelled request.
        let b = queued_write(&w, "dropped", false).await;
        a.commit().await?;
        b.await??;
        assert_eq!(db.keys().await?, ["kept"]);
        // A write dropped alone leaves no transaction open: another connection can write.
        let mut c = w.begin().await?;
        insert(&mut c, "alone").await?;
        drop(c);
        let mut other = db.connect().await?;
        let mut got = None;
        for _ in 0..20 {
            match other.execute("BEGIN IMMEDIATE").await {
                Ok(_) => {
                    got = Some(());
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        assert!(got.is_some(), "the write lock was never released");
        other.execute("INSERT INTO t (k) VALUES ('other')").await?;
        other.execute("COMMIT").await?;
        assert_eq!(db.keys().await?, ["kept", "other"]);
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_closes_at_its_size_limit() -> Try {
        let db = Db::new("limit").await?;
        let w = db.writer().await?;
        let mut held = Vec::new();
        // One write at a time, each ended without waiting: the transaction stays open...
        let mut waits = Vec::new();
        for i in 0..MAX_GROUP {
            let mut tx = w.begin().await?;
            insert(&mut tx, &format!("k{i:03}")).await?;
            let GroupTx { mut state, closer } = tx;
            state.conn.execute("RELEASE w").await?;
            state.dirty = false;
            held.push(Arc::clone(&closer.group));
            waits.push(closer);
        }
        assert!(held.iter().all(|g| Arc::ptr_eq(g, &held[0]) && g.outcome.get().is_none()));
        // ...until it is full: the next write commits it first.
        let next = w.begin().await?;
        assert!(matches!(held[0].outcome.get(), Some(Ok(()))));
        assert_eq!(db.keys().await?.len(), MAX_GROUP);
        next.commit().await?;
        for c in waits {
            c.wait().await?;
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_cancelled_at_any_point_leave_the_writer_consistent() -> Try {
        let db = Db::new("cancelled").await?;
        let w = db.writer().await?;
        let mut tasks = Vec::new();
        for i in 0..300u64 {
            let w = w.clone();
            // Callers that give up after 0-1.5 ms: at BEGIN, amid the statements, at COMMIT
            // or while waiting for someone else's (a client that hung up).
            let patience = Duration::from_micros(i * 37 % 1500);
            tasks.push(tokio::spawn(async move {
                tokio::time::timeout(patience, async {
                    let mut tx = w.begin().await?;
                    insert(&mut tx, &format!("k{i:03}")).await?;
                    tx.commit().await
                })
                .await
            }));
        }
        let mut answered = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await? {
                Ok(Ok(())) => answered.push(format!("k{i:03}")),
                Ok(Err(e)) => panic!("write {i} failed: {e:?}"),
                Err(_) => {}
            }
        }
        // Every write answered is there, whatever happened to the others (the writer still
        // works)...
        let mut tx = w.begin().await?;
        insert(&mut tx, "last").await?;
        tx.commit().await?;
        let keys = db.keys().await?;
        for k in answered.iter().chain(["last".to_owned()].iter()) {
            assert!(keys.contains(k), "{k} was answered but is not stored");
        }
        // ...and no transaction is left open: the write lock is free.
        let mut other = db.connect().await?;
        other.execute("BEGIN IMMEDIATE").await?;
        other.execute("COMMIT").await?;
        Ok(())
    }
}
