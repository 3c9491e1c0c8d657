//! Timing: an unknown user, a wrong password and a disabled account take the same path (one
//! Argon2id verification: a dummy hash stands in for the unknown user), so they answer in
//! about the same time. The medians over 50 tries each are printed; the only assertion is a
//! generous ratio, which a missing dummy verification (100x faster) would break.

use crate::harness::*;
use std::time::{Duration, Instant};

const PW: &str = "alice's long password";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_answer_alike() {
    let s = TestServer::start_with_env(&[
        ("TESSERA_LOGIN_FAILURES_PER_USER", "100000"),
        ("TESSERA_LOGIN_FAILURES_PER_ADDRESS", "100000"),
    ])
    .await;
    s.create_user("default", "alice", PW);
    s.create_user("default", "dora", PW);
    s.disable_user("default", "dora");
    let (id, secret) = s.create_client("default", "password", None);
    let cases = [
        ("unknown user", "nobody-at-all", PW),
        ("wrong password", "alice", "not her password"),
        ("disabled user", "dora", PW),
    ];
    let mut times: Vec<Vec<Duration>> = vec![vec![]; cases.len()];
    let mut bodies: Vec<String> = vec![String::new(); cases.len()];
    // Interleaved, so that load from elsewhere falls on all three alike.
    for _ in 0..50 {
        for (i, (_, user, pw)) in cases.iter().enumerate() {
            let form = [("grant_type", "password"), ("username", *user), ("password", *pw)];
            let t = Instant::now();
            let r = s.token("default", &form, Auth::Basic(&id, &secret)).await;
            times[i].push(t.elapsed());
            r.assert_error(400, "invalid_grant", cases[i].0);
            bodies[i] = r.text;
        }
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "the three answers differ: {bodies:?}");
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    for ((what, _, _), m) in cases.iter().zip(&medians) {
        println!("timing median over 50 tries: {what}: {:.1} ms", m.as_secs_f64() * 1000.0);
    }
    let (lo, hi) = (medians.iter().min().unwrap(), medians.iter().max().unwrap());
    assert!(
        hi.as_secs_f64() < lo.as_secs_f64() * 3.0,
        "the medians differ by more than 3x ({medians:?}): one case skips the password hash"
    );
}
