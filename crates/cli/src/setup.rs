//! Configuration layering, the data dir (master key, database), and `serve`.

use anyhow::{Context, Result, anyhow, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tessera_core::Authority;
use tessera_core::clock::{Rng, SystemClock, SystemRng};
use tessera_core::keys::MasterKey;
use tessera_core::secret::{Argon2id, InlineHasher, PasswordHasher};
use tessera_server::{AppState, Config, PooledHasher};
use tessera_store::{Backend, PgSettings};
use tokio::sync::Notify;

/// Values given as flags: they win over everything else.
#[derive(Debug, Default, serde::Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
}

/// Defaults < TOML file < `TESSERA_*` environment < flags.
pub fn load_config(file: Option<&Path>, flags: &Overrides) -> Result<Config> {
    let mut fig = Figment::from(Serialized::defaults(Config::default()));
    if let Some(f) = file {
        if !f.exists() {
            bail!("config file {} does not exist", f.display());
        }
        fig = fig.merge(Toml::file(f));
    }
    let config: Config = fig
        .merge(Env::prefixed("TESSERA_").only(Config::ENV_KEYS))
        .merge(Serialized::defaults(flags))
        .extract()
        .map_err(|e| anyhow!("invalid configuration: {e}"))?;
    config.validate().map_err(|e| anyhow!("invalid configuration: {e}"))?;
    Ok(config)
}

pub fn init_logging(config: &Config, serving: bool) {
    let default = if serving { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colours only on a terminal: log files and collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The master key: `TESSERA_MASTER_KEY`, else the key file, else (only while the database
/// holds no keys) a new key written to the key file with mode 0600. With a shared database
/// (PostgreSQL) every node must be given the same key; a node with another key then fails to
/// open the stored keys and refuses to start.
fn master_key(config: &Config, db_has_keys: bool, shared: bool) -> Result<MasterKey> {
    if let Ok(v) = std::env::var("TESSERA_MASTER_KEY") {
        return MasterKey::from_base64(&v).map_err(|e| anyhow!("TESSERA_MASTER_KEY: {}", e.description));
    }
    let path = config.master_key_file.clone().unwrap_or_else(|| config.data_dir.join("master.key"));
    match std::fs::read_to_string(&path).map(zeroize::Zeroizing::new) {
        Ok(text) => {
            refuse_if_shared(&path)?;
            MasterKey::from_base64(&text).map_err(|e| anyhow!("master key file {}: {}", path.display(), e.description))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if db_has_keys && shared {
                bail!(
                    "master key file {} is missing and the database already holds keys; give this node the \
                     deployment's master key (TESSERA_MASTER_KEY or master_key_file)",
                    path.display()
                );
            }
            if db_has_keys {
                bail!(
                    "master key file {} is missing and the database already holds keys; \
                     restore it or set TESSERA_MASTER_KEY",
                    path.display()
                );
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir)?;
            }
            let key = MasterKey::generate(&SystemRng);
            write_private(&path, key.to_base64().as_bytes())?;
            if shared {
                tracing::warn!(
                    path = %path.display(),
                    "generated the master key of this new database; every other node needs the same key"
                );
            }
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading master key file {}", path.display())),
    }
}

/// A master key file that its group or others may read (or write) is refused: the key opens
/// every signing key, so it must be its owner's alone (mode 0600 or stricter).
fn refuse_if_shared(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "master key file {} has mode {:04o}: its group or others can reach it; run `chmod 600 {}`",
            path.display(),
            mode & 0o7777,
            path.display()
        );
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

/// The store: PostgreSQL when `database_url` says so, else the SQLite file in the data dir
/// (created on first use). Also says whether it already holds signing keys.
async fn open_store(config: &Config) -> Result<(Backend, bool)> {
    let pg =
        PgSettings { pool_size: config.db_pool_size, timeout: Duration::from_millis(config.db_statement_timeout_ms) };
    if let Some(url) = &config.database_url {
        let backend =
            tessera_store::open(url, &pg).await.map_err(|e| anyhow!("opening the PostgreSQL database: {e}"))?;
        let keys = backend.store().key_list(None).await.map_err(|e| anyhow!("reading the PostgreSQL database: {e}"))?;
        return Ok((backend, !keys.is_empty()));
    }
    create_private_dir(&config.data_dir).with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let db_path = config.data_dir.join("tessera.db");
    let existed = db_path.exists();
    let backend = tessera_store::open(&db_path.to_string_lossy(), &pg)
        .await
        .map_err(|e| anyhow!("opening database {}: {e}", db_path.display()))?;
    Ok((backend, existed))
}

/// Open the store and the engine over it. On a new database this bootstraps the default
/// tenant and the `admin` user; the one-time password is returned for the caller to show.
pub async fn open(
    config: &Config,
    listen_url: String,
    hasher: Arc<dyn PasswordHasher>,
) -> Result<(Arc<Authority>, Option<tessera_core::secret::Secret>)> {
    let (auth, password, _, _) = open_engine(config, listen_url, Role::Command, hasher, None).await?;
    Ok((auth, password))
}

/// Who opens the engine: a node that serves (and may record the deployment's public URL),
/// or an admin command (which only reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Node,
    Command,
}

/// The engine over the configured store, and the public URL it runs with (see
/// [`agree_public_url`]; `listen_url` is the URL of this process's listen address).
async fn open_engine(
    config: &Config,
    listen_url: String,
    role: Role,
    hasher: Arc<dyn PasswordHasher>,
    origin: Option<fn() -> tessera_core::audit::Origin>,
) -> Result<(Arc<Authority>, Option<tessera_core::secret::Secret>, Backend, String)> {
    let (backend, db_has_keys) = open_store(config).await?;
    let public_url = if backend.is_shared() {
        agree_public_url(&*backend.store(), config.public_url.as_deref(), listen_url, role).await?
    } else {
        config.public_url.clone().unwrap_or(listen_url)
    };
    let master = master_key(config, db_has_keys, backend.is_shared())?;
    let auth = Authority::open(
        backend.store(),
        Arc::new(SystemClock),
        Arc::new(SystemRng),
        hasher,
        master,
        config.settings(public_url.clone()),
    )
    .await
    .map_err(|e| anyhow!("{}", e.description))?;
    let auth = match origin {
        Some(f) => auth.with_origin(f),
        None => auth,
    };
    let password = auth.bootstrap().await.map_err(|e| anyhow!("bootstrap failed: {}", e.description))?;
    Ok((Arc::new(auth), password, backend, public_url))
}

/// The deployment setting that holds the public URL: `configured <url>` when a node's
/// configuration set it, `listen <url>` when the first node took its own listen address.
const PUBLIC_URL: &str = "public_url";

/// The public URL of a node of a shared database (PostgreSQL), which is the base of every
/// tenant's default issuer: nodes that disagree on it mint tokens the others refuse, so the
/// database holds the deployment's, recorded by the first node that serves.
/// - A node configured with another URL than the one recorded from a configuration refuses to
///   start (moving a deployment is `tessera deployment public-url URL`, on purpose).
/// - A configured URL replaces one recorded from a listen address (with a warning: the
///   issuers change).
/// - A node without one uses the recorded URL, warning when it is not its own address.
///
/// Admin commands read the recorded URL and record nothing.
async fn agree_public_url(
    store: &dyn tessera_core::store::Store,
    configured: Option<&str>,
    listen_url: String,
    role: Role,
) -> Result<String> {
    let read_err = |e: tessera_core::store::StoreError| anyhow!("reading the deployment's public URL: {e}");
    let ours = match configured {
        Some(url) => format!("configured {url}"),
        None => format!("listen {listen_url}"),
    };
    let recorded = match role {
        Role::Node => Some(store.setting_claim(PUBLIC_URL, &ours).await.map_err(read_err)?),
        Role::Command => store.setting_get(PUBLIC_URL).await.map_err(read_err)?,
    };
    let Some(recorded) = recorded else { return Ok(configured.map_or(listen_url, str::to_owned)) };
    let Some((how, url)) = recorded.split_once(' ') else {
        bail!(
            "the deployment's recorded public URL is unreadable ({recorded:?}); set it with `tessera deployment public-url URL`"
        )
    };
    let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
    match configured {
        Some(ours) if same(ours, url) => Ok(ours.to_owned()),
        Some(ours) if how == "configured" => bail!(
            "this node's public_url is {ours}, but the deployment's (recorded in the database) is {url}: \
             every node of one database must use one public URL, or each mints tokens the others refuse. \
             Use {url}, or move the whole deployment with `tessera deployment public-url {ours}`"
        ),
        Some(ours) => {
            if role == Role::Node {
                store.setting_set(PUBLIC_URL, &format!("configured {ours}")).await.map_err(read_err)?;
            }
            tracing::warn!(
                recorded = url,
                public_url = ours,
                "the deployment's public URL was recorded from a node's listen address; it is now the configured \
                 one, and the default issuers change with it"
            );
            Ok(ours.to_owned())
        }
        None if same(&listen_url, url) => Ok(listen_url),
        None => {
            // An admin command takes the deployment's URL as it is: only a serving node is
            // told that its configuration lacks one.
            if role == Role::Node {
                tracing::warn!(
                    public_url = url,
                    listen = %listen_url,
                    "public_url is not set: this node uses the deployment's public URL recorded in the database, \
                     not its own listen address; set public_url to the URL clients use"
                );
            }
            Ok(url.to_owned())
        }
    }
}

/// `tessera deployment public-url [URL]`: show the deployment's recorded public URL, or move
/// the deployment to `url` (every node must then run with it).
pub async fn deployment_public_url(config: &Config, url: Option<&str>) -> Result<()> {
    let (backend, _) = open_store(config).await?;
    if !backend.is_shared() {
        bail!(
            "a SQLite database is served by one node, which takes its public URL from its configuration \
             (public_url); only PostgreSQL deployments record one"
        );
    }
    let store = backend.store();
    let err = |e: tessera_core::store::StoreError| anyhow!("the deployment's public URL: {e}");
    match url {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("the public URL must be an http(s) URL");
            }
            store.setting_set(PUBLIC_URL, &format!("configured {url}")).await.map_err(err)?;
            println!("the deployment's public URL is now {url}; restart every node with public_url = {url}");
        }
        None => match store.setting_get(PUBLIC_URL).await.map_err(err)? {
            Some(v) => match v.split_once(' ') {
                Some(("listen", u)) => println!("{u} (recorded from the first node's listen address)"),
                Some((_, u)) => println!("{u}"),
                None => println!("{v}"),
            },
            None => println!("no public URL recorded yet (no node has served this database)"),
        },
    }
    Ok(())
}

/// With PostgreSQL, sync as soon as any node commits a change or a revocation (LISTEN/NOTIFY)
/// instead of at the next poll; the poll stays as the safety net for missed notifications.
fn sync_on_notify(auth: Arc<Authority>, wake: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            wake.notified().await;
            if let Err(e) = auth.sync().await {
                tracing::warn!(error = %e, "sync after a notification failed; the poll will retry");
            }
        }
    })
}

tokio::task_local! {
    /// The engines opened by the admin command being run, whose audit events are written
    /// when it ends ([`with_admin_audit`]).
    static OPENED: std::cell::RefCell<Vec<Arc<Authority>>>;
}

/// Run an admin command, then write the audit events of every engine it opened.
pub async fn with_admin_audit(command: impl Future<Output = Result<()>>) -> Result<()> {
    OPENED
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let done = command.await;
            let opened = OPENED.with(|o| std::mem::take(&mut *o.borrow_mut()));
            for auth in opened {
                if let Err(e) = auth.write_audit().await {
                    eprintln!("warning: the audit trail could not be written: {}", e.description);
                }
            }
            done
        })
        .await
}

/// The engine for one admin command (hashing inline).
pub async fn open_admin(config: &Config) -> Result<Arc<Authority>> {
    let rng: Arc<dyn Rng> = Arc::new(SystemRng);
    let hasher = Arc::new(InlineHasher { argon: Argon2id::default(), rng });
    let (auth, password) = open(config, format!("http://{}", config.listen), hasher).await?;
    // Outside `with_admin_audit` (tests of this module) nothing is recorded for later.
    let _ = OPENED.try_with(|o| o.borrow_mut().push(auth.clone()));
    if let Some(pw) = password {
        eprintln!("bootstrap admin: username=admin password={} (shown once)", pw.expose());
    }
    Ok(auth)
}

pub async fn serve(config: Config) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let hasher = Arc::new(PooledHasher::new(
        Argon2id::default(),
        Arc::new(SystemRng),
        config.hash_concurrency.unwrap_or(cores.saturating_sub(1).max(1)),
    ));
    let origin = tessera_server::extract::current_origin;
    let (auth, password, backend, public_url) =
        open_engine(&config, format!("http://{addr}"), Role::Node, hasher, Some(origin)).await?;
    let shutdown = shutdown_signal()?;
    let mut out = std::io::stdout().lock();
    if let Some(pw) = password {
        writeln!(out, "bootstrap admin: username=admin password={} (shown once)", pw.expose())?;
    }
    writeln!(out, "tessera listening on http://{addr}")?;
    out.flush()?;
    drop(out);
    let store = match &backend {
        Backend::Postgres(pg) => format!("postgres (schema {})", pg.schema()),
        Backend::Sqlite(_) => format!("sqlite in {}", config.data_dir.display()),
    };
    tracing::info!(%addr, %public_url, %store, "tessera started");
    let background = tessera_server::spawn_background(auth.clone(), Duration::from_millis(config.sync_interval_ms));
    let audit = tessera_server::spawn_audit_writer(auth.clone(), Duration::from_millis(config.audit_flush_ms));
    let notified = backend.listen().map(|wake| sync_on_notify(auth.clone(), wake));
    let metrics = tessera_server::metrics_layer::install();
    let upkeep = metrics.clone().map(tessera_server::metrics_layer::spawn_upkeep);
    let access = tessera_server::MetricsAccess::new(addr, config.metrics_token.as_deref());
    let state = AppState::new(auth, metrics, access);
    tessera_server::run(listener, state, config.limits(), shutdown).await?;
    // No request is in flight any more: what they recorded is queued.
    audit.finish().await;
    background.abort();
    if let Some(u) = upkeep {
        u.abort();
    }
    if let Some(t) = notified {
        t.abort();
    }
    tracing::info!("tessera stopped");
    Ok(())
}

/// SIGTERM or SIGINT. The handlers are installed when this is called, so a signal that
/// arrives right after start-up (before the server polls the future) is not lost.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    })
}

/// `tessera migrate`: bring the schema up to date (opening a store migrates it).
pub async fn migrate(config: &Config) -> Result<()> {
    let (backend, _) = open_store(config).await?;
    println!("{} schema is up to date", backend.name());
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    /// `load_config` with its error as Jail's (figment::Error from a String).
    fn load(file: Option<&Path>, flags: &Overrides) -> figment::Result<Config> {
        load_config(file, flags).map_err(|e| e.to_string().into())
    }

    #[test]
    fn layers_defaults_then_file_then_env_then_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "tessera.toml",
                "listen = \"127.0.0.1:7000\"\naccess_ttl = 100\nrefresh_ttl = 200\nlog_format = \"json\"\n",
            )?;
            let file = Some(Path::new("tessera.toml"));
            // Defaults alone.
            let c = load(None, &Overrides::default())?;
            assert_eq!((c.listen.as_str(), c.access_ttl, c.log_format.as_str()), ("127.0.0.1:8080", 3600, "text"));
            // The file over the defaults.
            let c = load(file, &Overrides::default())?;
            assert_eq!((c.listen.as_str(), c.access_ttl, c.refresh_ttl), ("127.0.0.1:7000", 100, 200));
            // The environment over the file; what it does not name stays as the file says.
            jail.set_env("TESSERA_ACCESS_TTL", "300");
            jail.set_env("TESSERA_LISTEN", "127.0.0.1:7001");
            let c = load(file, &Overrides::default())?;
            assert_eq!((c.listen.as_str(), c.access_ttl, c.refresh_ttl), ("127.0.0.1:7001", 300, 200));
            assert_eq!(c.log_format, "json");
            // Flags over everything.
            let flags = Overrides { listen: Some("127.0.0.1:7002".into()), ..Default::default() };
            let c = load(file, &flags)?;
            assert_eq!((c.listen.as_str(), c.access_ttl), ("127.0.0.1:7002", 300));
            // A TESSERA_ variable that is not a setting is not read as one.
            jail.set_env("TESSERA_NOT_A_SETTING", "1");
            assert!(load(file, &flags).is_ok());
            Ok(())
        });
    }

    #[test]
    fn bad_configuration_is_refused_with_the_reason() {
        Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "acess_ttl = 5\n")?;
            let e = load_config(Some(Path::new("typo.toml")), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("acess_ttl"), "{e}");
            jail.create_file("zero.toml", "access_ttl = 0\n")?;
            let e = load_config(Some(Path::new("zero.toml")), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("access_ttl must be positive"), "{e}");
            jail.set_env("TESSERA_DB_POOL_SIZE", "many");
            let e = load_config(None, &Overrides::default()).unwrap_err().to_string();
            assert!(e.to_lowercase().contains("db_pool_size"), "{e}");
            let e = load_config(Some(Path::new("missing.toml")), &Overrides::default()).unwrap_err().to_string();
            assert!(e.contains("does not exist"), "{e}");
            Ok(())
        });
    }
}
