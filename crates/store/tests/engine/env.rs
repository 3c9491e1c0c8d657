//! One test environment per test: a fresh SQLite file, or a fresh PostgreSQL schema (dropped
//! at the end, with the connections that used it), a manual clock, and a master key.
#![allow(dead_code)]

use sqlx::Connection;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tessera_core::Settings;
use tessera_core::authority::Authority;
use tessera_core::clock::{ManualClock, SystemRng};
use tessera_core::keys::MasterKey;
use tessera_core::secret::{Argon2id, InlineHasher};
use tessera_core::store::Store;
use tessera_store::{Backend, PgSettings};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

pub const T0: i64 = 1_800_000_000;

/// The server the PostgreSQL tests use (trust auth); each test works in its own schema.
pub fn pg_base_url() -> String {
    std::env::var("TESSERA_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Pg,
}

pub struct Env {
    pub kind: Kind,
    dir: PathBuf,
    /// The PostgreSQL schema of this test (also the connections' application name).
    pub schema: Option<String>,
    pub clock: Arc<ManualClock>,
    pub master_b64: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(name: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{name}_{}_{n}_{nanos}", std::process::id())
}

impl Env {
    pub async fn new(kind: Kind, name: &str) -> Self {
        let id = unique(name);
        let dir = std::env::temp_dir().join(format!("tessera-engine-{id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let schema = match kind {
            Kind::Sqlite => None,
            Kind::Pg => {
                ensure_postgres();
                let schema = format!("tessera_t_{id}").to_lowercase();
                let mut c = sqlx::PgConnection::connect(&pg_base_url()).await.expect("connect to the test PostgreSQL");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
                    .execute(&mut c)
                    .await
                    .unwrap();
                let _ = c.close().await;
                Some(schema)
            }
        };
        let master_b64 = MasterKey::generate(&SystemRng).to_base64().to_string();
        Env { kind, dir, schema, clock: Arc::new(ManualClock::new(T0)), master_b64 }
    }

    /// Where the store lives: the SQLite file, or a URL that confines the session to this
    /// test's schema.
    pub fn target(&self) -> String {
        match &self.schema {
            None => self.dir.join("tessera.db").to_string_lossy().into_owned(),
            Some(schema) => with_schema(&pg_base_url(), schema),
        }
    }

    pub fn pg_settings() -> PgSettings {
        PgSettings { pool_size: 8, timeout: Duration::from_secs(10) }
    }

    /// A new store handle (for PostgreSQL: a new pool, i.e. another node).
    pub async fn backend(&self) -> Backend {
        tessera_store::open(&self.target(), &Self::pg_settings()).await.unwrap()
    }

    pub async fn engine(&self, settings: Settings) -> Result<Authority, tessera_core::Error> {
        self.engine_with_key(settings, &self.master_b64).await
    }

    pub async fn engine_with_key(&self, settings: Settings, key: &str) -> Result<Authority, tessera_core::Error> {
        self.engine_on(self.backend().await.store(), settings, key).await
    }

    /// An engine with change wake-ups (PostgreSQL only).
    pub async fn node(&self, settings: Settings) -> (Authority, Arc<Notify>) {
        let backend = self.backend().await;
        let wake = backend.listen().expect("a backend with notifications");
        (self.engine_on(backend.store(), settings, &self.master_b64).await.unwrap(), wake)
    }

    pub async fn engine_on(
        &self,
        store: Arc<dyn Store>,
        settings: Settings,
        key: &str,
    ) -> Result<Authority, tessera_core::Error> {
        let rng = Arc::new(SystemRng);
        let hasher = Arc::new(InlineHasher { argon: Argon2id::new(1024, 1, 1), rng: rng.clone() });
        Authority::open(store, self.clock.clone(), rng, hasher, MasterKey::from_base64(key).unwrap(), settings).await
    }
}

/// `url` with its session confined to `schema`, and named after it (so the test's
/// connections can be found and closed at the end).
pub fn with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}&application_name={schema}")
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(schema) = self.schema.take() {
            // Drop runs inside the test's runtime, which cannot be blocked on: do the
            // clean-up on a thread of its own.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let Ok(mut c) = sqlx::PgConnection::connect(&pg_base_url()).await else { return };
                    // A connection the test left behind could hold locks DROP would wait for.
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(&schema)
                    .execute(&mut c)
                    .await;
                    let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
                    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut c).await {
                        eprintln!("could not drop test schema {schema}: {e}");
                    }
                    let _ = c.close().await;
                });
            });
            let _ = done.join();
        }
    }
}

/// Start the local PostgreSQL cluster if nothing answers on 127.0.0.1:5432 (the same
/// command as scripts/test), then wait for it.
pub fn ensure_postgres() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("TESSERA_TEST_DATABASE_URL").is_some() {
            return;
        }
        let addr = "127.0.0.1:5432".parse().unwrap();
        let up = || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok();
        if up() {
            return;
        }
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg("pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
            .status();
        for _ in 0..100 {
            if up() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("PostgreSQL is not listening on 127.0.0.1:5432 and could not be started");
    });
}

/// A TCP relay to PostgreSQL that can be cut (every connection through it dies and new ones
/// are dropped at once) and restored: a database outage without stopping the shared server.
pub struct Relay {
    pub port: u16,
    up: Arc<AtomicBool>,
    frozen: Arc<AtomicBool>,
    pipes: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let frozen = Arc::new(AtomicBool::new(false));
        let pipes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (up2, frozen2, pipes2) = (up.clone(), frozen.clone(), pipes.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else { continue };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (target, frozen) = (target.clone(), frozen2.clone());
                let pipe = tokio::spawn(async move {
                    if let Ok(out) = TcpStream::connect(&target).await {
                        let (ri, wi) = inbound.into_split();
                        let (ro, wo) = out.into_split();
                        tokio::join!(forward(ri, wo, frozen.clone()), forward(ro, wi, frozen));
                    }
                });
                pipes2.lock().unwrap().push(pipe.abort_handle());
            }
        });
        Relay { port, up, frozen, pipes, accept }
    }

    /// Stop passing bytes either way, closing nothing: a network partition.
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    pub fn thaw(&self) {
        self.frozen.store(false, Ordering::SeqCst);
    }

    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for p in self.pipes.lock().unwrap().drain(..) {
            p.abort();
        }
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by this relay's.
    pub fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let start = rest.find('@').map(|i| i + 1).unwrap_or(0);
        let end = rest[start..].find(['/', '?']).map(|i| start + i).unwrap_or(rest.len());
        format!("{scheme}://{}127.0.0.1:{}{}", &rest[..start], self.port, &rest[end..])
    }

    /// Where `url` points (host:port), for the relay's outbound side.
    pub fn authority(url: &str) -> String {
        let rest = url.split_once("://").unwrap().1;
        let start = rest.find('@').map(|i| i + 1).unwrap_or(0);
        let end = rest[start..].find(['/', '?']).map(|i| start + i).unwrap_or(rest.len());
        let hostport = &rest[start..end];
        if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5432") }
    }
}

async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}
