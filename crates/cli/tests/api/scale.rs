//! Several nodes where the network is not kind: notifications that never arrive (the polling
//! fallback must bound propagation), NOTIFY as what makes propagation fast, and a node behind
//! a slow link to the database (its own network namespace, the delay on the veth or in the
//! test's forwarder). Each test works in its own schema, dropped at the end.

use crate::harness::*;
use crate::pg::{Schema, master_key, two_nodes_with};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const POSTGRES_ADDR: &str = "127.0.0.1:5432";

/// A TCP forwarder to PostgreSQL on a thread and runtime of its own (a test blocked in a CLI
/// call must never stall a node's database traffic). On the way back from the database it can
/// drop every NotificationResponse (node B's LISTEN stays connected and healthy, it just never
/// hears anything: lost notifications without a reconnect, whose wake-up would hide the loss)
/// and delay every byte by a settable time (a slow link, when the kernel has no netem).
struct PgForwarder {
    addr: SocketAddr,
    delay_us: Arc<AtomicU64>,
    /// Payloads (schemas) of the notifications dropped, and how many of each.
    dropped: Arc<Mutex<HashMap<String, u64>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PgForwarder {
    /// Listens on `bind` (port 0 for any). The connections that drop notifications must not
    /// negotiate TLS (`sslmode=disable`): the filter reads the plain protocol.
    fn start(bind: &str, drop_notifications: bool) -> PgForwarder {
        let delay_us = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(Mutex::new(HashMap::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (delay, lost, bind) = (delay_us.clone(), dropped.clone(), bind.to_string());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("forwarder runtime");
            rt.block_on(async move {
                let listener = TcpListener::bind(&bind).await.unwrap_or_else(|e| panic!("forwarder bind {bind}: {e}"));
                addr_tx.send(listener.local_addr().expect("forwarder address")).expect("send the address");
                let accept = async {
                    loop {
                        if let Ok((conn, _)) = listener.accept().await {
                            tokio::spawn(relay(conn, drop_notifications, delay.clone(), lost.clone()));
                        }
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            rt.shutdown_timeout(Duration::from_secs(1));
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).expect("the forwarder listens");
        PgForwarder { addr, delay_us, dropped, stop: Some(stop), thread: Some(thread) }
    }

    /// The database URL `url` (one of [`Schema`]'s), through this forwarder.
    fn url(&self, url: &str) -> String {
        assert!(url.contains(POSTGRES_ADDR), "{url} is not at {POSTGRES_ADDR}");
        url.replace(POSTGRES_ADDR, &self.addr.to_string())
    }

    fn set_delay(&self, d: Duration) {
        self.delay_us.store(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn dropped_for(&self, schema: &str) -> u64 {
        self.dropped.lock().expect("lock").get(schema).copied().unwrap_or(0)
    }
}

impl Drop for PgForwarder {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn relay(
    client: TcpStream,
    drop_notifications: bool,
    delay_us: Arc<AtomicU64>,
    dropped: Arc<Mutex<HashMap<String, u64>>>,
) {
    let Ok(server) = TcpStream::connect(POSTGRES_ADDR).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = tokio::io::copy(&mut client_rx, &mut server_tx);
    // Down: each chunk read is stamped and written no earlier than its stamp plus the delay,
    // in order (latency, not bandwidth).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending = Vec::new();
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let at = tokio::time::Instant::now() + Duration::from_micros(delay_us.load(Ordering::Relaxed));
            let out = if drop_notifications {
                pending.extend_from_slice(&buf[..n]);
                strip_notifications(&mut pending, &dropped)
            } else {
                buf[..n].to_vec()
            };
            if !out.is_empty() && tx.send((at, out)).is_err() {
                break;
            }
        }
    };
    let write = async move {
        while let Some((at, bytes)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if client_tx.write_all(&bytes).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = async { tokio::join!(read, write) } => {}
    }
}

/// Takes the whole backend messages (type byte, then a length that counts itself) off the
/// front of `pending` and returns them minus the NotificationResponses ('A': pid, channel,
/// payload), which are counted by payload.
fn strip_notifications(pending: &mut Vec<u8>, dropped: &Mutex<HashMap<String, u64>>) -> Vec<u8> {
    let mut out = Vec::with_capacity(pending.len());
    let mut i = 0;
    while pending.len() - i >= 5 {
        let len = u32::from_be_bytes(pending[i + 1..i + 5].try_into().expect("4 bytes")) as usize;
        let end = i + 1 + len;
        if end > pending.len() {
            break;
        }
        if pending[i] == b'A' {
            let mut fields = pending[i + 9..end].split(|b| *b == 0);
            let _channel = fields.next();
            let payload = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
            *dropped.lock().expect("lock").entry(payload).or_default() += 1;
        } else {
            out.extend_from_slice(&pending[i..end]);
        }
        i = end;
    }
    pending.drain(..i);
    out
}

/// The environment of one node of a deployment on `url`: one master key and one public URL
/// (the load balancer's) for all, as [`two_nodes_with`] gives.
fn node_env<'a>(url: &'a str, key: &'a str, more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env =
        vec![("TESSERA_DATABASE_URL", url), ("TESSERA_MASTER_KEY", key), ("TESSERA_PUBLIC_URL", "http://tessera.test")];
    env.extend_from_slice(more);
    env
}

/// Revokes `n` fresh client_credentials tokens at `a` and returns, for each, how long `b` went
/// on accepting it (introspection every 10 ms), asserting each is under `bound`. Between two,
/// a pause that grows by `spread` (modulo 1 s), so that the revocations fall at different
/// points of the poll's period rather than locking onto one.
async fn propagation(a: &TestServer, b: &TestServer, n: usize, bound: Duration, spread: u64) -> Vec<Duration> {
    let (id, secret) = a.create_client("default", "client_credentials", None);
    let auth = Auth::Basic(&id, &secret);
    let mut times = Vec::new();
    for i in 0..n {
        let token = a.cc_token("default", &id, &secret, None).await;
        let start = Instant::now();
        while !b.is_active("default", &token, auth).await {
            assert!(start.elapsed() < Duration::from_secs(10), "B never accepted A's token {i}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = a.revoke("default", &token, auth).await;
        assert_eq!(r.status, 200, "revoke at A: {}", r.text);
        let start = Instant::now();
        while b.is_active("default", &token, auth).await {
            let t = start.elapsed();
            assert!(
                t < bound,
                "revocation {i}: B still accepts the token after {t:?} (bound {bound:?}); so far {times:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(start.elapsed());
        tokio::time::sleep(Duration::from_millis(50 + (i as u64 + 1) * spread % 1000)).await;
    }
    times
}

fn summary(times: &[Duration]) -> String {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let all: Vec<String> = ms.iter().map(|m| format!("{m:.0}")).collect();
    format!("median {:.0} ms, max {:.0} ms (all, sorted: {} ms)", ms[ms.len() / 2], ms[ms.len() - 1], all.join(" "))
}

#[tokio::test]
async fn with_every_notification_lost_a_revocation_still_reaches_the_other_node_within_the_poll() {
    const POLL_MS: u64 = 1000;
    let schema = Schema::new("lostnotify");
    let fwd = PgForwarder::start("127.0.0.1:0", true);
    let key = master_key();
    let poll = POLL_MS.to_string();
    let more = [("TESSERA_SYNC_INTERVAL_MS", poll.as_str())];
    let a = TestServer::start_with_env(&node_env(&schema.url, &key, &more)).await;
    let b_url = format!("{}&sslmode=disable", fwd.url(&schema.url));
    let b = TestServer::start_with_env(&node_env(&b_url, &key, &more)).await;

    let bound = Duration::from_millis(POLL_MS) + Duration::from_secs(1);
    let times = propagation(&a, &b, 5, bound, 290).await;
    let lost = fwd.dropped_for(&schema.name);
    eprintln!(
        "notifications lost: {lost}; revocation at A refused at B after (poll {POLL_MS} ms): {}",
        summary(&times)
    );
    // Each revocation notified, and B heard none of it: it learnt by polling.
    assert!(lost >= times.len() as u64, "only {lost} notifications were dropped for {} revocations", times.len());
}

#[tokio::test]
async fn with_a_5_s_poll_notify_brings_a_revocation_to_the_other_node_well_within_the_poll() {
    let (_schema, a, b) = two_nodes_with("fastnotify", &[("TESSERA_SYNC_INTERVAL_MS", "5000")]).await;
    // Polling alone would take 2.5 s on average and less than 1.5 s only 30% of the time:
    // five revocations all under it is NOTIFY's doing (0.3^5 < 0.3% by chance).
    let times = propagation(&a, &b, 5, Duration::from_millis(1500), 0).await;
    eprintln!("revocation at A refused at B after (poll 5000 ms, NOTIFY on): {}", summary(&times));
}

// ---- a node behind a slow link ----

static NETNS_SEQ: AtomicU32 = AtomicU32::new(0);

/// A network namespace with a veth pair to the root namespace, a /30 of 10/8 of its own
/// (from the pid: tests run in processes of their own), removed on drop even after a panic.
struct Netns {
    ns: String,
    veth: String,
    root_ip: String,
    ns_ip: String,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program).args(args).output().map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}`: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

impl Netns {
    fn create() -> Result<Netns, String> {
        if effective_uid() != Some(0) {
            return Err("not running as root".into());
        }
        let n = NETNS_SEQ.fetch_add(1, Ordering::Relaxed);
        let id = (std::process::id().wrapping_mul(4).wrapping_add(n)) & 0x3f_ffff;
        let net = format!("10.{}.{}.{}", id >> 14, (id >> 6) & 0xff, (id & 0x3f) << 2);
        let base = net.rsplit_once('.').map(|(h, _)| h.to_string()).expect("dotted");
        let last: u32 = net.rsplit('.').next().and_then(|l| l.parse().ok()).expect("octet");
        let g = Netns {
            ns: format!("tsr-{id}"),
            veth: format!("tsr{id}a"),
            root_ip: format!("{base}.{}", last + 1),
            ns_ip: format!("{base}.{}", last + 2),
        };
        run("ip", &["netns", "add", &g.ns])?;
        let peer = format!("tsr{id}b");
        run("ip", &["link", "add", &g.veth, "type", "veth", "peer", "name", &peer])?;
        run("ip", &["link", "set", &peer, "netns", &g.ns])?;
        run("ip", &["addr", "add", &format!("{}/30", g.root_ip), "dev", &g.veth])?;
        run("ip", &["link", "set", &g.veth, "up"])?;
        let exec = ["netns", "exec", g.ns.as_str(), "ip"];
        run("ip", &[&exec[..], &["addr", "add", &format!("{}/30", g.ns_ip), "dev", &peer]].concat())?;
        run("ip", &[&exec[..], &["link", "set", &peer, "up"]].concat())?;
        run("ip", &[&exec[..], &["link", "set", "lo", "up"]].concat())?;
        Ok(g)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.ns]);
        let _ = run("ip", &["link", "del", &self.veth]);
    }
}

/// Where the link's delay is put: `tc netem` on the root side of the veth (every packet into
/// the namespace waits: the node's database answers and the test's HTTP requests alike), or,
/// on kernels built without netem, the forwarder (the database's answers only).
enum Delay<'a> {
    Netem(&'a str),
    Forwarder(&'a PgForwarder),
}

impl Delay<'_> {
    fn set(&self, d: Duration) {
        match self {
            Delay::Netem(dev) => {
                let ms = format!("{}ms", d.as_millis());
                run("tc", &["qdisc", "change", "dev", dev, "root", "netem", "delay", &ms]).expect("tc qdisc change");
            }
            Delay::Forwarder(f) => f.set_delay(d),
        }
    }
    /// Delayed round trips in one HTTP request from the test to the node.
    fn http_round_trips(&self) -> f64 {
        match self {
            Delay::Netem(_) => 1.0,
            Delay::Forwarder(_) => 0.0,
        }
    }
}

fn median_ms(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

/// Latencies at `s` of client_credentials issuance and of refresh rotation, `n` of each,
/// interleaved, added to `cc` and `refresh`; follows the refresh chain in `rt`.
#[allow(clippy::too_many_arguments)]
async fn latencies(
    s: &TestServer,
    id: &str,
    secret: &str,
    rt: &mut String,
    n: usize,
    cc: &mut Vec<Duration>,
    refresh: &mut Vec<Duration>,
) {
    for _ in 0..n {
        let t = Instant::now();
        let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(id, secret)).await;
        cc.push(t.elapsed());
        r.assert_ok("client_credentials at the slow node");
        let t = Instant::now();
        let r = s
            .token("default", &[("grant_type", "refresh_token"), ("refresh_token", rt)], Auth::Basic(id, secret))
            .await;
        refresh.push(t.elapsed());
        *rt = r.assert_ok("refresh at the slow node")["refresh_token"].as_str().expect("refresh_token").to_owned();
    }
}

#[tokio::test]
async fn a_node_behind_a_slow_database_link_serves_and_sees_revocations_within_the_poll() {
    const DELAY: Duration = Duration::from_millis(25);
    const SAMPLES: usize = 6;
    let netns = match Netns::create() {
        Ok(n) => n,
        Err(why) => {
            eprintln!(
                "SKIPPED scale::a_node_behind_a_slow_database_link_serves_and_sees_revocations_within_the_poll: cannot make a network namespace ({why})"
            );
            return;
        }
    };
    let schema = Schema::new("slowlink");
    let fwd = PgForwarder::start(&format!("{}:0", netns.root_ip), false);
    let delay = match run("tc", &["qdisc", "add", "dev", &netns.veth, "root", "netem", "delay", "0ms"]) {
        Ok(()) => Delay::Netem(&netns.veth),
        Err(why) => {
            eprintln!("no tc netem here ({why}): the forwarder delays the database's answers instead");
            Delay::Forwarder(&fwd)
        }
    };
    delay.set(DELAY);
    let key = master_key();
    let a = TestServer::start_with_env(&node_env(&schema.url, &key, &[])).await;
    let s_url = fwd.url(&schema.url);
    let started = Instant::now();
    let s = TestServer::start_under(
        &["ip", "netns", "exec", &netns.ns],
        &format!("{}:0", netns.ns_ip),
        &node_env(&s_url, &key, &[]),
    )
    .await;
    eprintln!("node in netns {} (database {}) ready {:?} after spawn", netns.ns, fwd.addr, started.elapsed());
    assert!(s.base.contains(&netns.ns_ip), "the slow node listens in its namespace: {}", s.base);

    a.create_user("default", "sam", "sam's long passphrase");
    let (id, secret) = a.create_client("default", "client_credentials,password,refresh_token", None);
    let t = Instant::now();
    let signed_in = loop {
        let r = s
            .token(
                "default",
                &[("grant_type", "password"), ("username", "sam"), ("password", "sam's long passphrase")],
                Auth::Basic(&id, &secret),
            )
            .await;
        if r.status == 200 || t.elapsed() > Duration::from_secs(5) {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut rt = signed_in.assert_ok("password sign-in at the slow node")["refresh_token"]
        .as_str()
        .expect("refresh_token")
        .to_owned();

    // With and without the delay by turns, so that a burst of load elsewhere on the machine
    // falls on both alike; the first requests of each turn are not counted.
    let (mut warm_cc, mut warm_refresh) = (Vec::new(), Vec::new());
    let (mut cc_slow, mut refresh_slow, mut cc_fast, mut refresh_fast) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        delay.set(DELAY);
        latencies(&s, &id, &secret, &mut rt, 1, &mut warm_cc, &mut warm_refresh).await;
        latencies(&s, &id, &secret, &mut rt, SAMPLES, &mut cc_slow, &mut refresh_slow).await;
        delay.set(Duration::ZERO);
        latencies(&s, &id, &secret, &mut rt, 1, &mut warm_cc, &mut warm_refresh).await;
        latencies(&s, &id, &secret, &mut rt, SAMPLES, &mut cc_fast, &mut refresh_fast).await;
    }
    delay.set(DELAY);
    let (cc_slow, refresh_slow) = (median_ms(&mut cc_slow), median_ms(&mut refresh_slow));
    let (cc_fast, refresh_fast) = (median_ms(&mut cc_fast), median_ms(&mut refresh_fast));

    let d = DELAY.as_secs_f64() * 1000.0;
    let (cc_rt, refresh_rt) = ((cc_slow - cc_fast) / d, (refresh_slow - refresh_fast) / d);
    let http = delay.http_round_trips();
    eprintln!(
        "median latency at the slow node, without / with {d:.0} ms delay: client_credentials {cc_fast:.1} / \
         {cc_slow:.1} ms ({cc_rt:.1} round trips), refresh {refresh_fast:.1} / {refresh_slow:.1} ms ({refresh_rt:.1} \
         round trips); of which HTTP {http:.0}, so database round trips: client_credentials {:.1}, refresh {:.1}",
        cc_rt - http,
        refresh_rt - http
    );
    assert!(cc_rt - http < 0.8, "client_credentials should not wait on the database: {cc_rt:.2} round trips");
    // A rotation is one transaction of four statements, each a round trip: BEGIN, SELECT ...
    // FOR UPDATE (the token, its family and its user), one statement that marks it used and
    // stores its successor, COMMIT. Nothing else waits on the database.
    let db = refresh_rt - http;
    assert!((3.0..5.0).contains(&db), "a refresh rotation should cost 4 database round trips: {db:.2}");

    let bound = Duration::from_millis(250) + Duration::from_secs(1);
    let times = propagation(&a, &s, 3, bound, 0).await;
    eprintln!("revocation at the normal node refused at the slow node after: {}", summary(&times));
}
