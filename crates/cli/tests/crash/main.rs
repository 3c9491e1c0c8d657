//! Crash safety (issue 17): the real `tessera serve` under concurrent load (issuance, refresh
//! rotations, revocations, Tapis revocations, SFTPGo logouts) is killed with SIGKILL at a
//! random moment, started again on the same database, and checked: every refresh token whose
//! response reached the client is still live and works exactly once (its reuse is refused),
//! every rotated one stays dead, every acknowledged revocation and logout holds, nothing
//! acknowledged is lost, and SQLite's `PRAGMA integrity_check` is ok. On SQLite and on
//! PostgreSQL; and on PostgreSQL with the node's database connections terminated under load
//! (`pg_terminate_backend`), which the node must survive without losing anything.
//!
//! A request cut by the crash is "uncertain": the server may or may not have committed it;
//! the only rule for it is that the server answers it sanely afterwards. Rounds are seeded
//! from the clock; the seed is printed, and `CRASH_SEED` replays it.

#[path = "../api/harness.rs"]
mod harness;
#[path = "../api/pg.rs"]
mod pg;

use harness::TestServer;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

const ROUNDS: usize = 50;
/// Refresh token families kept alive across rounds.
const CHAINS: usize = 4;
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
}

/// An answer that reached the client, or `None` when the connection failed (crash).
type Answer = Option<(u16, Value)>;

impl Api {
    fn of(s: &TestServer, id: &str, secret: &str) -> Api {
        Api { http: s.http.clone(), base: s.base.clone(), id: id.into(), secret: secret.into() }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.ok()?;
        let status = res.status().as_u16();
        let text = res.text().await.ok()?;
        Some((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
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
        self.broken.extend(other.broken);
    }
}

const ROTATE: usize = 0;
const ISSUE: usize = 1;
const REVOKE: usize = 2;
const TAPIS_REVOKE: usize = 3;
const REVOKE_REFRESH: usize = 4;
const LOGOUT: usize = 5;

/// One load task: rotates its refresh chains, issues, revokes and logs out until `stop` or
/// the first request that gets no answer (the node died); a 5xx (an outage) leaves its
/// token uncertain and the task goes on.
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
            ROTATE | REVOKE_REFRESH if heads.is_empty() => continue,
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
                    Some((status, body)) if status < 500 => {
                        l.broken.push(format!("a live refresh token was refused: {status} {body}"));
                    }
                    answer => {
                        l.uncertain.push(token);
                        if answer.is_none() {
                            break;
                        }
                    }
                }
            }
            REVOKE_REFRESH => {
                let token = heads.swap_remove(rng.below(heads.len() as u64) as usize);
                match api.revoke(&token).await {
                    Some((200, _)) => {
                        l.revoked.push((token, "refresh token revocation"));
                        l.acked[REVOKE_REFRESH] += 1;
                    }
                    answer => {
                        l.uncertain.push(token);
                        if answer.is_none() {
                            break;
                        }
                    }
                }
            }
            _ => {
                let issued = if op == LOGOUT { api.sftpgo_token().await } else { api.client_token().await };
                let body = match issued {
                    Some((200, body)) => body,
                    Some(_) => continue,
                    None => break,
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
                        l.revoked.push((token, ["", "", "revocation", "Tapis revocation", "", "SFTPGo logout"][op]));
                        l.acked[op] += 1;
                    }
                    Some((status, body)) if status < 500 => l.broken.push(format!("op {op} refused: {status} {body}")),
                    answer => {
                        l.uncertain.push(token);
                        if answer.is_none() {
                            break;
                        }
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
    assert!(l.broken.is_empty(), "{what}: while the node was up: {:#?}", l.broken);
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
    let mut uncertain = 0;
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
        for h in heads.drain(..ending) {
            works_exactly_once(&api, &h, &what).await;
        }
        let Ledger { acked, .. } = l;
        for (a, b) in total.acked.iter_mut().zip(acked) {
            *a += b;
        }
    }
    eprintln!(
        "{tag}: {ROUNDS} kill -9 rounds; acknowledged: {} rotations, {} issuances, {} revocations, {} Tapis \
         revocations, {} refresh revocations, {} SFTPGo logouts; {uncertain} requests cut by the crash",
        total.acked[ROTATE],
        total.acked[ISSUE],
        total.acked[REVOKE],
        total.acked[TAPIS_REVOKE],
        total.acked[REVOKE_REFRESH],
        total.acked[LOGOUT]
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
    check(&api, &l, "after a restart").await;
    for h in &l.heads {
        works_exactly_once(&api, h, "after a restart").await;
    }
    eprintln!(
        "postgres connections: {terminated} connections of the node terminated (3 waves of 5); acknowledged: {} \
         rotations, {} issuances, {} revocations, {} Tapis revocations, {} refresh revocations, {} SFTPGo logouts; \
         {} requests refused or cut meanwhile",
        l.acked[ROTATE],
        l.acked[ISSUE],
        l.acked[REVOKE],
        l.acked[TAPIS_REVOKE],
        l.acked[REVOKE_REFRESH],
        l.acked[LOGOUT],
        l.uncertain.len()
    );
}
