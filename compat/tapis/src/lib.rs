//! Harness for the Tapis compatibility tests: runs the real `tessera` binary on a fresh data
//! dir, drives its admin CLI on the same dir, and hands out `tapis_authenticator` clients
//! pointed at it. The tests themselves live in `tests/tapis/`.

use std::fmt::Debug;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::Value;
pub use tapis_authenticator;
use tapis_authenticator::TapisAuthenticator;
use tapis_authenticator::apis::Error as TapisError;
use tapis_authenticator::models::{NewToken, TokenResponse};

const LISTENING_PREFIX: &str = "tessera listening on ";
const BOOTSTRAP_PREFIX: &str = "bootstrap admin: ";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The `tessera` binary: `TESSERA_BIN`, else the workspace's debug build.
pub fn tessera_bin() -> PathBuf {
    match std::env::var_os("TESSERA_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/tessera"),
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A fresh, empty directory under the system temp dir, unique per process and call.
fn unique_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let p = std::env::temp_dir().join(format!("tessera-tapis-{tag}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).expect("create temp dir");
    p
}

/// Commands must not pick up configuration from the developer's environment.
fn scrub_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct CliOut {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// One running `tessera serve` on its own temp data dir, with `TESSERA_DEVICE_INTERVAL=1`.
/// Killed and its directory removed on drop.
pub struct Server {
    root: PathBuf,
    pub data_dir: PathBuf,
    log: PathBuf,
    pub port: u16,
    /// `http://127.0.0.1:PORT` from the listening line (the crate's base_url: no /v3 suffix).
    pub base: String,
    /// The bootstrap `admin` user's password.
    pub admin_password: String,
    /// A plain HTTP client for what the crate cannot do (JWKS, introspection, Host headers).
    pub http: reqwest::Client,
    child: Option<Child>,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with_env(&[])
    }

    /// Starts a server with extra `TESSERA_*` variables (on top of `TESSERA_DEVICE_INTERVAL=1`).
    pub fn start_with_env(env: &[(&str, &str)]) -> Server {
        let bin = tessera_bin();
        assert!(bin.exists(), "tessera binary not found at {} (build it or set TESSERA_BIN)", bin.display());
        let root = unique_dir("srv");
        let data_dir = root.join("data");
        let log = root.join("server.log");
        let log_file = std::fs::File::create(&log).expect("create server log");
        let mut cmd = Command::new(&bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file));
        scrub_env(&mut cmd);
        cmd.env("TESSERA_DEVICE_INTERVAL", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {} serve: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        // Keep draining stdout so the server can never block on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut lines: Vec<String> = Vec::new();
        let base = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    lines.push(line.clone());
                    if let Some(rest) = line.strip_prefix(LISTENING_PREFIX) {
                        break rest.trim().trim_end_matches('/').to_owned();
                    }
                }
                Err(e) => {
                    let status = child.try_wait().ok().flatten();
                    let _ = child.kill();
                    let _ = child.wait();
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let _ = std::fs::remove_dir_all(&root);
                    panic!(
                        "tessera serve printed no listening line ({e:?}); exit {status:?}\nstdout: {lines:#?}\nlog:\n{text}"
                    );
                }
            }
        };
        let port: u16 = base
            .strip_prefix("http://")
            .and_then(|r| r.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in listening URL {base:?}"));
        let admin_password = lines
            .iter()
            .find_map(|l| parse_bootstrap(l))
            .unwrap_or_else(|| panic!("no bootstrap admin line on first start; stdout: {lines:#?}"));
        let http =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().expect("reqwest client");
        Server { root, data_dir, log, port, base, admin_password, http, child: Some(child) }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client of the published crate, as a Tapis user would build it.
    pub fn tapis(&self, token: Option<&str>) -> TapisAuthenticator {
        TapisAuthenticator::new(&self.base, token).unwrap_or_else(|e| panic!("TapisAuthenticator::new: {e}"))
    }

    /// Runs `tessera ARGS --data-dir DIR` with `stdin` fed to it.
    pub fn cli_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> CliOut {
        let mut cmd = Command::new(tessera_bin());
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        scrub_env(&mut cmd);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn tessera cli");
        if let Some(input) = stdin {
            let mut si = child.stdin.take().unwrap();
            si.write_all(input.as_bytes()).expect("write cli stdin");
        }
        let out = child.wait_with_output().expect("wait tessera cli");
        CliOut {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn cli(&self, args: &[&str]) -> CliOut {
        self.cli_with_stdin(args, None)
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    #[track_caller]
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "tessera {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `tessera user create --tenant T --username U --password-stdin EXTRA...`
    #[track_caller]
    pub fn create_user(&self, tenant: &str, username: &str, password: &str, extra: &[&str]) {
        let mut args = vec!["user", "create", "--tenant", tenant, "--username", username, "--password-stdin"];
        args.extend_from_slice(extra);
        let out = self.cli_with_stdin(&args, Some(&format!("{password}\n")));
        assert!(out.status.success(), "tessera {args:?} failed: {}\n{}", out.stdout, out.stderr);
    }

    /// `tessera client create --tenant T --name N --grant G [--public] --json` -> (id, secret).
    #[track_caller]
    pub fn cli_client(&self, tenant: &str, name: &str, grants: &str, public: bool) -> (String, Option<String>) {
        let mut args = vec!["client", "create", "--tenant", tenant, "--name", name, "--grant", grants, "--json"];
        if public {
            args.push("--public");
        }
        let stdout = self.cli_ok(&args);
        let v: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("client create --json: {e}: {stdout}"));
        let id = v["client_id"].as_str().unwrap_or_else(|| panic!("no client_id in {v}")).to_owned();
        (id, v["client_secret"].as_str().map(str::to_owned))
    }

    /// A password-grant token set through the crate (no client: access token only).
    pub async fn password_token(&self, username: &str, password: &str) -> TokenResponse {
        let r = self
            .tapis(None)
            .tokens
            .create_token(NewToken {
                username: Some(username.into()),
                password: Some(password.into()),
                grant_type: Some("password".into()),
                ..Default::default()
            })
            .await;
        let r = ok(r, "password grant");
        *r.result.expect("create_token: no result")
    }

    /// An access token for `username` (password grant, no client).
    pub async fn access_token(&self, username: &str, password: &str) -> String {
        self.password_token(username, password).await.access_token.access_token.expect("no access_token string")
    }

    /// The JWKS of a tenant: `/.well-known/jwks.json` for default, `/t/T/...` otherwise.
    pub async fn jwks(&self, tenant: &str) -> Value {
        let url = if tenant == "default" {
            format!("{}/.well-known/jwks.json", self.base)
        } else {
            format!("{}/t/{tenant}/.well-known/jwks.json", self.base)
        };
        let r = self.http.get(&url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(r.status().as_u16(), 200, "GET {url}");
        r.json().await.unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
    }

    /// Verifies an EdDSA JWT against the tenant's JWKS; returns (header, claims).
    pub async fn verify_jwt(&self, tenant: &str, token: &str) -> (Value, Value) {
        let jwks = self.jwks(tenant).await;
        verify_eddsa_jwt(&jwks, token)
    }

    /// Standard RFC 7662 introspection at the tenant's `/oauth2/introspect`, client_secret_basic.
    pub async fn introspect(&self, tenant: &str, client_id: &str, secret: &str, token: &str) -> Value {
        let url = if tenant == "default" {
            format!("{}/oauth2/introspect", self.base)
        } else {
            format!("{}/t/{tenant}/oauth2/introspect", self.base)
        };
        let r = self
            .http
            .post(&url)
            .basic_auth(client_id, Some(secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status, 200, "introspect: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("introspect: not JSON ({e}): {text}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            // Keep the server's log visible next to the failure.
            let log = self.server_log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("---- tessera server log (last {} lines) ----", tail.len());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn parse_bootstrap(line: &str) -> Option<String> {
    let rest = line.strip_prefix(BOOTSTRAP_PREFIX)?;
    rest.split_whitespace().find_map(|w| w.strip_prefix("password=")).map(str::to_owned)
}

// ----- results of the crate -------------------------------------------------------------------

/// The success value of a crate call, checking its envelope (`status` "success", a message and
/// a version). Panics with the HTTP status and body otherwise.
#[track_caller]
pub fn ok<R: Serialize + Debug, E: Debug>(r: Result<R, TapisError<E>>, what: &str) -> R {
    match r {
        Ok(v) => {
            let j = serde_json::to_value(&v).expect("serialize response");
            assert_eq!(j["status"], "success", "{what}: envelope status: {j}");
            assert!(j["message"].is_string(), "{what}: envelope has no message: {j}");
            assert!(j["version"].is_string(), "{what}: envelope has no version: {j}");
            v
        }
        Err(TapisError::ResponseError(rc)) => panic!("{what}: HTTP {}: {}", rc.status, rc.content),
        Err(e) => panic!("{what}: {e} ({e:?})"),
    }
}

/// The body of a failed crate call that must be HTTP `status` with the Tapis error envelope
/// (`{"result": null, "status": "error", "message": "...", "version": "...", "metadata": {}}`).
#[track_caller]
pub fn err<R: Debug, E: Debug>(r: Result<R, TapisError<E>>, status: u16, what: &str) -> Value {
    err_in(r, &[status], what)
}

/// Like [`err`], for where more than one status is right.
#[track_caller]
pub fn err_in<R: Debug, E: Debug>(r: Result<R, TapisError<E>>, statuses: &[u16], what: &str) -> Value {
    match r {
        Err(TapisError::ResponseError(rc)) => {
            assert!(
                statuses.contains(&rc.status.as_u16()),
                "{what}: expected HTTP {statuses:?}, got {}: {}",
                rc.status,
                rc.content
            );
            let v: Value = serde_json::from_str(&rc.content)
                .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {:?}", rc.content));
            assert_eq!(v["status"], "error", "{what}: error envelope status: {v}");
            assert!(v.get("result").is_some_and(Value::is_null), "{what}: error envelope result must be null: {v}");
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: error envelope message: {v}");
            assert!(v["version"].is_string(), "{what}: error envelope version: {v}");
            v
        }
        Err(e) => panic!("{what}: expected HTTP {statuses:?}, got a client-side error: {e} ({e:?})"),
        Ok(v) => panic!("{what}: expected HTTP {statuses:?}, got success: {v:?}"),
    }
}

/// The message of an error envelope.
pub fn message(v: &Value) -> String {
    v["message"].as_str().unwrap_or_default().to_owned()
}

// ----- JWTs -----------------------------------------------------------------------------------

pub fn b64url(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).unwrap_or_else(|e| panic!("bad base64url {s:?}: {e}"))
}

pub fn b64(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap_or_else(|e| panic!("bad base64 {s:?}: {e}"))
}

/// (header, claims) without checking the signature.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token}");
    let header = serde_json::from_slice(&b64url(parts[0])).expect("JWT header JSON");
    let claims = serde_json::from_slice(&b64url(parts[1])).expect("JWT claims JSON");
    (header, claims)
}

/// Verifies an EdDSA (Ed25519) compact JWS with the key of its `kid` in `jwks`.
#[track_caller]
pub fn verify_eddsa_jwt(jwks: &Value, token: &str) -> (Value, Value) {
    let (header, claims) = decode_jwt(token);
    assert_eq!(header["alg"], "EdDSA", "JWT alg: {header}");
    let kid = header["kid"].as_str().unwrap_or_else(|| panic!("JWT header has no kid: {header}"));
    let keys = jwks["keys"].as_array().unwrap_or_else(|| panic!("JWKS has no keys: {jwks}"));
    let jwk = keys.iter().find(|k| k["kid"] == kid).unwrap_or_else(|| panic!("kid {kid} not in the JWKS: {jwks}"));
    assert_eq!(jwk["kty"], "OKP", "jwk: {jwk}");
    assert_eq!(jwk["crv"], "Ed25519", "jwk: {jwk}");
    let x = b64url(jwk["x"].as_str().unwrap_or_else(|| panic!("jwk has no x: {jwk}")));
    let (signing_input, sig) = token.rsplit_once('.').unwrap();
    let sig = b64url(sig);
    aws_lc_rs::signature::UnparsedPublicKey::new(&aws_lc_rs::signature::ED25519, &x)
        .verify(signing_input.as_bytes(), &sig)
        .unwrap_or_else(|_| panic!("JWT signature does not verify with kid {kid}"));
    (header, claims)
}

/// Parses an RFC 3339 timestamp that must carry an offset; returns epoch seconds.
#[track_caller]
pub fn rfc3339_secs(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339 with an offset: {e}"))
        .timestamp()
}
