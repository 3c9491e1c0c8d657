//! Crash safety (issue 17): the real `tessera serve` under concurrent load (issuance, refresh
//! rotations, revocations, Tapis revocations, SFTPGo logouts) is killed with SIGKILL at a
//! random moment, started again on the same database, and checked: every refresh token whose
//! response reached the client is still live and works exactly once (its reuse is refused),
//! every rotated one stays dead, every acknowledged revocation and logout holds, nothing
//! acknowledged is lost, and SQLite's `PRAGMA integrity_check` is ok. On SQLite and on
//! PostgreSQL; on PostgreSQL with the node's database connections terminated under load
//! (`pg_terminate_backend`), which the node must survive without losing anything; and with
//! the PostgreSQL server itself (a cluster of the test's own) stopped, `fast` and `immediate`
//! by turns, and started again under load while the node runs on: meanwhile the node refuses
//! with 503 and nothing else, answers every request within 7 s, and serves again by itself
//! within 10 s of the database's return.
//!
//! A request cut by the crash, or refused by an outage, is "uncertain": the server may or may
//! not have committed it; the only rule for it is that the server answers it sanely
//! afterwards. A refusal other than 503 breaks the rules. Rounds are seeded from the clock;
//! the seed is printed, and `CRASH_SEED` replays it.

#[path = "../api/harness.rs"]
mod harness;
#[path = "../api/pg.rs"]
mod pg;

use harness::TestServer;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ROUNDS: usize = 50;
/// Refresh token families kept alive across rounds: two per load task, one of them spare.
const CHAINS: usize = 8;
const WORKERS: usize = 4;
const PW: &str = "crash-test-password";

/// xorshift64*: reproducible rounds from one printed seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn seeded(tag: &str) -> Rng {
        let seed = std::env::var("CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
        eprintln!("{tag}: CRASH_SEED={seed}");
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One node's address and the test's client, for the load tasks.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    id: String,
    secret: String,
    /// The slowest answer so far (ms, over every clone): a hang shows here.
    slowest: Arc<AtomicU64>,
}

/// An answer that reached the client, or `None` when the connection failed (crash).
type Answer = Option<(u16, Value)>;

impl Api {
    fn of(s: &TestServer, id: &str, secret: &str) -> Api {
        Api {
            http: s.http.clone(),
            base: s.base.clone(),
            id: id.into(),
            secret: secret.into(),
            slowest: Arc::default(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let started = Instant::now();
        let answer = async {
            let res = req.send().await.ok()?;
            let status = res.status().as_u16();
            let text = res.text().await.ok()?;
            Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
        }
        .await;
        self.slowest.fetch_max(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        answer
    }

    fn slowest(&self) -> Duration {
        Duration::from_millis(self.slowest.load(Ordering::Relaxed))
    }

    async fn form(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        let req = self.http.post(format!("{}{path}", self.base)).basic_auth(&self.id, Some(&self.secret)).form(form);
        self.send(req).await
    }

    async fn refresh(&self, token: &str) -> Answer {
        self.form("/oauth2/token", &[("grant_type", "refresh_token"), ("refresh_token", token)]).await
    }

    async fn password(&self) -> Answer {
        self.form("/oauth2/token", &[("grant_type", "password"), ("username", "alice"), ("password", PW)]).await
    }

    async fn client_token(&self) -> Answer {
        self.form("/oauth2/token", &[("grant_type", "client_credentials")]).await
    }

    async fn revoke(&self, token: &str) -> Answer {
        self.form("/oauth2/revoke", &[("token", token)]).await
    }

    async fn tapis_revoke(&self, token: &str) -> Answer {
        self.send(self.http.post(format!("{}/v3/oauth2/tokens/revoke", self.base)).json(&json!({ "token": token })))
            .await
    }

    /// An SFTPGo user token, then its logout.
    async fn sftpgo_token(&self) -> Answer {
        self.send(self.http.get(format!("{}/api/v2/user/token", self.base)).basic_auth("alice", Some(PW))).await
    }

    async fn sftpgo_logout(&self, token: &str) -> Answer {
        self.send(self.http.get(format!("{}/api/v2/user/logout", self.base)).bearer_auth(token)).await
    }

    /// Introspection's `active`, asserting the answer is a good one (the node is up). A 503
    /// (a pooled connection a terminated backend left dead fails once) is asked again, as
    /// its `Retry-After` says, a bounded number of times.
    async fn active(&self, token: &str) -> bool {
        for _ in 0..50 {
            match self.form("/oauth2/introspect", &[("token", token)]).await {
                Some((200, body)) => return body["active"].as_bool().expect("active is a boolean"),
                Some((503, _)) => tokio::time::sleep(Duration::from_millis(100)).await,
                other => panic!("introspection: {other:?}"),
            }
        }
        panic!("introspection stays unavailable");
    }
}

fn field(body: &Value, name: &str) -> String {
    body[name].as_str().unwrap_or_else(|| panic!("no {name} in {body}")).to_owned()
}

/// What the client was told, so what must hold after a crash.
#[derive(Default)]
struct Ledger {
    /// Refresh tokens received and not yet presented: each must work exactly once.
    heads: Vec<String>,
    /// Refresh tokens rotated with an answer received: dead for good.
    rotated: Vec<String>,
    /// Access tokens (or refresh tokens) whose revocation or logout was acknowledged.
    revoked: Vec<(String, &'static str)>,
    /// Client credentials access tokens issued and never revoked: still valid.
    live: Vec<String>,
    /// Tokens of requests cut by the crash (or refused by an outage): either state is fine.
    uncertain: Vec<String>,
    /// Acknowledged operations, by kind (for the report).
    acked: [usize; 6],
    /// Answers other than 200, by status.
    refusals: BTreeMap<u16, usize>,
    /// Requests that got no answer at all (the node died, or the client gave up waiting).
    cut: usize,
    broken: Vec<String>,
}

impl Ledger {
    fn merge(&mut self, other: Ledger) {
        self.heads.extend(other.heads);
        self.rotated.extend(other.rotated);
        self.revoked.extend(other.revoked);
        self.live.extend(other.live);
        self.uncertain.extend(other.uncertain);
        for (a, b) in self.acked.iter_mut().zip(other.acked) {
            *a += b;
        }
        for (status, n) in other.refusals {
            *self.refusals.entry(status).or_default() += n;
        }
        self.cut += other.cut;
        self.broken.extend(other.broken);
    }

    /// An answer other than 200 to a request that was good: the only honest one is a 503 (the
    /// store is unavailable, try again); a 500, or a 4xx for a live token, breaks a promise.
    fn refused(&mut self, op: usize, status: u16, body: &Value) {
        *self.refusals.entry(status).or_default() += 1;
        if status != 503 {
            self.broken.push(format!("a {} was refused: {status} {body}", KIND[op]));
        }
    }

    /// A request that got no answer: its token may or may not have been committed.
    fn unanswered(&mut self, token: String) {
        self.uncertain.push(token);
        self.cut += 1;
    }

    /// What was acknowledged, by kind, for the report.
    fn acknowledged(&self) -> String {
        let [rotate, issue, revoke, tapis, refresh, logout] = self.acked;
        format!(
            "{rotate} rotations, {issue} issuances, {revoke} revocations, {tapis} Tapis revocations, {refresh} \
             refresh revocations, {logout} SFTPGo logouts"
        )
    }

    /// Refusals by status, for the report.
    fn refusals(&self) -> String {
        let by_status: Vec<String> = self.refusals.iter().map(|(status, n)| format!("{n} x {status}")).collect();
        if by_status.is_empty() { "none".into() } else { by_status.join(", ") }
    }
}

const ROTATE: usize = 0;
const ISSUE: usize = 1;
const REVOKE: usize = 2;
const TAPIS_REVOKE: usize = 3;
const REVOKE_REFRESH: usize = 4;
const LOGOUT: usize = 5;
const KIND: [&str; 6] =
    ["refresh rotation", "issuance", "revocation", "Tapis revocation", "refresh token revocation", "SFTPGo logout"];

/// One load task: rotates its refresh chains, issues, revokes and logs out until `stop` or
/// the first request that gets no answer (the node died); a refusal (a 503: an outage; any
/// other status is recorded as broken) leaves its token uncertain and the task goes on.
async fn load(api: Api, mut heads: Vec<String>, mut rng: Rng, logout: bool, stop: Arc<AtomicBool>) -> Ledger {
    let mut l = Ledger::default();
    let mut logout = logout;
    while !stop.load(Ordering::Relaxed) {
        let op = if logout {
            LOGOUT
        } else {
            [ROTATE, ROTATE, ROTATE, ISSUE, REVOKE, TAPIS_REVOKE, REVOKE_REFRESH][rng.below(7) as usize]
        };
        match op {
            ROTATE if heads.is_empty() => continue,
            // A refresh token revocation takes a spare family, never a task's last: a task
            // rotates one family to the end, or the families whose tokens must work exactly
            // once after the crash would all be revoked within a few dozen operations.
            REVOKE_REFRESH if heads.len() < 2 => continue,
            ROTATE => {
                let i = rng.below(heads.len() as u64) as usize;
                let token = heads.swap_remove(i);
                match api.refresh(&token).await {
                    Some((200, body)) => {
                        l.rotated.push(token);
                        // Its access token is not `live`: it dies with its family (revoked
                        // refresh token, reuse), by design.
                        heads.push(field(&body, "refresh_token"));
                        l.acked[ROTATE] += 1;
                    }
                    Some((status, body)) => {
                        l.refused(ROTATE, status, &body);
                        l.uncertain.push(token);
                    }
                    None => {
                        l.unanswered(token);
                        break;
                    }
                }
            }
            REVOKE_REFRESH => {
                let token = heads.swap_remove(rng.below(heads.len() as u64) as usize);
                match api.revoke(&token).await {
                    Some((200, _)) => {
                        l.revoked.push((token, KIND[REVOKE_REFRESH]));
                        l.acked[REVOKE_REFRESH] += 1;
                    }
                    Some((status, body)) => {
                        l.refused(REVOKE_REFRESH, status, &body);
                        l.uncertain.push(token);
                    }
                    None => {
                        l.unanswered(token);
                        break;
                    }
                }
            }
            _ => {
                let issued = if op == LOGOUT { api.sftpgo_token().await } else { api.client_token().await };
                let body = match issued {
                    Some((200, body)) => body,
                    Some((status, body)) => {
                        l.refused(ISSUE, status, &body);
                        continue;
                    }
                    None => {
                        l.cut += 1;
                        break;
                    }
                };
                let token = field(&body, "access_token");
                l.acked[ISSUE] += 1;
                let answer = match op {
                    ISSUE => {
                        l.live.push(token);
                        continue;
                    }
                    REVOKE => api.revoke(&token).await,
                    TAPIS_REVOKE => api.tapis_revoke(&token).await,
                    _ => {
                        logout = false;
                        api.sftpgo_logout(&token).await
                    }
                };
                match answer {
                    Some((200, _)) => {
                        l.revoked.push((token, KIND[op]));
                        l.acked[op] += 1;
                    }
                    Some((status, body)) => {
                        l.refused(op, status, &body);
                        l.uncertain.push(token);
                    }
                    None => {
                        l.unanswered(token);
                        break;
                    }
                }
            }
        }
    }
    l.heads = heads;
    l
}

/// Runs the load on `WORKERS` tasks (the chains shared out among them) until `interrupt`
/// returns, then stops them and merges what they were told.
async fn under_load<F: std::future::Future<Output = ()>>(
    api: &Api,
    heads: Vec<String>,
    rng: &mut Rng,
    logout: bool,
    interrupt: F,
) -> Ledger {
    let stop = Arc::new(AtomicBool::new(false));
    let mut shares: Vec<Vec<String>> = vec![Vec::new(); WORKERS];
    for (i, h) in heads.into_iter().enumerate() {
        shares[i % WORKERS].push(h);
    }
    let tasks: Vec<_> = shares
        .into_iter()
        .enumerate()
        .map(|(i, share)| {
            let task_rng = Rng(rng.next() | 1);
            tokio::spawn(load(api.clone(), share, task_rng, logout && i == 0, stop.clone()))
        })
        .collect();
    interrupt.await;
    stop.store(true, Ordering::Relaxed);
    let mut ledger = Ledger::default();
    for t in tasks {
        ledger.merge(t.await.expect("a load task"));
    }
    ledger
}

/// Checks on a node just back: everything acknowledged holds.
async fn check(api: &Api, l: &Ledger, what: &str) {
    assert!(l.broken.is_empty(), "{what}: under load: {:#?}", l.broken);
    for h in &l.heads {
        assert!(api.active(h).await, "{what}: an acknowledged refresh token was lost");
    }
    for r in &l.rotated {
        assert!(!api.active(r).await, "{what}: a rotated refresh token is live again");
    }
    for (t, how) in &l.revoked {
        assert!(!api.active(t).await, "{what}: an acknowledged {how} was lost");
    }
    for t in l.live.iter().rev().take(8) {
        assert!(api.active(t).await, "{what}: an issued access token no longer verifies");
    }
    for t in &l.uncertain {
        // Committed or not, the node answers it.
        api.active(t).await;
    }
}

/// The ledger's check, then every surviving family's head works exactly once.
async fn checked_to_the_end(api: &Api, l: &Ledger, what: &str) {
    check(api, l, what).await;
    for h in &l.heads {
        works_exactly_once(api, h, what).await;
    }
}

/// A refresh token received works once, and then its reuse is refused (which ends its
/// family: the token it was exchanged for dies with it).
async fn works_exactly_once(api: &Api, token: &str, what: &str) {
    let (status, body) = api.refresh(token).await.expect("the node answers");
    assert_eq!(status, 200, "{what}: an acknowledged refresh token does not work: {body}");
    let next = field(&body, "refresh_token");
    let (status, body) = api.refresh(token).await.expect("the node answers");
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{what}: reuse accepted: {body}");
    assert!(!api.active(&next).await, "{what}: the family survived a reuse");
}

/// Tops the chains up with password grants (a 503, a dead pooled connection of the outage
/// test, is asked again a bounded number of times).
async fn new_chains(api: &Api, heads: &mut Vec<String>) {
    for _ in 0..50 {
        if heads.len() >= CHAINS {
            return;
        }
        match api.password().await.expect("the node answers") {
            (200, body) => heads.push(field(&body, "refresh_token")),
            (503, _) => tokio::time::sleep(Duration::from_millis(100)).await,
            (status, body) => panic!("password grant: {status} {body}"),
        }
    }
    assert!(heads.len() >= CHAINS, "password grants stay unavailable");
}

/// The number `sql` answers (one row, one column).
fn psql_count(sql: &str) -> usize {
    let out = std::process::Command::new("psql").args([pg::PG, "-At", "-c", sql]).output().expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a count")
}

/// SQLite's own check of the file a killed node left (with its WAL, as the next open sees it).
async fn integrity_check(db: &std::path::Path) {
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.expect("open the database");
    let rows: Vec<String> =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.expect("integrity_check");
    assert_eq!(rows, ["ok"], "integrity_check of {}", db.display());
    conn.close().await.expect("close the database");
}

/// `ROUNDS` crashes of `s` under load. `sqlite` names its database file.
async fn crash_rounds(mut s: TestServer, tag: &str, sqlite: Option<std::path::PathBuf>) {
    let (id, secret) = s.create_client("default", "password,refresh_token,client_credentials", None);
    s.create_user("default", "alice", PW);
    let mut rng = Rng::seeded(tag);
    let mut heads = Vec::new();
    let mut total = Ledger::default();
    let (mut uncertain, mut exactly_once) = (0, 0);
    for round in 0..ROUNDS {
        let what = format!("{tag} round {round}");
        let api = Api::of(&s, &id, &secret);
        new_chains(&api, &mut heads).await;
        let delay = Duration::from_millis(20 + rng.below(200));
        let logout = round % 5 == 0;
        // Killed while the load tasks run: requests are in flight.
        let l = under_load(&api, std::mem::take(&mut heads), &mut rng, logout, async {
            tokio::time::sleep(delay).await;
            s.kill();
        })
        .await;
        if let Some(db) = &sqlite {
            integrity_check(db).await;
        }
        s.restart().await;
        let api = Api::of(&s, &id, &secret);
        check(&api, &l, &what).await;
        uncertain += l.uncertain.len();
        heads = l.heads.clone();
        // One family a round (all at the end) ends with the exactly-once check.
        let ending = if round + 1 == ROUNDS { heads.len() } else { 1.min(heads.len()) };
        exactly_once += ending;
        for h in heads.drain(..ending) {
            works_exactly_once(&api, &h, &what).await;
        }
        let Ledger { acked, .. } = l;
        for (a, b) in total.acked.iter_mut().zip(acked) {
            *a += b;
        }
    }
    eprintln!(
        "{tag}: {ROUNDS} kill -9 rounds; acknowledged: {}; {uncertain} requests cut by the crash; {exactly_once} \
         families checked to work exactly once",
        total.acknowledged()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_survives_kill_9_under_load() {
    let s = TestServer::start().await;
    let db = s.data_dir.join("tessera.db");
    crash_rounds(s, "sqlite", Some(db)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_survives_kill_9_under_load() {
    let schema = pg::Schema::new("crash");
    let key = pg::master_key();
    let s = TestServer::start_with_env(&[("TESSERA_DATABASE_URL", &schema.url), ("TESSERA_MASTER_KEY", &key)]).await;
    crash_rounds(s, "postgres", None).await;
}

/// The node's PostgreSQL connections (found by their application name) are terminated again
/// and again under load: requests may fail meanwhile (503), but nothing acknowledged is lost,
/// and the node recovers by itself, before and after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_terminated_under_load() {
    let schema = pg::Schema::new("crashconn");
    let app = schema.name.clone();
    let url = format!("{}&application_name={app}", schema.url);
    let key = pg::master_key();
    let mut s = TestServer::start_with_env(&[("TESSERA_DATABASE_URL", &url), ("TESSERA_MASTER_KEY", &key)]).await;
    let (id, secret) = s.create_client("default", "password,refresh_token,client_credentials", None);
    s.create_user("default", "alice", PW);
    let mut rng = Rng::seeded("postgres connections");
    let api = Api::of(&s, &id, &secret);
    let mut heads = Vec::new();
    new_chains(&api, &mut heads).await;
    let terminate = format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{app}' \
         AND pid <> pg_backend_pid()"
    );
    let terminated = Arc::new(AtomicUsize::new(0));
    let mut l = Ledger::default();
    for wave in 0..3 {
        let (sql, count) = (terminate.clone(), terminated.clone());
        let ledger = under_load(&api, std::mem::take(&mut heads), &mut rng, wave == 0, async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                let sql = sql.clone();
                let n = tokio::task::spawn_blocking(move || psql_count(&sql)).await.expect("psql");
                count.fetch_add(n, Ordering::Relaxed);
            }
        })
        .await;
        // The node recovers by itself: requests that read the store succeed again, many in a
        // row (bounded retries, no timing claim).
        let mut in_a_row = 0;
        for _ in 0..200 {
            match api.form("/oauth2/introspect", &[("token", "tsr_probe")]).await {
                Some((200, _)) => in_a_row += 1,
                _ => {
                    in_a_row = 0;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            if in_a_row == 20 {
                break;
            }
        }
        assert_eq!(in_a_row, 20, "the node did not recover from terminated connections");
        check(&api, &ledger, &format!("wave {wave}")).await;
        heads = ledger.heads.clone();
        new_chains(&api, &mut heads).await;
        l.merge(ledger);
    }
    assert!(l.acked.iter().sum::<usize>() > 0, "nothing was acknowledged under load");
    let terminated = terminated.load(Ordering::Relaxed);
    assert!(terminated > 0, "no connection of the node was terminated");
    s.restart().await;
    let api = Api::of(&s, &id, &secret);
    l.heads = heads;
    checked_to_the_end(&api, &l, "after a restart").await;
    eprintln!(
        "postgres connections: {terminated} connections of the node terminated (3 waves of 5); acknowledged: {}; {} \
         requests refused or cut meanwhile; {} families checked to work exactly once",
        l.acknowledged(),
        l.uncertain.len(),
        l.heads.len()
    );
}

/// PostgreSQL 15's programs (Debian's layout).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// PostgreSQL's programs take paths as arguments; ours are made by `unique_dir`, UTF-8.
fn utf8(p: &std::path::Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// A PostgreSQL server of the test's own, to stop and start under load without disturbing the
/// machine's shared one: a cluster made by `initdb` in a temp dir owned by `postgres` (the
/// tests run as root, which PostgreSQL refuses to run as), trust authentication, 127.0.0.1 on
/// a free port, its socket in the dir. Stopped (immediate) and removed on drop, on failure too.
struct Cluster {
    root: PathBuf,
    data: PathBuf,
    port: u16,
}

impl Cluster {
    /// Makes the cluster, starts it and creates the database `tessera` (blocking).
    fn start() -> Cluster {
        let root = harness::unique_dir("pg");
        let chown = Command::new("chown").arg("postgres:postgres").arg(&root).status().expect("chown");
        assert!(chown.success(), "chown {} to postgres", root.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().unwrap().port();
        // From here on, dropping the guard cleans up whatever was made.
        let cluster = Cluster { data: root.join("data"), root, port };
        let data = utf8(&cluster.data);
        cluster.run("initdb", &["-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        let conf = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n",
            utf8(&cluster.root)
        );
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        file.write_all(conf.as_bytes()).expect("write postgresql.conf");
        cluster.up();
        let admin = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let out = Command::new("psql").args([&admin, "-q", "-c", "CREATE DATABASE tessera"]).output().expect("psql");
        assert!(out.status.success(), "CREATE DATABASE: {}", String::from_utf8_lossy(&out.stderr));
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/tessera", self.port)
    }

    /// Runs one of PostgreSQL's programs as `postgres`; its output, or a panic with it.
    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/{program}")])
            .args(args)
            .current_dir(&self.root)
            .output()
            .expect("runuser");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{program} {args:?}: {text}");
        text
    }

    /// `pg_ctl start`, returning once the server accepts connections.
    fn up(&self) {
        let log = self.root.join("postgres.log");
        self.run("pg_ctl", &["start", "-w", "-t", "60", "-D", utf8(&self.data), "-l", utf8(&log)]);
    }

    /// `pg_ctl stop` in `mode` (`fast`: sessions ended, a checkpoint; `immediate`: a crash,
    /// WAL replayed at the next start), returning once the server is gone.
    fn down(&self, mode: &str) {
        self.run("pg_ctl", &["stop", "-w", "-t", "60", "-m", mode, "-D", utf8(&self.data)]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", &format!("{PG_BIN}/pg_ctl"), "stop", "-w", "-m", "immediate", "-D"])
            .arg(&self.data)
            .current_dir(&self.root)
            .output();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.root.join("postgres.log")).unwrap_or_default();
            eprintln!("---- postgres log ({}) ----\n{log}", self.root.display());
        }
        if std::env::var_os("TESSERA_TEST_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

const RESTARTS: usize = 4;
/// The longest any request may wait for its answer, the database down or not.
const ANSWER_WITHIN: Duration = Duration::from_secs(7);
/// How soon after the database is back the node must serve again, by itself.
const RECOVER_WITHIN: Duration = Duration::from_secs(10);

/// How long after now the node serves store reads again: the time to the first of 10 good
/// introspections of `token` (a live refresh token, so a read of the store) in a row, or
/// `None` when that has not happened within `RECOVER_WITHIN`.
async fn recovery(api: &Api, token: &str) -> Option<Duration> {
    let started = Instant::now();
    let mut streak: Option<Duration> = None;
    let mut in_a_row = 0;
    while started.elapsed() < RECOVER_WITHIN {
        match api.form("/oauth2/introspect", &[("token", token)]).await {
            Some((200, body)) => {
                assert_eq!(body["active"], true, "the probe's refresh token was lost");
                streak.get_or_insert(started.elapsed());
                in_a_row += 1;
                if in_a_row == 10 {
                    return streak;
                }
            }
            _ => {
                (streak, in_a_row) = (None, 0);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
    }
    None
}

/// The node's PostgreSQL server (its own, see `Cluster`) is stopped, `fast` and `immediate`
/// by turns, and started again after a pause (short, but once longer than the node waits for
/// a connection), under load, while the node runs on: in the meantime it refuses with 503 and
/// nothing else, every request is answered within 7 s, the node serves again by itself within
/// 10 s of the database's return, and nothing acknowledged is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_restarted_under_load() {
    let cluster = Arc::new(Cluster::start());
    let key = pg::master_key();
    let s = TestServer::start_with_env(&[("TESSERA_DATABASE_URL", &cluster.url()), ("TESSERA_MASTER_KEY", &key)]).await;
    let (id, secret) = s.create_client("default", "password,refresh_token,client_credentials", None);
    s.create_user("default", "alice", PW);
    let mut rng = Rng::seeded("postgres restarts");
    let api = Api::of(&s, &id, &secret);
    // The recovery probe's own refresh token, never rotated.
    let (status, body) = api.password().await.expect("the node answers");
    assert_eq!(status, 200, "password grant: {body}");
    let probe = field(&body, "refresh_token");
    let mut heads = Vec::new();
    let mut l = Ledger::default();
    let mut recoveries = Vec::new();
    for restart in 0..RESTARTS {
        new_chains(&api, &mut heads).await;
        let mode = ["fast", "immediate"][restart % 2];
        // The last pause outlasts the node's wait for a connection (5 s, the statement
        // timeout's default): requests are then refused while the database is down, not only
        // held until it is back or failed on the connections it cut.
        let pause = if restart + 1 == RESTARTS { 5_500 + rng.below(1_000) } else { 100 + rng.below(900) };
        let (before, after) = (100 + rng.below(300), 200 + rng.below(300));
        let mut down = Duration::ZERO;
        let mut recovered = None;
        let ledger = under_load(&api, std::mem::take(&mut heads), &mut rng, restart == 0, async {
            tokio::time::sleep(Duration::from_millis(before)).await;
            let stopping = Instant::now();
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || c.down(mode)).await.expect("pg_ctl stop");
            tokio::time::sleep(Duration::from_millis(pause)).await;
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || c.up()).await.expect("pg_ctl start");
            down = stopping.elapsed();
            recovered = recovery(&api, &probe).await;
            // Work acknowledged by the node after the database came back, for the check.
            tokio::time::sleep(Duration::from_millis(after)).await;
        })
        .await;
        let what = format!("restart {restart} ({mode})");
        eprintln!(
            "postgres restarts: {what}: down {} ms (stop, {pause} ms pause, start); node serving again {} after \
             the start; refusals: {}; acknowledged {} rotations, {} issuances; {} families live; slowest answer so \
             far {} ms",
            down.as_millis(),
            recovered.map_or("not".into(), |d| format!("{} ms", d.as_millis())),
            ledger.refusals(),
            ledger.acked[ROTATE],
            ledger.acked[ISSUE],
            ledger.heads.len(),
            api.slowest().as_millis()
        );
        let recovered = recovered.unwrap_or_else(|| panic!("{what}: the node did not recover within 10 s"));
        assert_eq!(ledger.cut, 0, "{what}: requests got no answer (within the client's 20 s)");
        assert!(api.slowest() < ANSWER_WITHIN, "{what}: an answer took {} ms", api.slowest().as_millis());
        // The node never restarted: everything acknowledged holds on the node that said so.
        check(&api, &ledger, &what).await;
        recoveries.push(recovered.as_millis());
        heads = ledger.heads.clone();
        l.merge(ledger);
    }
    // And still after all of them (an immediate stop loses nothing committed); the probe's
    // token, received before the first restart, too.
    l.heads = heads;
    l.heads.push(probe);
    checked_to_the_end(&api, &l, "after the restarts").await;
    eprintln!(
        "postgres restarts: {RESTARTS} restarts (fast, immediate by turns); recovery ms {recoveries:?}; refusals: \
         {}; slowest answer {} ms; acknowledged: {}; {} tokens left uncertain; {} families checked to work exactly \
         once",
        l.refusals(),
        api.slowest().as_millis(),
        l.acknowledged(),
        l.uncertain.len(),
        l.heads.len()
    );
    assert!(api.slowest() < ANSWER_WITHIN, "an answer took {} ms", api.slowest().as_millis());
    assert!(l.refusals.keys().all(|status| *status == 503), "refusals other than 503: {}", l.refusals());
    assert!(l.refusals.get(&503).is_some_and(|n| *n > 0), "the node never saw the database down");
    assert!(l.acked[ROTATE] > 0 && l.acked[ISSUE] > 0, "nothing was acknowledged under load");
}
