//! Test harness: runs the real `tessera` binary on a fresh data dir and talks to it over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");
const LISTENING_PREFIX: &str = "tessera listening on ";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory under the system temp dir, unique per process and call.
pub fn unique_dir(tag: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let p = std::env::temp_dir().join(format!("tessera-api-{tag}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).expect("create temp dir");
    p
}

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// How a request authenticates its client.
#[derive(Clone, Copy, Debug)]
pub enum Auth<'a> {
    /// client_secret_basic
    Basic(&'a str, &'a str),
    /// client_secret_post
    Post(&'a str, &'a str),
    /// public client: client_id in the form, no secret
    Public(&'a str),
    None,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    /// The body parsed as JSON, or Null.
    pub json: Value,
}

impl Resp {
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("<no error field>")
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| v.to_str().unwrap_or("<non-ascii>").to_string())
    }
    /// Asserts an RFC 6749 5.2 error with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, error: &str, what: &str) {
        assert_eq!(
            (self.status, self.error()),
            (status, error),
            "{what}: expected {status} {error}, got {} {}",
            self.status,
            self.text
        );
    }
    #[track_caller]
    pub fn assert_ok(&self, what: &str) -> &Value {
        assert_eq!(self.status, 200, "{what}: expected 200, got {} {}", self.status, self.text);
        &self.json
    }
}

/// The result of one CLI run.
pub struct CliOut {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// One running `tessera serve` on its own data dir. Killed (SIGTERM, then SIGKILL) and its
/// directory removed on drop.
pub struct TestServer {
    root: PathBuf,
    pub data_dir: PathBuf,
    log: PathBuf,
    pub port: u16,
    /// `http://127.0.0.1:PORT`, from the listening line.
    pub base: String,
    pub http: reqwest::Client,
    /// Lines printed on stdout before (and including) the listening line, last start.
    pub startup_lines: Vec<String>,
    /// The bootstrap admin password, when the first start printed one.
    pub admin_password: Option<String>,
    child: Option<Child>,
    /// Environment given to the server, and to every CLI command run against it.
    env: Vec<(String, String)>,
    /// A command the server runs under (e.g. `ip netns exec NS`); empty for none.
    prefix: Vec<String>,
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("reqwest client")
}

/// Commands must not pick up configuration from the developer's environment.
pub fn scrub_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TESSERA_") {
            cmd.env_remove(k);
        }
    }
}

struct Spawned {
    child: Child,
    lines: Vec<String>,
    base: String,
}

fn spawn_server(prefix: &[String], data_dir: &Path, listen: &str, log: &Path, env: &[(&str, &str)]) -> Spawned {
    let log_file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("open server log");
    let mut cmd = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(["serve", "--listen", listen, "--data-dir"])
        .arg(data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file));
    scrub_env(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn tessera serve");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    // Keep draining stdout for the life of the process so it can never block on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let is_listen = line.starts_with(LISTENING_PREFIX);
                lines.push(line.clone());
                if is_listen {
                    let base = line[LISTENING_PREFIX.len()..].trim().to_string();
                    return Spawned { child, lines, base };
                }
            }
            Err(e) => {
                let status = child.try_wait().ok().flatten();
                let _ = child.kill();
                let _ = child.wait();
                let log_text = std::fs::read_to_string(log).unwrap_or_default();
                panic!(
                    "tessera serve did not print its listening line ({e:?}); exit status {status:?}\n\
                     stdout so far: {lines:#?}\nserver log:\n{log_text}"
                );
            }
        }
    }
}

fn port_of(base: &str) -> u16 {
    let rest = base.strip_prefix("http://").unwrap_or_else(|| panic!("listening URL {base:?} is not http://"));
    let port = rest.rsplit(':').next().unwrap();
    port.trim_end_matches('/').parse().unwrap_or_else(|_| panic!("no port in {base:?}"))
}

/// Sends SIGTERM, waits up to 10 s, then SIGKILL. Returns the exit status if it exited by itself.
fn terminate(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl TestServer {
    /// Starts a server on a fresh data dir (which does not exist yet) and port 0.
    pub async fn start() -> TestServer {
        Self::start_with_env(&[]).await
    }

    pub async fn start_with_env(env: &[(&str, &str)]) -> TestServer {
        Self::start_on("127.0.0.1:0", env).await
    }

    /// Starts a server listening on `listen` (e.g. `0.0.0.0:0`).
    pub async fn start_on(listen: &str, env: &[(&str, &str)]) -> TestServer {
        Self::start_under(&[], listen, env).await
    }

    /// Starts a server under the command `prefix` (e.g. `["ip", "netns", "exec", NS]`: the
    /// process must exec the server, so that its pid is the server's), listening on `listen`.
    pub async fn start_under(prefix: &[&str], listen: &str, env: &[(&str, &str)]) -> TestServer {
        let root = unique_dir("srv");
        let data_dir = root.join("data");
        let log = root.join("server.log");
        let prefix: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        let sp = spawn_server(&prefix, &data_dir, listen, &log, env);
        let port = port_of(&sp.base);
        let admin_password = sp.lines.iter().find_map(|l| parse_bootstrap(l));
        TestServer {
            root,
            data_dir,
            log,
            port,
            base: sp.base,
            http: http_client(),
            startup_lines: sp.lines,
            admin_password,
            child: Some(sp.child),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            prefix,
        }
    }

    /// Graceful stop; returns the exit status if the server exited on SIGTERM within 10 s.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        terminate(&mut c)
    }

    /// A crash: SIGKILL, no graceful shutdown (`restart` starts it again).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the server (SIGTERM) and starts it again on the same data dir and port.
    pub async fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let st = terminate(&mut c);
            assert!(st.is_some(), "server did not exit within 10 s of SIGTERM");
        }
        let listen = format!("127.0.0.1:{}", self.port);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let sp = spawn_server(&self.prefix, &self.data_dir, &listen, &self.log, &env);
        assert_eq!(port_of(&sp.base), self.port, "restart should listen on the same port");
        self.base = sp.base;
        self.startup_lines = sp.lines;
        self.child = Some(sp.child);
        // Old pooled connections point at the dead process.
        self.http = http_client();
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    // ---- CLI ----

    /// Runs `tessera ARGS --data-dir DIR`, feeding `stdin` if given.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>) -> CliOut {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        scrub_env(&mut cmd);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tessera cli");
        if let Some(input) = stdin {
            let mut si = child.stdin.take().unwrap();
            let _ = si.write_all(input.as_bytes());
        }
        let mut out = String::new();
        let mut err = String::new();
        let mut so = child.stdout.take().unwrap();
        let mut se = child.stderr.take().unwrap();
        let t = std::thread::spawn(move || {
            let mut e = String::new();
            let _ = se.read_to_string(&mut e);
            e
        });
        let _ = so.read_to_string(&mut out);
        err.push_str(&t.join().unwrap());
        let status = child.wait().expect("wait cli");
        CliOut { status, stdout: out, stderr: err }
    }

    /// Runs the CLI and panics unless it succeeds; returns stdout.
    #[track_caller]
    pub fn cli_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let o = self.cli(args, stdin);
        assert!(
            o.status.success(),
            "`tessera {}` failed ({}):\nstdout: {}\nstderr: {}",
            args.join(" "),
            o.status,
            o.stdout,
            o.stderr
        );
        o.stdout
    }

    pub fn create_tenant(&self, name: &str, extra: &[&str]) {
        let mut args = vec!["tenant", "create", name];
        args.extend_from_slice(extra);
        self.cli_ok(&args, None);
        self.wait_for_tenant(name);
    }

    /// A running server learns of tenants created by the CLI on its next store sync (the spec
    /// promises "at once" only for clients and users), so wait until the tenant answers.
    pub fn wait_for_tenant(&self, name: &str) {
        let url = self.url(name, "/.well-known/jwks.json");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if http_status(&url) == Some(200) {
                return;
            }
            assert!(Instant::now() < deadline, "tenant {name} not served within 5 s of `tenant create`");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `client create ... --json`; returns (client_id, client_secret).
    pub fn create_client(&self, tenant: &str, grants: &str, scope: Option<&str>) -> (String, String) {
        let v = self.create_client_json(tenant, grants, scope, false);
        let id = v["client_id"].as_str().expect("client_id").to_string();
        let secret = v["client_secret"].as_str().expect("client_secret").to_string();
        (id, secret)
    }

    /// A public client (no secret); returns client_id.
    pub fn create_public_client(&self, tenant: &str, grants: &str, scope: Option<&str>) -> String {
        let v = self.create_client_json(tenant, grants, scope, true);
        assert!(v["client_secret"].is_null(), "public client must have client_secret null: {v}");
        v["client_id"].as_str().expect("client_id").to_string()
    }

    fn create_client_json(&self, tenant: &str, grants: &str, scope: Option<&str>, public: bool) -> Value {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("client{n}");
        let mut args = vec!["client", "create", "--tenant", tenant, "--name", &name, "--grant", grants];
        if let Some(s) = scope {
            args.extend_from_slice(&["--scope", s]);
        }
        if public {
            args.push("--public");
        }
        args.push("--json");
        let out = self.cli_ok(&args, None);
        serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("client create --json printed non-JSON ({e}): {out:?}"))
    }

    pub fn create_user(&self, tenant: &str, username: &str, password: &str) {
        self.cli_ok(
            &["user", "create", "--tenant", tenant, "--username", username, "--password-stdin"],
            Some(&format!("{password}\n")),
        );
    }

    pub fn disable_user(&self, tenant: &str, username: &str) {
        self.cli_ok(&["user", "disable", "--tenant", tenant, "--username", username], None);
    }

    pub fn rotate_key(&self, tenant: &str) {
        self.cli_ok(&["key", "rotate", "--tenant", tenant], None);
    }

    // ---- HTTP ----

    /// Path prefix of a tenant: the default tenant at the root, others under /t/T.
    pub fn prefix(tenant: &str) -> String {
        if tenant == "default" { String::new() } else { format!("/t/{tenant}") }
    }

    pub fn url(&self, tenant: &str, path: &str) -> String {
        format!("{}{}{}", self.base, Self::prefix(tenant), path)
    }

    /// The issuer the spec gives a tenant without --issuer.
    pub fn issuer(&self, tenant: &str) -> String {
        format!("{}{}", self.base, Self::prefix(tenant))
    }

    pub async fn post_form(&self, tenant: &str, path: &str, form: &[(&str, &str)], auth: Auth<'_>) -> Resp {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        let mut req = self.http.post(self.url(tenant, path));
        match auth {
            Auth::Basic(id, secret) => req = req.basic_auth(id, Some(secret)),
            Auth::Post(id, secret) => {
                fields.push(("client_id", id));
                fields.push(("client_secret", secret));
            }
            Auth::Public(id) => fields.push(("client_id", id)),
            Auth::None => {}
        }
        let resp = req.form(&fields).send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"));
        read_resp(resp).await
    }

    pub async fn token(&self, tenant: &str, form: &[(&str, &str)], auth: Auth<'_>) -> Resp {
        self.post_form(tenant, "/oauth2/token", form, auth).await
    }

    /// Issues a client_credentials token and returns the access token (asserts 200).
    pub async fn cc_token(&self, tenant: &str, id: &str, secret: &str, scope: Option<&str>) -> String {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let r = self.token(tenant, &form, Auth::Basic(id, secret)).await;
        r.assert_ok("client_credentials token")["access_token"].as_str().expect("access_token").to_string()
    }

    /// Password grant; returns the whole token response (asserts 200).
    pub async fn password_token(
        &self,
        tenant: &str,
        id: &str,
        secret: &str,
        user: &str,
        pw: &str,
        scope: Option<&str>,
    ) -> Value {
        let mut form = vec![("grant_type", "password"), ("username", user), ("password", pw)];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        let r = self.token(tenant, &form, Auth::Basic(id, secret)).await;
        r.assert_ok("password token").clone()
    }

    /// Introspects and asserts 200 + JSON; returns the body.
    pub async fn introspect(&self, tenant: &str, token: &str, auth: Auth<'_>) -> Value {
        self.introspect_hint(tenant, token, None, auth).await
    }

    pub async fn introspect_hint(&self, tenant: &str, token: &str, hint: Option<&str>, auth: Auth<'_>) -> Value {
        let mut form = vec![("token", token)];
        if let Some(h) = hint {
            form.push(("token_type_hint", h));
        }
        let r = self.post_form(tenant, "/oauth2/introspect", &form, auth).await;
        assert_eq!(r.status, 200, "introspect: expected 200, got {} {}", r.status, r.text);
        assert!(r.json.is_object(), "introspect: body is not a JSON object: {}", r.text);
        r.json
    }

    /// Introspects and returns `active` (asserting it is a boolean).
    pub async fn is_active(&self, tenant: &str, token: &str, auth: Auth<'_>) -> bool {
        let v = self.introspect(tenant, token, auth).await;
        v["active"].as_bool().unwrap_or_else(|| panic!("introspect: `active` missing or not a boolean: {v}"))
    }

    pub async fn revoke(&self, tenant: &str, token: &str, auth: Auth<'_>) -> Resp {
        self.post_form(tenant, "/oauth2/revoke", &[("token", token)], auth).await
    }

    pub async fn get(&self, path: &str) -> Resp {
        let resp =
            self.http.get(format!("{}{}", self.base, path)).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        read_resp(resp).await
    }

    pub async fn get_url(&self, url: &str) -> Resp {
        let resp = self.http.get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        read_resp(resp).await
    }

    pub async fn jwks(&self, tenant: &str) -> Value {
        let r = self.get_url(&self.url(tenant, "/.well-known/jwks.json")).await;
        let v = r.assert_ok("jwks").clone();
        assert!(v["keys"].is_array(), "jwks without keys array: {}", r.text);
        v
    }

    /// Finds a key in the tenant's JWKS by kid.
    pub async fn jwk(&self, tenant: &str, kid: &str) -> Option<Value> {
        let set = self.jwks(tenant).await;
        set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).cloned()
    }

    /// Checks everything the spec promises about an access token from a 200 token response,
    /// including that its signature verifies with the tenant's published JWK. Returns it decoded.
    pub async fn check_access_token(&self, tenant: &str, resp: &Value, want: &Expect<'_>) -> Jwt {
        let at = resp["access_token"].as_str().unwrap_or_else(|| panic!("no access_token in {resp}"));
        let tt = resp["token_type"].as_str().unwrap_or_default();
        assert!(tt.eq_ignore_ascii_case("bearer"), "token_type should be Bearer: {resp}");
        let expires_in = resp["expires_in"].as_i64().unwrap_or_else(|| panic!("expires_in not an integer: {resp}"));
        assert!(expires_in > 0, "expires_in should be positive: {resp}");
        assert_scope_eq(resp["scope"].as_str().unwrap_or_else(|| panic!("no scope in response: {resp}")), want.scope);

        let jwt = decode_jwt(at);
        let h = &jwt.header;
        assert_eq!(h["alg"], want.alg, "header alg: {h}");
        assert_eq!(h["typ"], "at+jwt", "header typ: {h}");
        let kid = h["kid"].as_str().unwrap_or_else(|| panic!("header without kid: {h}"));
        assert!(!kid.is_empty());

        let c = &jwt.claims;
        let issuer = want.issuer.map(str::to_string).unwrap_or_else(|| self.issuer(tenant));
        assert_eq!(c["iss"], issuer.as_str(), "iss: {c}");
        assert_eq!(c["sub"], want.sub, "sub: {c}");
        assert_aud_contains(&c["aud"], &issuer);
        assert_eq!(c["client_id"], want.client_id, "client_id: {c}");
        assert_eq!(c["tenant"], tenant, "tenant: {c}");
        assert_scope_eq(c["scope"].as_str().unwrap_or_else(|| panic!("scope claim missing: {c}")), want.scope);
        let iat = c["iat"].as_i64().unwrap_or_else(|| panic!("iat not an integer: {c}"));
        let exp = c["exp"].as_i64().unwrap_or_else(|| panic!("exp not an integer: {c}"));
        let t = now();
        assert!(iat <= t + 5 && iat >= t - 60, "iat {iat} not near now {t}");
        assert!((exp - iat - expires_in).abs() <= 1, "exp - iat ({}) != expires_in ({expires_in})", exp - iat);
        if let Some(nbf) = c.get("nbf") {
            assert!(nbf.as_i64().is_some_and(|n| n <= t + 5), "nbf in the future: {c}");
        }
        let jti = c["jti"].as_str().unwrap_or_else(|| panic!("jti missing: {c}"));
        assert!(jti.len() >= 8, "jti too short to be unique: {jti:?}");

        // JWKS has the kid with the right key type, and the signature verifies with it.
        let jwk = self.jwk(tenant, kid).await.unwrap_or_else(|| panic!("kid {kid} not in the JWKS of tenant {tenant}"));
        check_jwk_shape(&jwk, want.alg);
        assert!(
            verify_with_jwk(&jwk, jwt.signing_input.as_bytes(), &jwt.signature),
            "signature does not verify with the published JWK {jwk}"
        );
        jwt
    }
}

/// What an access token should say.
pub struct Expect<'a> {
    pub alg: &'a str,
    pub sub: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    /// Overrides the issuer derived from the tenant (tenants created with --issuer).
    pub issuer: Option<&'a str>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
        if std::thread::panicking() {
            eprintln!("---- tessera server log ({}) ----\n{}", self.log.display(), self.server_log());
        }
        if std::env::var_os("TESSERA_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// The status of a plain HTTP/1.0 GET, without an async runtime (for sync helpers).
fn http_status(url: &str) -> Option<u16> {
    use std::net::TcpStream;
    let rest = url.strip_prefix("http://")?;
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn = TcpStream::connect(hostport).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {hostport}\r\nConnection: close\r\n\r\n").ok()?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn parse_bootstrap(line: &str) -> Option<String> {
    let rest = line.strip_prefix("bootstrap admin: username=admin password=")?;
    Some(rest.split_whitespace().next()?.to_string())
}

async fn read_resp(resp: reqwest::Response) -> Resp {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, headers, text, json }
}

// ---- scope / aud ----

pub fn scope_set(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    v.sort();
    v.dedup();
    v
}

#[track_caller]
pub fn assert_scope_eq(got: &str, want: &str) {
    assert_eq!(scope_set(got), scope_set(want), "scope {got:?} != {want:?}");
}

#[track_caller]
pub fn assert_aud_contains(aud: &Value, issuer: &str) {
    let ok = match aud {
        Value::String(s) => s == issuer,
        Value::Array(a) => a.iter().any(|x| x == issuer),
        _ => false,
    };
    assert!(ok, "aud {aud} should be (or contain) {issuer}");
}

// ---- JWT ----

pub fn b64d(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap_or_else(|e| panic!("bad base64url {s:?}: {e}"))
}

pub fn b64e(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A compact JWS split into its parts.
#[derive(Clone, Debug)]
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    pub signing_input: String,
    pub signature: Vec<u8>,
    pub raw: String,
}

#[track_caller]
pub fn decode_jwt(token: &str) -> Jwt {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {token:?}");
    let header: Value = serde_json::from_slice(&b64d(parts[0])).expect("header JSON");
    let claims: Value = serde_json::from_slice(&b64d(parts[1])).expect("claims JSON");
    Jwt {
        header,
        claims,
        signing_input: format!("{}.{}", parts[0], parts[1]),
        signature: b64d(parts[2]),
        raw: token.to_string(),
    }
}

/// Encodes header and claims; returns the signing input `h.c`.
pub fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        b64e(serde_json::to_string(header).unwrap().as_bytes()),
        b64e(serde_json::to_string(claims).unwrap().as_bytes())
    )
}

pub fn hs256(secret: &[u8], input: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, input).as_ref().to_vec()
}

/// Forges an HS256 token over `claims` with `secret` as the HMAC key.
pub fn forge_hs256(kid: &str, claims: &Value, secret: &[u8]) -> String {
    let header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let si = signing_input(&header, claims);
    let sig = hs256(secret, si.as_bytes());
    format!("{si}.{}", b64e(&sig))
}

#[track_caller]
pub fn check_jwk_shape(jwk: &Value, alg: &str) {
    assert_eq!(jwk["alg"], alg, "jwk alg: {jwk}");
    assert_eq!(jwk["use"], "sig", "jwk use: {jwk}");
    match alg {
        "EdDSA" => {
            assert_eq!(jwk["kty"], "OKP", "{jwk}");
            assert_eq!(jwk["crv"], "Ed25519", "{jwk}");
            assert_eq!(b64d(jwk["x"].as_str().expect("x")).len(), 32, "{jwk}");
        }
        "ES256" => {
            assert_eq!(jwk["kty"], "EC", "{jwk}");
            assert_eq!(jwk["crv"], "P-256", "{jwk}");
            assert_eq!(b64d(jwk["x"].as_str().expect("x")).len(), 32, "{jwk}");
            assert_eq!(b64d(jwk["y"].as_str().expect("y")).len(), 32, "{jwk}");
        }
        "RS256" => {
            assert_eq!(jwk["kty"], "RSA", "{jwk}");
            assert!(b64d(jwk["n"].as_str().expect("n")).len() >= 256, "RSA key < 2048 bits: {jwk}");
            assert!(jwk["e"].is_string(), "{jwk}");
        }
        other => panic!("unknown alg {other}"),
    }
    for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
        assert!(jwk.get(private).is_none(), "JWK publishes private member {private:?}: {jwk}");
    }
}

/// Verifies a JWS signature with a public JWK, independently of the server.
pub fn verify_with_jwk(jwk: &Value, msg: &[u8], sig: &[u8]) -> bool {
    use aws_lc_rs::signature;
    match jwk["kty"].as_str() {
        Some("OKP") => {
            let x = b64d(jwk["x"].as_str().unwrap());
            signature::UnparsedPublicKey::new(&signature::ED25519, x).verify(msg, sig).is_ok()
        }
        Some("EC") => {
            let mut pt = vec![4u8];
            pt.extend(b64d(jwk["x"].as_str().unwrap()));
            pt.extend(b64d(jwk["y"].as_str().unwrap()));
            signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, pt).verify(msg, sig).is_ok()
        }
        Some("RSA") => {
            let n = b64d(jwk["n"].as_str().unwrap());
            let e = b64d(jwk["e"].as_str().unwrap());
            signature::RsaPublicKeyComponents { n: &n, e: &e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok()
        }
        _ => false,
    }
}

/// The SubjectPublicKeyInfo DER of a public JWK, as a naive verifier would load it.
pub fn spki_der(jwk: &Value) -> Vec<u8> {
    match jwk["kty"].as_str() {
        Some("OKP") => {
            let mut v = vec![0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];
            v.extend(b64d(jwk["x"].as_str().unwrap()));
            v
        }
        Some("EC") => {
            let mut v = vec![
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
                0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
            ];
            v.extend(b64d(jwk["x"].as_str().unwrap()));
            v.extend(b64d(jwk["y"].as_str().unwrap()));
            v
        }
        Some("RSA") => {
            let n = b64d(jwk["n"].as_str().unwrap());
            let e = b64d(jwk["e"].as_str().unwrap());
            use aws_lc_rs::encoding::AsDer;
            let der = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e }
                .as_der()
                .expect("RSA JWK encodes as SPKI");
            der.as_ref().to_vec()
        }
        other => panic!("unknown kty {other:?}"),
    }
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// The raw public key bytes a JWK carries (x for OKP, 04||x||y for EC, n for RSA).
pub fn raw_public_key(jwk: &Value) -> Vec<u8> {
    match jwk["kty"].as_str() {
        Some("OKP") => b64d(jwk["x"].as_str().unwrap()),
        Some("EC") => {
            let mut pt = vec![4u8];
            pt.extend(b64d(jwk["x"].as_str().unwrap()));
            pt.extend(b64d(jwk["y"].as_str().unwrap()));
            pt
        }
        Some("RSA") => b64d(jwk["n"].as_str().unwrap()),
        other => panic!("unknown kty {other:?}"),
    }
}

// ---- CLI assertions ----

/// A CLI failure must be: non-zero exit (not a signal), exactly one non-empty stderr line
/// starting with `error: `, and no panic.
#[track_caller]
pub fn assert_cli_error(o: &CliOut, what: &str) {
    assert!(!o.status.success(), "{what}: expected failure, but it succeeded; stdout: {}", o.stdout);
    assert!(o.status.code().is_some(), "{what}: killed by a signal ({})", o.status);
    assert!(!o.stderr.contains("panicked"), "{what}: panicked:\n{}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("error: "),
        "{what}: stderr should be one line starting with `error: `, got:\n{}",
        o.stderr
    );
}

// ---- the fronts, and forging with a tenant's real key ----

impl TestServer {
    /// Any request, with the given headers and an optional body (the fronts' own schemes).
    pub async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("HTTP method");
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        read_resp(resp).await
    }

    /// A tenant's current signing key, unsealed from the data dir with its master key, as an
    /// attacker who had stolen it would hold it: for tests that need a correctly signed token
    /// the server must still refuse.
    pub async fn signing_key(&self, tenant: &str) -> tessera_core::keys::SigningKey {
        let master = std::fs::read_to_string(self.data_dir.join("master.key")).expect("master key file");
        let master = tessera_core::keys::MasterKey::from_base64(master.trim()).expect("master key");
        let db = self.data_dir.join("tessera.db");
        let backend = tessera_store::open(&db.to_string_lossy(), &Default::default()).await.expect("open the store");
        let records = backend
            .store()
            .key_list(Some(&tessera_core::TenantName::parse(tenant).expect("a tenant name")))
            .await
            .expect("key list");
        let newest = records.iter().max_by_key(|r| r.activates_at).expect("the tenant has a key");
        tessera_core::keys::SigningKey::from_record(&master, newest).expect("unseal the key")
    }
}

/// A compact JWS of `header` and `claims`, signed with `key` whatever the header says.
pub fn sign_as(key: &tessera_core::keys::SigningKey, header: &Value, claims: &Value) -> String {
    let input = signing_input(header, claims);
    let sig = key.sign_raw(input.as_bytes()).expect("sign");
    format!("{input}.{}", b64e(&sig))
}

/// RFC 4648 base32 (a TOTP secret as shown to people), decoded.
pub fn base32_decode(s: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut acc, mut out) = (0u32, 0u64, Vec::new());
    for c in s.bytes().filter(|c| *c != b'=') {
        acc = (acc << 5) | alphabet.iter().position(|a| *a == c).expect("base32") as u64;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
