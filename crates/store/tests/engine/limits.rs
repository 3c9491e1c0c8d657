//! Brute-force limits that concurrent attempts cannot race past, disabled accounts answered
//! as wrong passwords, and the device page's look-up limits and tickets, with the injected
//! clock.

use super::*;
use crate::env::T0;
use std::net::IpAddr;
use tessera_core::authority::Actor;
use tessera_core::throttle::{Counter, Limits};

fn limits(per_user: u32, per_origin: u32) -> Limits {
    Limits { per_user, per_origin, window: 60, ..Limits::default() }
}

fn sign_in(username: &str, password: &str) -> TokenRequest {
    let mut req =
        TokenRequest::new(Grant::Password { username: username.into(), password: Secret::new(password), otp: None });
    req.origin = Some(ORIGIN);
    req
}

const ORIGIN: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

/// The store alone: 40 concurrent reservations of one counter (capped at 10), through two
/// handles (for PostgreSQL, two pools: two nodes), get exactly 10 through; a released one
/// lets one more in; the window's end frees the counter whatever was left reserved.
pub(crate) async fn concurrent_reservations_pass_a_cap_exactly_as_often_as_it_allows(kind: Kind) {
    let env = Env::new(kind, "reserve").await;
    let stores = [env.backend().await.store(), env.backend().await.store()];
    let counters = vec![Counter { key: "u:t:alice".into(), cap: 10 }, Counter { key: "a:192.0.2.7".into(), cap: 100 }];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (store, counters) = (stores[i % 2].clone(), counters.clone());
        tasks.push(tokio::spawn(async move { store.attempt_reserve(&counters, T0, 60).await.unwrap() }));
    }
    let mut passed = 0;
    for t in tasks {
        match t.await.unwrap() {
            None => passed += 1,
            Some(wait) => assert!((1..=60).contains(&wait), "wait {wait}"),
        }
    }
    assert_eq!(passed, 10, "exactly the cap gets through");
    // Refused attempts were not counted against the address: 90 more fit there.
    let other_user = vec![Counter { key: "u:t:bob".into(), cap: 1000 }, counters[1].clone()];
    for _ in 0..90 {
        assert_eq!(stores[0].attempt_reserve(&other_user, T0, 60).await.unwrap(), None);
    }
    assert_eq!(stores[1].attempt_reserve(&other_user, T0 + 10, 60).await.unwrap(), Some(50), "address full");
    // Give one back: one more gets through, then none.
    stores[1].attempt_release(&["u:t:alice", "a:192.0.2.7"], &[], T0).await.unwrap();
    assert_eq!(stores[0].attempt_reserve(&counters, T0 + 1, 60).await.unwrap(), None);
    assert!(stores[0].attempt_reserve(&counters, T0 + 1, 60).await.unwrap().is_some());
    // Clearing forgets every attempt of a key.
    stores[0].attempt_release(&[], &["u:t:alice"], T0 + 1).await.unwrap();
    assert_eq!(stores[0].attempt_reserve(&[counters[0].clone()], T0 + 2, 60).await.unwrap(), None);
    // Reservations nobody settled (a crashed request) hold until their window ends, no longer.
    let carol = [Counter { key: "u:t:carol".into(), cap: 2 }];
    for _ in 0..2 {
        assert_eq!(stores[0].attempt_reserve(&carol, T0 + 10, 60).await.unwrap(), None);
    }
    assert_eq!(stores[1].attempt_reserve(&carol, T0 + 69, 60).await.unwrap(), Some(1));
    assert_eq!(stores[1].attempt_reserve(&carol, T0 + 70, 60).await.unwrap(), None, "a new window");
    // Giving back an attempt reserved in the window that ended owes the new one nothing.
    stores[0].attempt_release(&["u:t:carol"], &[], T0 + 10).await.unwrap();
    assert_eq!(stores[0].attempt_reserve(&carol, T0 + 71, 60).await.unwrap(), None);
    assert_eq!(stores[0].attempt_reserve(&carol, T0 + 71, 60).await.unwrap(), Some(59), "full at 2");
}

/// The engine: 40 concurrent wrong passwords for one user, limit 10: at most 10 are checked.
pub(crate) async fn concurrent_wrong_passwords_are_checked_no_more_than_the_limit(kind: Kind) {
    let env = Env::new(kind, "pw-race").await;
    let auth = Arc::new(env.engine(Settings { limits: limits(10, 1000), ..settings() }).await.unwrap());
    let client = setup(&auth).await;
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (auth, client) = (auth.clone(), client.clone());
        tasks.push(tokio::spawn(async move { auth.token("t", &client, sign_in("alice", "wrong password")).await }));
    }
    let mut checked = 0;
    for t in tasks {
        match t.await.unwrap().map(|_| ()).unwrap_err().kind {
            ErrorKind::InvalidGrant => checked += 1,
            ErrorKind::RateLimited => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(checked, 10, "10 checked, 30 refused");
    let e = auth.token("t", &client, sign_in("alice", "correct horse battery")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited, "locked, even with the right password");
}

/// A successful sign-in gives the address its reservation back and clears the user's
/// failures; a sign-in that needs a second factor is no failure either.
pub(crate) async fn successes_give_their_reservations_back(kind: Kind) {
    let env = Env::new(kind, "pw-ok").await;
    let auth = env.engine(Settings { limits: limits(3, 3), ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    for _ in 0..2 {
        let e = auth.token("t", &client, sign_in("alice", "wrong password")).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidGrant);
    }
    // Many successes from the address at the limit's edge: none counts.
    for _ in 0..5 {
        auth.token("t", &client, sign_in("alice", "correct horse battery")).await.expect("success");
    }
    // The user's failures were cleared, the address still has its two: one more failure fits.
    let e = auth.token("t", &client, sign_in("nobody", "wrong password")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidGrant);
    let e = auth.token("t", &client, sign_in("alice", "correct horse battery")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited, "the address is at its limit of 3");
}

/// A disabled account answers exactly as a wrong password, and each try counts.
pub(crate) async fn a_disabled_account_is_a_counted_wrong_password(kind: Kind) {
    let env = Env::new(kind, "disabled").await;
    let auth = env.engine(Settings { limits: limits(3, 100), ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    let wrong = auth.token("t", &client, sign_in("alice", "wrong password")).await.unwrap_err();
    auth.set_user_disabled(&Actor::Operator, "t", "alice", true).await.unwrap();
    for _ in 0..2 {
        let e = auth.token("t", &client, sign_in("alice", "correct horse battery")).await.unwrap_err();
        assert_eq!(e, wrong, "the same error as a wrong password");
    }
    let e = auth.token("t", &client, sign_in("alice", "correct horse battery")).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited, "the disabled account's tries counted");
}

/// The verification page's look-ups: misses count per address and per tenant, hits do not;
/// the decision ticket works for its code, user and tenant only, and not past the code's life.
pub(crate) async fn device_look_ups_are_limited_and_tickets_bound(kind: Kind) {
    let env = Env::new(kind, "device-limits").await;
    let lim = Limits { device_per_origin: 3, device_per_tenant: 5, window: 60, ..Limits::default() };
    let auth = env.engine(Settings { limits: lim, device_ttl: 120, ..settings() }).await.unwrap();
    let client = device_setup(&auth).await;
    let d = auth.device_authorize("t", &client, None, ClaimSet::Standard, None).await.unwrap();
    let other: IpAddr = "198.51.100.1".parse().unwrap();
    let miss = if d.user_code == "BCDF-GHJK" { "BCDF-GHJL" } else { "BCDF-GHJK" };
    for _ in 0..3 {
        // Hits are not failures.
        auth.device_lookup("t", &d.user_code, Some(ORIGIN)).await.expect("hit");
        assert_eq!(auth.device_lookup("t", miss, Some(ORIGIN)).await.unwrap_err().kind, ErrorKind::NotFound);
    }
    let e = auth.device_lookup("t", &d.user_code, Some(ORIGIN)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited, "the address has had its 3 misses");
    assert!(e.retry_after.is_some_and(|s| (1..=60).contains(&s)));
    // Another address has its own count, but the tenant's (5) is shared.
    for _ in 0..2 {
        assert_eq!(auth.device_lookup("t", miss, Some(other)).await.unwrap_err().kind, ErrorKind::NotFound);
    }
    let e = auth.device_lookup("t", &d.user_code, Some(other)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::RateLimited, "the tenant has had its 5 misses");
    env.clock.advance(60);
    let (rec, found) = auth.device_lookup("t", &d.user_code, Some(ORIGIN)).await.expect("window over");
    assert_eq!(found.name, "tv");

    // Tickets.
    let ticket = auth.device_ticket(&rec, "alice");
    let not_found = |r: Result<String, tessera_core::Error>| r.unwrap_err().kind == ErrorKind::NotFound;
    assert!(not_found(auth.device_decide_with_ticket("t", miss, &ticket, true).await), "another code");
    assert!(not_found(auth.device_decide_with_ticket("t", &d.user_code, "garbage", true).await));
    let mut forged = ticket.clone().into_bytes();
    forged[5] = if forged[5] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(not_found(auth.device_decide_with_ticket("t", &d.user_code, &forged, true).await), "tampered");
    assert_eq!(auth.device_decide_with_ticket("t", &d.user_code, &ticket, true).await.unwrap(), "alice");
    assert!(not_found(auth.device_decide_with_ticket("t", &d.user_code, &ticket, false).await), "decided once");
    let late = auth.device_authorize("t", &client, None, ClaimSet::Standard, None).await.unwrap();
    let (late_rec, _) = auth.device_lookup("t", &late.user_code, None).await.unwrap();
    let late_ticket = auth.device_ticket(&late_rec, "alice");
    env.clock.advance(120);
    assert!(not_found(auth.device_decide_with_ticket("t", &late.user_code, &late_ticket, true).await), "expired");
}
