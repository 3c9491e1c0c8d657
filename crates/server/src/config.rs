//! Server configuration: defaults, overridden by a TOML file, by `TESSERA_*` variables, by flags
//! (the binary layers them with figment; this is the shape they fill).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// Where the SQLite database and the master key file live.
    pub data_dir: PathBuf,
    /// `postgres://...` (TLS per `sslmode=`, schema per `options=-csearch_path%3D...`) to use
    /// PostgreSQL instead of `<data_dir>/tessera.db`; several nodes may share it.
    pub database_url: Option<String>,
    /// PostgreSQL connections per node.
    pub db_pool_size: u32,
    /// PostgreSQL statement timeout, and how long to wait for a connection, milliseconds:
    /// with the database gone, requests fail with `unavailable` after about this long.
    pub db_statement_timeout_ms: u64,
    /// The master key file; default `<data_dir>/master.key`. `TESSERA_MASTER_KEY` wins over it.
    pub master_key_file: Option<PathBuf>,
    /// Base URL clients use to reach this deployment; default `http://<listen address>`.
    pub public_url: Option<String>,
    /// Default access token lifetime, seconds.
    pub access_ttl: i64,
    /// Default refresh token lifetime, seconds.
    pub refresh_ttl: i64,
    /// Seconds during which a just-rotated refresh token may be presented again (0 = never).
    pub refresh_grace: i64,
    /// Seconds a new signing key is published before it signs.
    pub key_prepublish: i64,
    /// `text` or `json`.
    pub log_format: String,
    /// How often to pick up changes made by admin commands or other nodes, milliseconds.
    pub sync_interval_ms: u64,
    /// Threads of the Argon2 pool (default: cores - 1, at least 1).
    pub hash_concurrency: Option<usize>,
    /// Lifetime of a device authorization (RFC 8628), seconds.
    pub device_ttl: i64,
    /// Minimum polling interval of the device flow, seconds.
    pub device_interval: i64,
    /// A browser session (the login page's) ends after this many seconds without use...
    pub session_idle: i64,
    /// ...and this many seconds after the sign-in, however active.
    pub session_ttl: i64,
    /// Failed sign-ins allowed per (tenant, username) per window before `rate_limited`.
    pub login_failures_per_user: u32,
    /// Failed sign-ins allowed per client address per window.
    pub login_failures_per_address: u32,
    /// The brute-force window, seconds.
    pub login_window: i64,
    /// Failed device user-code look-ups (at the verification page) allowed per client address
    /// per login window.
    pub device_lookup_failures_per_address: u32,
    /// Failed device user-code look-ups allowed per tenant per login window.
    pub device_lookup_failures_per_tenant: u32,
    /// A connection with no request in flight must send a request's headers within this many
    /// milliseconds, or it is closed, after 1 to 1.25 times it (slow senders; idle keep-alive
    /// connections).
    pub header_timeout_ms: u64,
    /// Body and handling of a request must finish within this many milliseconds, or the
    /// answer is 503.
    pub request_timeout_ms: u64,
    /// Connections served at once; past it, new ones wait in the listen queue until one ends
    /// (each holds a file descriptor and a task).
    pub max_connections: usize,
    /// When set, `/metrics` answers only requests with `Authorization: Bearer <this>` (at
    /// least 16 characters). When not set, `/metrics` is open if the server listens on a
    /// loopback address, and answers only loopback peers otherwise.
    pub metrics_token: Option<String>,
    /// Days audit events are kept before the purge loop deletes them (0: kept for ever).
    pub audit_retention_days: i64,
    /// Audit events that may wait in memory to be written (past it they are dropped and
    /// counted in `/metrics`, never making a request wait).
    pub audit_queue: usize,
    /// How often queued audit events are written to the store, milliseconds.
    pub audit_flush_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./tessera-data"),
            database_url: None,
            db_pool_size: 16,
            db_statement_timeout_ms: 5000,
            master_key_file: None,
            public_url: None,
            access_ttl: 3600,
            refresh_ttl: 30 * 24 * 3600,
            refresh_grace: 0,
            key_prepublish: 0,
            log_format: "text".into(),
            sync_interval_ms: 250,
            hash_concurrency: None,
            device_ttl: 600,
            device_interval: 5,
            session_idle: 30 * 60,
            session_ttl: 12 * 3600,
            login_failures_per_user: 10,
            login_failures_per_address: 100,
            login_window: 300,
            device_lookup_failures_per_address: 10,
            device_lookup_failures_per_tenant: 100,
            header_timeout_ms: 30_000,
            request_timeout_ms: 30_000,
            max_connections: 1024,
            metrics_token: None,
            audit_retention_days: 90,
            audit_queue: 65_536,
            audit_flush_ms: 500,
        }
    }
}

impl Config {
    /// The names accepted from `TESSERA_*` environment variables.
    pub const ENV_KEYS: &'static [&'static str] = &[
        "listen",
        "data_dir",
        "database_url",
        "db_pool_size",
        "db_statement_timeout_ms",
        "master_key_file",
        "public_url",
        "access_ttl",
        "refresh_ttl",
        "refresh_grace",
        "key_prepublish",
        "log_format",
        "sync_interval_ms",
        "hash_concurrency",
        "device_ttl",
        "device_interval",
        "session_idle",
        "session_ttl",
        "login_failures_per_user",
        "login_failures_per_address",
        "login_window",
        "device_lookup_failures_per_address",
        "device_lookup_failures_per_tenant",
        "header_timeout_ms",
        "request_timeout_ms",
        "max_connections",
        "metrics_token",
        "audit_retention_days",
        "audit_queue",
        "audit_flush_ms",
    ];

    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("access_ttl", self.access_ttl),
            ("refresh_ttl", self.refresh_ttl),
            ("device_ttl", self.device_ttl),
            ("device_interval", self.device_interval),
            ("session_idle", self.session_idle),
            ("session_ttl", self.session_ttl),
            ("login_window", self.login_window),
        ] {
            if v <= 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        for (name, v) in [
            ("refresh_grace", self.refresh_grace),
            ("key_prepublish", self.key_prepublish),
            ("audit_retention_days", self.audit_retention_days),
        ] {
            if v < 0 {
                return Err(format!("{name} must not be negative"));
            }
        }
        if let Some(u) = &self.database_url
            && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
        {
            return Err("database_url must be a postgres:// URL (SQLite lives in data_dir)".into());
        }
        if self.db_pool_size == 0 {
            return Err("db_pool_size must be positive".into());
        }
        if !(1..=10_000_000).contains(&self.audit_queue) {
            return Err("audit_queue must be 1-10000000".into());
        }
        if !(1..=1_000_000).contains(&self.max_connections) {
            return Err("max_connections must be 1-1000000".into());
        }
        for (name, v) in [
            ("db_statement_timeout_ms", self.db_statement_timeout_ms),
            ("header_timeout_ms", self.header_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
            ("audit_flush_ms", self.audit_flush_ms),
        ] {
            if v == 0 {
                return Err(format!("{name} must be positive"));
            }
        }
        if let Some(t) = &self.metrics_token
            && (t.len() < 16 || t.len() > 256 || !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err("metrics_token must be 16-256 printable characters without spaces".into());
        }
        if !matches!(self.log_format.as_str(), "text" | "json") {
            return Err("log_format must be `text` or `json`".into());
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err("public_url must be an http(s) URL".into());
        }
        Ok(())
    }

    /// The HTTP server's time limits.
    pub fn limits(&self) -> crate::Limits {
        crate::Limits {
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms),
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms),
            max_connections: self.max_connections,
            // Not a setting: a fault injection for the tests of debug builds only.
            inject_panics: cfg!(debug_assertions) && std::env::var_os("TESSERA_TEST_PANICS").is_some_and(|v| v == "1"),
        }
    }

    pub fn settings(&self, public_url: String) -> tessera_core::Settings {
        tessera_core::Settings {
            public_url,
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            refresh_grace: self.refresh_grace,
            key_prepublish: self.key_prepublish,
            device_ttl: self.device_ttl,
            device_interval: self.device_interval,
            session_idle: self.session_idle,
            session_ttl: self.session_ttl,
            limits: tessera_core::throttle::Limits {
                per_user: self.login_failures_per_user.max(1),
                per_origin: self.login_failures_per_address.max(1),
                window: self.login_window,
                device_per_origin: self.device_lookup_failures_per_address.max(1),
                device_per_tenant: self.device_lookup_failures_per_tenant.max(1),
            },
            audit_retention_days: self.audit_retention_days,
            audit_queue: self.audit_queue,
        }
    }
}

/// Debug output never shows the database password.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut v = serde_json::to_value(self).map_err(|_| std::fmt::Error)?;
        if let Some(members) = v.as_object_mut() {
            if let Some(url) = self.database_url.as_deref() {
                members.insert("database_url".into(), redact_url(url).into());
            }
            if self.metrics_token.is_some() {
                members.insert("metrics_token".into(), "***".into());
            }
        }
        write!(f, "Config {v}")
    }
}

/// `postgres://user:secret@host/db` -> `postgres://user:***@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.split_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_password_is_redacted() {
        assert_eq!(super::redact_url("postgres://u:pw@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        let c = super::Config { database_url: Some("postgres://u:hunter2@h/db".into()), ..Default::default() };
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = super::Config { metrics_token: Some("metrics-token-hunter2".into()), ..Default::default() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
