//! Brute-force limits over HTTP (issue 13): concurrent wrong passwords cannot race past the
//! per-user and per-address limits (SQLite, and two nodes on one PostgreSQL); a disabled
//! account answers and counts as a wrong password at every sign-in; the device page tells a
//! hit from a miss only after the sign-in, and limits failed look-ups.

use crate::harness::*;
use crate::pg::two_nodes_with;
use serde_json::{Value, json};

const PASSWORD: &str = "alice's long password";

/// Sends all requests at once; the answers' statuses, bodies and `Retry-After`.
async fn at_once(requests: Vec<reqwest::RequestBuilder>) -> Vec<(u16, Value, Option<String>)> {
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|r| {
            tokio::spawn(async move {
                let res = r.send().await.expect("send");
                let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap_or("?").to_owned());
                (res.status().as_u16(), res.json::<Value>().await.unwrap_or_default(), retry)
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

/// 40 wrong passwords at once, spread over `nodes`, for `username(i)`: how many were checked
/// (answered other than 429). Every answer is a wrong password or a 429 with `Retry-After`.
async fn race_wrong_passwords(nodes: &[&TestServer], id: &str, secret: &str, username: fn(usize) -> String) -> usize {
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let requests = (0..40)
        .map(|i| {
            let form =
                [("grant_type", "password".to_owned()), ("username", username(i)), ("password", "wrong!".into())];
            http.post(nodes[i % nodes.len()].url("default", "/oauth2/token")).basic_auth(id, Some(secret)).form(&form)
        })
        .collect();
    let answers = at_once(requests).await;
    for (status, body, retry) in &answers {
        match status {
            400 => assert_eq!(body["error"], "invalid_grant", "{body}"),
            429 => {
                assert_eq!(body["error"], "rate_limited", "{body}");
                assert!(retry.as_deref().and_then(|r| r.parse::<u64>().ok()).is_some_and(|r| r >= 1), "{retry:?}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    answers.iter().filter(|(s, _, _)| *s != 429).count()
}

fn alice(_: usize) -> String {
    "alice".into()
}

fn someone(i: usize) -> String {
    format!("nobody{i}")
}

#[tokio::test]
async fn concurrent_wrong_passwords_for_one_user_are_checked_at_most_the_limit() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "10")]).await;
    s.create_user("default", "alice", PASSWORD);
    let (id, secret) = s.create_client("default", "password", None);
    let checked = race_wrong_passwords(&[&s], &id, &secret, alice).await;
    assert!((1..=10).contains(&checked), "{checked} of 40 concurrent wrong passwords were checked; the limit is 10");
}

#[tokio::test]
async fn concurrent_wrong_passwords_from_one_address_are_checked_at_most_the_limit() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_ADDRESS", "10")]).await;
    let (id, secret) = s.create_client("default", "password", None);
    let checked = race_wrong_passwords(&[&s], &id, &secret, someone).await;
    assert!((1..=10).contains(&checked), "{checked} of 40 concurrent wrong passwords were checked; the limit is 10");
}

#[tokio::test]
async fn two_nodes_on_postgresql_share_the_per_user_limit_under_a_race() {
    let (_schema, a, b) = two_nodes_with("limuser", &[("TESSERA_LOGIN_FAILURES_PER_USER", "10")]).await;
    a.create_user("default", "alice", PASSWORD);
    let (id, secret) = a.create_client("default", "password", None);
    let checked = race_wrong_passwords(&[&a, &b], &id, &secret, alice).await;
    assert!((1..=10).contains(&checked), "{checked} of 40 wrong passwords at two nodes were checked; the limit is 10");
    // Locked at both nodes, even with the right password.
    for node in [&a, &b] {
        let form = [("grant_type", "password"), ("username", "alice"), ("password", PASSWORD)];
        node.token("default", &form, Auth::Basic(&id, &secret)).await.assert_error(429, "rate_limited", "locked");
    }
}

#[tokio::test]
async fn two_nodes_on_postgresql_share_the_per_address_limit_under_a_race() {
    let (_schema, a, b) = two_nodes_with("limaddr", &[("TESSERA_LOGIN_FAILURES_PER_ADDRESS", "10")]).await;
    let (id, secret) = a.create_client("default", "password", None);
    let checked = race_wrong_passwords(&[&a, &b], &id, &secret, someone).await;
    assert!((1..=10).contains(&checked), "{checked} of 40 wrong passwords at two nodes were checked; the limit is 10");
}

#[tokio::test]
async fn a_disabled_account_answers_and_counts_as_a_wrong_password_at_the_token_endpoint() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "3")]).await;
    s.create_user("default", "alice", PASSWORD);
    let (id, secret) = s.create_client("default", "password", None);
    let sign_in = |password: &'static str| [("grant_type", "password"), ("username", "alice"), ("password", password)];
    let wrong = s.token("default", &sign_in("wrong password"), Auth::Basic(&id, &secret)).await;
    wrong.assert_error(400, "invalid_grant", "wrong password");
    s.disable_user("default", "alice");
    for _ in 0..2 {
        let r = s.token("default", &sign_in(PASSWORD), Auth::Basic(&id, &secret)).await;
        assert_eq!((r.status, &r.json), (wrong.status, &wrong.json), "disabled: the wrong password's answer");
    }
    // One wrong password and two tries of the disabled account: the limit of 3 is reached.
    let r = s.token("default", &sign_in(PASSWORD), Auth::Basic(&id, &secret)).await;
    r.assert_error(429, "rate_limited", "the disabled account's tries counted");
}

#[tokio::test]
async fn a_disabled_account_answers_and_counts_as_a_wrong_password_at_the_fronts() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "3")]).await;
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    // Tapis, no client: the engine's words reach the caller in `message`.
    s.create_user("default", "tara", PASSWORD);
    let tapis = |password: &str| {
        let body = json!({"grant_type": "password", "username": "tara", "password": password});
        http.post(s.url("default", "/v3/oauth2/tokens")).json(&body)
    };
    let wrong = &at_once(vec![tapis("wrong password")]).await[0];
    assert_eq!(wrong.0, 400, "{}", wrong.1);
    s.disable_user("default", "tara");
    for _ in 0..2 {
        let r = &at_once(vec![tapis(PASSWORD)]).await[0];
        assert_eq!((r.0, &r.1["message"]), (wrong.0, &wrong.1["message"]), "Tapis: disabled as wrong password");
    }
    assert_eq!(at_once(vec![tapis(PASSWORD)]).await[0].0, 429, "Tapis: the disabled account's tries counted");
    // SFTPGo user token (Basic).
    s.create_user("default", "sam", PASSWORD);
    let sftpgo = |password: &str| http.get(s.url("default", "/api/v2/user/token")).basic_auth("sam", Some(password));
    let wrong = &at_once(vec![sftpgo("wrong password")]).await[0];
    assert_eq!(wrong.0, 401, "{}", wrong.1);
    s.disable_user("default", "sam");
    for _ in 0..2 {
        let r = &at_once(vec![sftpgo(PASSWORD)]).await[0];
        assert_eq!((r.0, &r.1), (wrong.0, &wrong.1), "SFTPGo: disabled as wrong password");
    }
    assert_eq!(at_once(vec![sftpgo(PASSWORD)]).await[0].0, 429, "SFTPGo: the disabled account's tries counted");
}

// ----- the device page -----

const TV: &str = "Living-room TV";

/// A public device-flow client named [`TV`]; its id.
fn tv_client(s: &TestServer) -> String {
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let out = s.cli_ok(
        &["client", "create", "--tenant", "default", "--name", TV, "--grant", grant, "--public", "--json"],
        None,
    );
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    v["client_id"].as_str().expect("client_id").to_owned()
}

/// A well-formed user code other than `code`.
fn another_code(code: &str) -> &'static str {
    if code == "BCDF-GHJK" { "BCDF-GHJL" } else { "BCDF-GHJK" }
}

struct Page {
    status: u16,
    text: String,
    retry_after: Option<String>,
}

async fn device_page(s: &TestServer, form: &[(&str, &str)]) -> Page {
    let r = s.http.post(s.url("default", "/device")).form(form).send().await.expect("post /device");
    let status = r.status().as_u16();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap_or("?").to_owned());
    assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"), "an HTML page");
    Page { status, text: r.text().await.expect("text"), retry_after }
}

/// The device page's sign-in form, filled in by alice.
fn sign_in<'a>(code: &'a str, password: &'a str) -> [(&'a str, &'a str); 3] {
    [("user_code", code), ("username", "alice"), ("password", password)]
}

/// The page with the code (as shown and as sent back) blanked out.
fn blank(text: &str, code: &str) -> String {
    text.replace(code, "CODE").replace(&code.replace('-', ""), "CODE")
}

#[tokio::test]
async fn the_device_page_answers_a_miss_and_a_hit_alike_until_the_sign_in() {
    let s = TestServer::start_with_env(&[("TESSERA_DEVICE_INTERVAL", "1")]).await;
    s.create_user("default", "alice", PASSWORD);
    let id = tv_client(&s);
    let d = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&id)).await;
    let d = d.assert_ok("device authorization").clone();
    let hit = d["user_code"].as_str().expect("user_code").to_owned();
    let miss = another_code(&hit);

    // The code step: the same status and page for both.
    let (h, m) = (s.get(&format!("/device?user_code={hit}")).await, s.get(&format!("/device?user_code={miss}")).await);
    assert_eq!((h.status, blank(&h.text, &hit)), (m.status, blank(&m.text, miss)), "GET: a hit looks like a miss");
    assert_eq!(h.status, 200);
    assert!(h.text.contains(&hit) && !h.text.contains(TV), "the code echoed, the client not shown: {}", h.text);
    // A wrong password: the same for both.
    let wrong = "wrong password";
    let (h, m) = (device_page(&s, &sign_in(&hit, wrong)).await, device_page(&s, &sign_in(miss, wrong)).await);
    assert_eq!((h.status, blank(&h.text, &hit)), (m.status, blank(&m.text, miss)), "POST: a hit looks like a miss");
    assert_eq!(h.status, 401);
    assert!(!h.text.contains(TV));

    // Signed in: a miss is unknown, a hit shows the client and the choice.
    let m = device_page(&s, &sign_in(miss, PASSWORD)).await;
    assert_eq!(m.status, 404, "{}", m.text);
    assert!(m.text.contains("unknown or has expired") && !m.text.contains(TV));
    let h = device_page(&s, &sign_in(&hit, PASSWORD)).await;
    assert_eq!(h.status, 200, "{}", h.text);
    assert!(h.text.contains(TV) && h.text.contains("Approve") && h.text.contains("Deny"), "{}", h.text);
    let ticket = h.text.split("name=\"ticket\" value=\"").nth(1).and_then(|t| t.split('"').next()).expect("ticket");
    assert!(!ticket.is_empty());

    // A ticket does not decide another code; it approves its own, once.
    let m = device_page(&s, &[("user_code", miss), ("ticket", ticket), ("action", "approve")]).await;
    assert_eq!(m.status, 404);
    let ok = device_page(&s, &[("user_code", &hit), ("ticket", ticket), ("action", "approve")]).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.text.contains("Device connected"));
    let again = device_page(&s, &[("user_code", &hit), ("ticket", ticket), ("action", "deny")]).await;
    assert_eq!(again.status, 404, "decided once");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let device_code = d["device_code"].as_str().expect("device_code");
    let poll = [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code)];
    let t = s.token("default", &poll, Auth::Public(&id)).await;
    let jwt = decode_jwt(t.assert_ok("approved via the page")["access_token"].as_str().expect("token"));
    assert_eq!(jwt.claims["sub"], "alice");
}

#[tokio::test]
async fn repeated_device_code_misses_are_refused_per_address_and_per_tenant() {
    for limit in ["TESSERA_DEVICE_LOOKUP_FAILURES_PER_ADDRESS", "TESSERA_DEVICE_LOOKUP_FAILURES_PER_TENANT"] {
        let s = TestServer::start_with_env(&[(limit, "3")]).await;
        s.create_user("default", "alice", PASSWORD);
        let id = tv_client(&s);
        let d = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&id)).await;
        let hit = d.assert_ok("device authorization")["user_code"].as_str().expect("user_code").to_owned();
        let miss = another_code(&hit);
        for i in 0..3 {
            let p = device_page(&s, &sign_in(miss, PASSWORD)).await;
            assert_eq!(p.status, 404, "{limit}: miss {i}: {}", p.text);
        }
        for code in [miss, hit.as_str()] {
            let p = device_page(&s, &sign_in(code, PASSWORD)).await;
            assert_eq!(p.status, 429, "{limit}: past the limit: {}", p.text);
            assert!(p.text.contains("too many failed attempts"), "{}", p.text);
            let retry = p.retry_after.as_deref().and_then(|r| r.parse::<u64>().ok());
            assert!(retry.is_some_and(|r| (1..=300).contains(&r)), "{limit}: Retry-After {:?}", p.retry_after);
        }
    }
}
