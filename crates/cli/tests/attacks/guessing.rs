//! Guessing credentials that are not passwords: client secrets and API keys are limited like
//! passwords (per client, per address), and device user codes are drawn as stated.

use crate::fronts::*;
use crate::harness::*;
use serde_json::{Value, json};

/// The token endpoint's client_credentials grant with this secret: the answer.
async fn cc(s: &TestServer, id: &str, secret: &str) -> Resp {
    s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(id, secret)).await
}

#[tokio::test]
async fn client_secret_guessing_is_limited_per_client_like_passwords() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "3")]).await;
    let (id, secret) = s.create_client("default", "client_credentials", None);
    let (other, other_secret) = s.create_client("default", "client_credentials", None);
    let guess = format!("tsc_{}", "A".repeat(43));
    // Three guesses, at three endpoints that authenticate clients: each a plain refusal.
    cc(&s, &id, &guess).await.assert_error(401, "invalid_client", "guess 1 (token)");
    let r = s.post_form("default", "/oauth2/introspect", &[("token", "x")], Auth::Basic(&id, &guess)).await;
    r.assert_error(401, "invalid_client", "guess 2 (introspection)");
    let r = s.post_form("default", "/oauth2/revoke", &[("token", "x")], Auth::Post(&id, &guess)).await;
    r.assert_error(401, "invalid_client", "guess 3 (revocation, secret in the body)");
    // Past the limit, guesses are refused unchecked, and so is the right secret: a right
    // guess now would tell the attacker nothing.
    let r = cc(&s, &id, &guess).await;
    r.assert_error(429, "rate_limited", "guess 4");
    assert!(r.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|v| v >= 1), "Retry-After");
    let r = cc(&s, &id, &secret).await;
    r.assert_error(429, "rate_limited", "ATTACK SUCCEEDED unless refused: the right secret past the limit");
    let r = s.post_form("default", "/oauth2/introspect", &[("token", "x")], Auth::Basic(&id, &secret)).await;
    r.assert_error(429, "rate_limited", "introspection with the right secret past the limit");
    // Another client is not affected.
    cc(&s, &other, &other_secret).await.assert_ok("another client");
}

#[tokio::test]
async fn client_secret_guessing_is_limited_per_address_across_clients() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_ADDRESS", "3")]).await;
    let ids: Vec<(String, String)> = (0..5).map(|_| s.create_client("default", "client_credentials", None)).collect();
    for (i, (id, _)) in ids.iter().take(3).enumerate() {
        cc(&s, id, "tsc_wrong").await.assert_error(401, "invalid_client", &format!("guess {i}"));
    }
    cc(&s, &ids[3].0, "tsc_wrong").await.assert_error(429, "rate_limited", "a fourth client, same address");
    cc(&s, &ids[4].0, &ids[4].1).await.assert_error(429, "rate_limited", "a right secret from that address");
    // Unknown client ids count too (else the attacker enumerates for free).
    let r = cc(&s, "no-such-client", "tsc_wrong").await;
    r.assert_error(429, "rate_limited", "an unknown client from that address");
}

#[tokio::test]
async fn chosen_client_secrets_are_counted_before_they_are_checked() {
    // A secret a client's maker chose may be weak: 30 guesses at once, limit 3, at most 3
    // are checked (the others are refused unchecked), as for passwords.
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "3")]).await;
    s.cli_ok(&["tenant", "policy", "default", "--max-user-clients", "5"], None);
    s.create_user("default", "eve", PW);
    let body = json!({"grant_type": "password", "username": "eve", "password": PW}).to_string();
    let r = s.call("POST", "/v3/oauth2/tokens", &[("content-type", "application/json")], Some(&body)).await;
    let eve = r.json["result"]["access_token"]["access_token"].as_str().expect("eve's token").to_owned();
    let body = json!({"client_id": "eve-app", "client_key": "eve-chose-this-client-key-42"}).to_string();
    let headers = [("content-type", "application/json"), ("x-tapis-token", eve.as_str())];
    let r = s.call("POST", "/v3/oauth2/clients", &headers, Some(&body)).await;
    assert_eq!(r.status, 200, "a client with a chosen key: {}", r.text);
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let req = http
                .post(s.url("default", "/oauth2/token"))
                .basic_auth("eve-app", Some(format!("eve-chose-this-client-key-{i:02}")))
                .form(&[("grant_type", "password"), ("username", "eve"), ("password", PW)]);
            tokio::spawn(async move { req.send().await.expect("send").status().as_u16() })
        })
        .collect();
    let mut checked = 0;
    for t in tasks {
        match t.await.expect("task") {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!((1..=3).contains(&checked), "ATTACK SUCCEEDED: {checked} of 30 concurrent guesses were checked; limit 3");
}

#[tokio::test]
async fn api_key_guessing_is_limited_per_address_at_every_front() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_ADDRESS", "3")]).await;
    s.create_user("default", "alice", PW);
    let out = s.cli_ok(&["apikey", "create", "--username", "alice", "--json"], None);
    let key = serde_json::from_str::<Value>(out.trim()).expect("json")["key"].as_str().expect("key").to_owned();
    let guess = format!("tsk_{}", "B".repeat(43));
    let s = &s;
    let ica = |k: &str| {
        let k = k.to_owned();
        async move { s.call("POST", "/ica/rest/api/tokens", &[("x-api-key", &k)], None).await }
    };
    let docspace = |k: &str| {
        let k = k.to_owned();
        async move { s.call("GET", "/api/2.0/security/oauth2/token", &[("apikeybearer", &k)], None).await }
    };
    assert_eq!(ica(&key).await.status, 200, "the right key works");
    assert_eq!(ica(&guess).await.status, 401, "guess 1 at ICA");
    assert_eq!(docspace(&guess).await.status, 401, "guess 2 at DocSpace");
    assert_eq!(ica(&guess).await.status, 401, "guess 3 at ICA");
    for (front, r) in [("ICA", ica(&guess).await), ("DocSpace", docspace(&guess).await)] {
        assert_eq!(r.status, 429, "{front}: a guess past the limit: {}", r.text);
    }
    for (front, r) in [("ICA", ica(&key).await), ("DocSpace", docspace(&key).await)] {
        assert_eq!(r.status, 429, "ATTACK SUCCEEDED unless refused: {front}: the right key past the limit: {}", r.text);
    }
}

#[tokio::test]
async fn device_user_codes_are_drawn_from_the_stated_alphabet() {
    // The entropy stated in the suite's doc (20^8 codes) holds only if codes are what it says.
    let s = TestServer::start().await;
    let id = s.create_public_client("default", "urn:ietf:params:oauth:grant-type:device_code", None);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        let d = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&id)).await;
        let code = d.assert_ok("device authorization")["user_code"].as_str().expect("user_code").replace('-', "");
        assert_eq!(code.len(), 8, "{code}");
        assert!(code.bytes().all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)), "{code}");
        assert!(seen.insert(code.clone()), "a user code repeated within 30: {code}");
    }
}
