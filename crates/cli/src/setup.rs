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
use tessera_store::SqliteStore;

/// Values given as flags: they win over everything else.
#[derive(Debug, Default, serde::Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
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
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// The master key: `TESSERA_MASTER_KEY`, else the key file, else (first start only) a new
/// key written to the key file with mode 0600.
fn master_key(config: &Config, db_existed: bool) -> Result<MasterKey> {
    if let Ok(v) = std::env::var("TESSERA_MASTER_KEY") {
        return MasterKey::from_base64(&v).map_err(|e| anyhow!("TESSERA_MASTER_KEY: {}", e.description));
    }
    let path = config.master_key_file.clone().unwrap_or_else(|| config.data_dir.join("master.key"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            MasterKey::from_base64(&text).map_err(|e| anyhow!("master key file {}: {}", path.display(), e.description))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if db_existed {
                bail!(
                    "master key file {} is missing and the database already holds keys; \
                     restore it or set TESSERA_MASTER_KEY",
                    path.display()
                );
            }
            let key = MasterKey::generate(&SystemRng);
            write_private(&path, key.to_base64().as_bytes())?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading master key file {}", path.display())),
    }
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

/// Open the data dir (creating it on first use) and the engine over it. On a new data
/// dir this bootstraps the default tenant and the `admin` user; the one-time password is
/// returned for the caller to show.
pub async fn open(
    config: &Config,
    public_url: String,
    hasher: Arc<dyn PasswordHasher>,
) -> Result<(Arc<Authority>, Option<tessera_core::secret::Secret>)> {
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    }
    let db_path = config.data_dir.join("tessera.db");
    let db_existed = db_path.exists();
    let master = master_key(config, db_existed)?;
    let store =
        SqliteStore::open(&db_path).await.map_err(|e| anyhow!("opening database {}: {e}", db_path.display()))?;
    let auth = Authority::open(
        Arc::new(store),
        Arc::new(SystemClock),
        Arc::new(SystemRng),
        hasher,
        master,
        config.settings(public_url),
    )
    .await
    .map_err(|e| anyhow!("{}", e.description))?;
    let password = auth.bootstrap().await.map_err(|e| anyhow!("bootstrap failed: {}", e.description))?;
    Ok((Arc::new(auth), password))
}

/// The engine for one admin command (hashing inline).
pub async fn open_admin(config: &Config) -> Result<Arc<Authority>> {
    let rng: Arc<dyn Rng> = Arc::new(SystemRng);
    let hasher = Arc::new(InlineHasher { argon: Argon2id::default(), rng });
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    let (auth, password) = open(config, public_url, hasher).await?;
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
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let hasher =
        Arc::new(PooledHasher::new(Argon2id::default(), Arc::new(SystemRng), config.hash_concurrency.unwrap_or(cores)));
    let (auth, password) = open(&config, public_url.clone(), hasher).await?;
    let mut out = std::io::stdout().lock();
    if let Some(pw) = password {
        writeln!(out, "bootstrap admin: username=admin password={} (shown once)", pw.expose())?;
    }
    writeln!(out, "tessera listening on http://{addr}")?;
    out.flush()?;
    drop(out);
    tracing::info!(%addr, %public_url, data_dir = %config.data_dir.display(), "tessera started");
    let background = tessera_server::spawn_background(auth.clone(), Duration::from_millis(config.sync_interval_ms));
    let state = AppState { auth, metrics: tessera_server::metrics_layer::install() };
    tessera_server::run(listener, state, shutdown_signal()).await?;
    background.abort();
    tracing::info!("tessera stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
