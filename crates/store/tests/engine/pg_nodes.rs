//! Several nodes on one PostgreSQL database: each engine has its own pool, as separate
//! `tessera serve` processes would. Races between nodes, propagation (LISTEN/NOTIFY and the
//! sync cursor), and outages.

use crate::env::{Env, Kind, Relay, pg_base_url, with_schema};
use crate::{device_setup, password, poll, refresh, settings, setup};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_core::authority::Actor;
use tessera_core::authority::Authority;
use tessera_core::principal::Profile;
use tessera_core::secret::Secret;
use tessera_core::store::{Revocation, StoreError};
use tessera_core::token::{ClaimSet, Invalid};
use tessera_core::{ErrorKind, Settings, TenantName, Username};
use tessera_store::{Backend, PgSettings};

fn kid_of(auth: &Authority, token: &str) -> String {
    auth.decode_any(token).unwrap().0.kid.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_selects_the_backend_by_target() {
    let env = Env::new(Kind::Pg, "select").await;
    let pg = env.backend().await;
    assert_eq!((pg.name(), pg.is_shared()), ("postgres", true));
    let dir = std::env::temp_dir().join(format!("tessera-select-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for target in [dir.join("a.db").display().to_string(), format!("sqlite://{}", dir.join("b.db").display())] {
        let b = tessera_store::open(&target, &PgSettings::default()).await.unwrap();
        assert_eq!((b.name(), b.is_shared()), ("sqlite", false));
        assert!(b.listen().is_none());
    }
    assert!(dir.join("b.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_presentations_at_two_nodes_succeed_exactly_once() {
    let env = Env::new(Kind::Pg, "race100").await;
    let a = Arc::new(env.engine(settings()).await.unwrap());
    let client = setup(&a).await;
    let b = Arc::new(env.engine(settings()).await.unwrap());
    let rt = a.token("t", &client, password()).await.unwrap().refresh_token.unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (client, rt) = (client.clone(), rt.clone());
        tasks.push(tokio::spawn(async move { node.token("t", &client, refresh(&rt)).await }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(issued) => ok.push(issued),
            Err(e) => assert_eq!(e.kind, ErrorKind::InvalidGrant, "{e}"),
        }
    }
    assert_eq!(ok.len(), 1, "exactly one of 100 presentations wins");
    // The others were reuse: the family is dead at both nodes, with the winner's tokens.
    a.sync().await.unwrap();
    b.sync().await.unwrap();
    let successor = ok[0].refresh_token.clone().unwrap();
    for node in [&a, &b] {
        assert_eq!(node.token("t", &client, refresh(&successor)).await.unwrap_err().kind, ErrorKind::InvalidGrant);
        assert_eq!(node.verify_access("t", &ok[0].access_token).unwrap_err(), Invalid::Revoked);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_at_one_node_is_refused_by_the_other_within_a_second() {
    let env = Env::new(Kind::Pg, "notify").await;
    let a = env.engine(settings()).await.unwrap();
    let client = setup(&a).await;
    let (b, wake) = env.node(settings()).await;
    // The listener says so once it is connected (anything earlier is picked up by a sync).
    tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("listener connected");
    b.sync().await.unwrap();
    let issued = a.token("t", &client, password()).await.unwrap();
    let claims = b.verify_access("t", &issued.access_token).unwrap();
    let started = Instant::now();
    a.revoke_access(&claims).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), wake.notified()).await.expect("notified within 1 s");
    b.sync().await.unwrap();
    let took = started.elapsed();
    assert_eq!(b.verify_access("t", &issued.access_token).unwrap_err(), Invalid::Revoked);
    assert!(took < Duration::from_secs(1), "propagation took {took:?}");
    eprintln!("revocation propagated to the other node in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_at_one_node_is_published_and_used_by_the_other() {
    let env = Env::new(Kind::Pg, "keys").await;
    let s = Settings { access_ttl: 100, key_prepublish: 30, ..settings() };
    let a = env.engine(s.clone()).await.unwrap();
    let client = setup(&a).await;
    let b = env.engine(s).await.unwrap();
    let new_kid = a.rotate_key(&Actor::Operator, "t").await.unwrap().kid;
    b.sync().await.unwrap();
    assert_eq!(a.jwks("t").unwrap(), b.jwks("t").unwrap(), "both nodes publish the same keys");
    assert_eq!(b.jwks("t").unwrap()["keys"].as_array().unwrap().len(), 2);
    let before = b.token("t", &client, password()).await.unwrap().access_token;
    assert_ne!(kid_of(&b, &before), new_kid, "not signing during pre-publication");
    env.clock.advance(30);
    let after = b.token("t", &client, password()).await.unwrap().access_token;
    assert_eq!(kid_of(&b, &after), new_kid, "signs after pre-publication on the other node");
    assert!(a.verify_access("t", &after).is_ok());
    assert!(b.verify_access("t", &before).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_code_is_exchanged_once_across_nodes() {
    let env = Env::new(Kind::Pg, "device").await;
    let s = Settings { device_interval: 1, ..settings() };
    let a = Arc::new(env.engine(s.clone()).await.unwrap());
    let client = device_setup(&a).await;
    let b = Arc::new(env.engine(s).await.unwrap());
    let d = a.device_authorize("t", &client, None, ClaimSet::Standard, None).await.unwrap();
    b.device_decide("t", &d.user_code, "alice", true).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (client, code) = (client.clone(), d.device_code.clone());
        tasks.push(tokio::spawn(async move { node.token("t", &client, poll(&code)).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.kind, ErrorKind::InvalidGrant, "{e}"),
        }
    }
    assert_eq!(ok, 1, "an approved device code yields tokens once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_totp_step_is_accepted_once_across_nodes() {
    let env = Env::new(Kind::Pg, "totp").await;
    let a = env.engine(settings()).await.unwrap();
    a.create_tenant(&Actor::Operator, "t", tessera_core::keys::Alg::EdDSA, None, None, None, vec![]).await.unwrap();
    a.create_user(&Actor::Operator, "t", "alice", Secret::new("correct horse battery"), vec![], Profile::default())
        .await
        .unwrap();
    let nodes = [env.backend().await.store(), env.backend().await.store()];
    let (t, alice) = (TenantName::parse("t").unwrap(), Username::parse("alice").unwrap());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (store, t, alice) = (nodes[i % 2].clone(), t.clone(), alice.clone());
        tasks.push(tokio::spawn(async move { store.user_totp_accept_step(&t, &alice, 59_000_000).await }));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap().unwrap() as usize;
    }
    assert_eq!(accepted, 1, "one code, one use");
    let store = &nodes[0];
    assert!(!store.user_totp_accept_step(&t, &alice, 58_999_999).await.unwrap(), "older steps are refused");
    assert!(store.user_totp_accept_step(&t, &alice, 59_000_001).await.unwrap());
    assert!(store.recovery_codes_set(&t, &alice, &["h1".into(), "h2".into()]).await.is_ok());
    assert!(store.recovery_code_use(&t, &alice, "h1", 1).await.unwrap());
    assert!(!nodes[1].recovery_code_use(&t, &alice, "h1", 2).await.unwrap(), "used once");
}

/// Revocation sequence numbers from concurrent writers must become visible in order: a
/// follower that moves its cursor past number n must never see a number below n later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_never_skips_revocations_written_concurrently_by_other_nodes() {
    let env = Env::new(Kind::Pg, "cursor").await;
    let writers = [env.backend().await.store(), env.backend().await.store()];
    let follower = env.backend().await.store();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0i64, HashSet::new());
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                // Small pages: the reader pages through what it missed, as a node does.
                let page = follower.revocations_since(cursor, 7).await.unwrap();
                let short = page.len() < 7;
                for (seq, r) in page {
                    assert!(seq > cursor);
                    cursor = seq;
                    seen.insert(r.jti);
                }
                if finished && short {
                    return seen;
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = writers[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            let r = Revocation {
                tenant: tessera_core::TenantName::parse("t").unwrap(),
                jti: format!("jti-{i}"),
                expires_at: i64::MAX,
            };
            store.revocation_insert(&r).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert_eq!(seen.len(), 200, "every revocation reaches the follower");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_unavailable_within_the_timeout() {
    let settings = PgSettings { pool_size: 2, timeout: Duration::from_secs(1) };
    let started = Instant::now();
    let err = tessera_store::open("postgres://postgres@127.0.0.1:1/test", &settings).await.err().expect("no database");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// The database stops answering, then goes away, under a running node: requests that need it
/// fail with `unavailable` within the timeout, already-issued tokens still verify, and the
/// node recovers by itself (queries and notifications) when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_survives_an_outage_and_recovers_by_itself() {
    let env = Env::new(Kind::Pg, "outage").await;
    let relay = Relay::start(Relay::authority(&pg_base_url())).await;
    let url = with_schema(&relay.url(&pg_base_url()), env.schema.as_deref().unwrap());
    let timeout = Duration::from_secs(1);
    let backend = tessera_store::open(&url, &PgSettings { pool_size: 4, timeout }).await.unwrap();
    assert!(matches!(backend, Backend::Postgres(_)));
    let wake = backend.listen().unwrap();
    let a = env.engine_on(backend.store(), settings(), &env.master_b64).await.unwrap();
    let client = setup(&a).await;
    let issued = a.token("t", &client, password()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("listener connected");

    // A partition: the database stops answering and nothing is closed.
    relay.freeze();
    let started = Instant::now();
    let e = a.token("t", &client, password()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    let took = started.elapsed();
    assert!(took < timeout * 4, "failing took {took:?}");
    eprintln!("partition: unavailable after {took:?}");
    relay.thaw();

    // The database goes away: connections are closed, new ones refused.
    relay.cut();
    let started = Instant::now();
    let e = a.token("t", &client, password()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
    assert!(a.ready().await.is_err());
    let took = started.elapsed();
    assert!(took < timeout * 4, "failing took {took:?}");
    eprintln!("database gone: unavailable (twice) after {took:?}");
    assert!(a.verify_access("t", &issued.access_token).is_ok(), "issued tokens still verify");
    tokio::time::sleep(Duration::from_millis(500)).await;

    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match a.token("t", &client, password()).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => assert_eq!(e.kind, ErrorKind::Unavailable, "{e}"),
            Err(e) => panic!("no recovery: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.ready().await.is_ok());
    // Another node (straight to the database) revokes; the recovered node hears of it.
    let b = env.engine(settings()).await.unwrap();
    b.revoke_access(&b.verify_access("t", &issued.access_token).unwrap()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.verify_access("t", &issued.access_token).is_ok() {
        assert!(Instant::now() < deadline, "the recovered node never learned of the revocation");
        let _ = tokio::time::timeout(Duration::from_secs(2), wake.notified()).await;
        a.sync().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_at_one_node_lock_the_user_at_the_other() {
    let env = Env::new(Kind::Pg, "throttle").await;
    let limits = tessera_core::throttle::Limits { per_user: 3, per_origin: 100, window: 300, ..Default::default() };
    let a = env.engine(Settings { limits, ..settings() }).await.unwrap();
    let client = setup(&a).await;
    let b = env.engine(Settings { limits, ..settings() }).await.unwrap();
    let wrong = || {
        tessera_core::grant::TokenRequest::new(tessera_core::grant::Grant::Password {
            username: "alice".into(),
            password: Secret::new("not the password"),
            otp: None,
        })
    };
    for node in [&a, &b, &a] {
        assert_eq!(node.token("t", &client, wrong()).await.unwrap_err().kind, ErrorKind::InvalidGrant);
    }
    for node in [&a, &b] {
        let e = node.token("t", &client, password()).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::RateLimited, "locked at every node, even with the right password");
        assert!(e.retry_after.is_some_and(|s| s > 0 && s <= 300));
    }
    // The window ends for everyone at once.
    env.clock.advance(300);
    b.token("t", &client, password()).await.expect("window over");
}
