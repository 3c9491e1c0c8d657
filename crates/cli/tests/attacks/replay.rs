//! Replays: a revoked token at every front, a rotated refresh token at another node of a
//! PostgreSQL deployment, a device code polled twice at once and across fronts, a TOTP code
//! and a recovery code presented at several fronts at once.

use crate::fronts::*;
use crate::harness::*;
use crate::pg::two_nodes_with;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tessera_core::totp;

#[tokio::test]
async fn a_revoked_token_is_refused_at_every_front() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    for kind in KINDS {
        // Revoked by its holder through Tapis (revocation by possession)...
        let token = genuine(&s, &at, kind).await;
        let body = json!({"token": token}).to_string();
        let r = s.call("POST", "/v3/oauth2/tokens/revoke", &[("content-type", "application/json")], Some(&body)).await;
        assert_eq!(r.status, 200, "Tapis revoke of a {kind:?} token: {}", r.text);
        refused_everywhere(&s, &at, &token, &format!("a {kind:?} token revoked through Tapis")).await;
    }
    // ... and by its client at the standard endpoint.
    let token = genuine(&s, &at, Kind::Standard).await;
    let r = s.revoke("default", &token, Auth::Basic(&at.client.0, &at.client.1)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    refused_everywhere(&s, &at, &token, "a standard token revoked by its client").await;
    // ... and by the SFTPGo logouts.
    for kind in [Kind::SftpgoAdmin, Kind::SftpgoUser] {
        let token = genuine(&s, &at, kind).await;
        let path = if kind == Kind::SftpgoAdmin { "/api/v2/logout" } else { "/api/v2/user/logout" };
        assert_eq!(s.call("GET", path, &[("authorization", &bearer(&token))], None).await.status, 200);
        refused_everywhere(&s, &at, &token, &format!("a {kind:?} token after its logout")).await;
    }
    for kind in KINDS {
        control(&s, &at, kind).await;
    }
}

fn refresh_form(rt: &str) -> [(&str, &str); 2] {
    [("grant_type", "refresh_token"), ("refresh_token", rt)]
}

#[tokio::test]
async fn a_reused_refresh_token_kills_its_family_at_every_node() {
    let (_schema, a, b) = two_nodes_with("atkrefresh", &[]).await;
    a.create_user("default", "alice", PW);
    let (id, secret) = a.create_client("default", "password,refresh_token", None);
    let auth = Auth::Basic(&id, &secret);
    let first = a.password_token("default", &id, &secret, "alice", PW, None).await;
    let r0 = first["refresh_token"].as_str().expect("refresh_token").to_owned();
    // Rotated at node A; the thief replays the old one at node B.
    let second = a.token("default", &refresh_form(&r0), auth).await.assert_ok("rotation at A").clone();
    let r1 = second["refresh_token"].as_str().expect("rotated").to_owned();
    let access1 = second["access_token"].as_str().expect("access").to_owned();
    assert!(b.is_active("default", &access1, auth).await, "B takes the rotated family's access token");
    b.token("default", &refresh_form(&r0), auth).await.assert_error(400, "invalid_grant", "replay at B");
    // The whole family is dead at both nodes: its live refresh token, and (within the
    // propagation second) its access token.
    for (name, node) in [("A", &a), ("B", &b)] {
        node.token("default", &refresh_form(&r1), auth).await.assert_error(
            400,
            "invalid_grant",
            &format!("the family's live refresh token at {name}"),
        );
        node.token("default", &refresh_form(&r0), auth).await.assert_error(
            400,
            "invalid_grant",
            &format!("the replayed one again at {name}"),
        );
        let start = Instant::now();
        while node.is_active("default", &access1, auth).await {
            assert!(start.elapsed() < Duration::from_secs(2), "{name} still takes the dead family's access token");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

const DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[tokio::test]
async fn a_device_code_is_redeemed_once_even_polled_at_once_and_across_fronts() {
    let s = TestServer::start_with_env(&[("TESSERA_DEVICE_INTERVAL", "1")]).await;
    s.create_user("default", "alice", PW);
    let id = s.create_public_client("default", DEVICE, None);
    let d = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&id)).await;
    let d = d.assert_ok("device authorization").clone();
    let code = d["device_code"].as_str().expect("device_code").to_owned();
    let user_code = d["user_code"].as_str().expect("user_code").to_owned();
    s.cli_ok(&["device", "approve", &user_code, "--tenant", "default", "--username", "alice"], None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Twenty polls at once, half at the standard endpoint, half at Tapis: one wins.
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut tasks = vec![];
    for i in 0..20 {
        let req = if i % 2 == 0 {
            let form = [("grant_type", DEVICE), ("device_code", code.as_str()), ("client_id", id.as_str())];
            http.post(s.url("default", "/oauth2/token")).form(&form)
        } else {
            let body = json!({"grant_type": "device_code", "device_code": code, "client_id": id});
            http.post(format!("{}/v3/oauth2/tokens", s.base)).json(&body)
        };
        tasks.push(tokio::spawn(async move {
            let r = req.send().await.expect("poll");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }));
    }
    let mut won = 0;
    for t in tasks {
        let (status, text) = t.await.expect("task");
        match status {
            200 | 201 => won += 1,
            400 => assert!(
                ["invalid_grant", "slow_down"].iter().any(|e| text.contains(e)),
                "a losing poll says invalid_grant or slow_down: {text}"
            ),
            other => panic!("unexpected {other}: {text}"),
        }
    }
    assert_eq!(won, 1, "ATTACK SUCCEEDED: one device code redeemed {won} times");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let poll = [("grant_type", DEVICE), ("device_code", code.as_str())];
    s.token("default", &poll, Auth::Public(&id)).await.assert_error(400, "invalid_grant", "redeemed code, later");
}

const PW: &str = "alice-password-1";

/// Alice with two-factor authentication: the TOTP secret, and her recovery codes. The
/// enrolment is confirmed with the previous step's code, so the current one is unused.
fn enrol(s: &TestServer) -> (Vec<u8>, Vec<String>) {
    let out = s.cli_ok(&["user", "totp", "enable", "--username", "alice", "--json"], None);
    let enrol: Value = serde_json::from_str(&out).expect("json");
    let raw = base32_decode(enrol["secret"].as_str().expect("secret"));
    let code = totp::code_at(&raw, now() - 30);
    let out = s.cli_ok(&["user", "totp", "confirm", "--username", "alice", "--code", &code, "--json"], None);
    let v: Value = serde_json::from_str(&out).expect("json");
    let codes = v["recovery_codes"].as_array().expect("codes").iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    (raw, codes)
}

/// `otp` presented at the same time at the standard token endpoint, SFTPGo, ICA and
/// DocSpace, twice each: how many sign-ins it let through.
async fn sign_ins_with(s: &TestServer, client: &(String, String), otp: &str) -> usize {
    let http = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut tasks = vec![];
    for _ in 0..2 {
        let form = [("grant_type", "password"), ("username", "alice"), ("password", PW), ("otp", otp)];
        let reqs = [
            http.post(s.url("default", "/oauth2/token")).basic_auth(&client.0, Some(&client.1)).form(&form),
            http.get(format!("{}/api/v2/user/token", s.base)).basic_auth("alice", Some(PW)).header("x-sftpgo-otp", otp),
            http.post(format!("{}/ica/rest/api/tokens", s.base))
                .basic_auth("alice", Some(PW))
                .header("x-tessera-otp", otp),
            http.get(format!("{}/api/2.0/security/oauth2/token", s.base))
                .basic_auth("alice", Some(PW))
                .header("x-tessera-otp", otp),
        ];
        for req in reqs {
            tasks.push(tokio::spawn(async move {
                let r = req.send().await.expect("sign-in");
                (r.status().as_u16(), r.text().await.unwrap_or_default())
            }));
        }
    }
    let mut ok = 0;
    for t in tasks {
        let (status, text) = t.await.expect("task");
        match status {
            200 => ok += 1,
            400 | 401 => {}
            other => panic!("a refused one-time code answers 400 or 401, got {other}: {text}"),
        }
    }
    ok
}

#[tokio::test]
async fn a_totp_code_is_accepted_once_across_fronts_even_at_once() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "1000")]).await;
    s.create_user("default", "alice", PW);
    let client = s.create_client("default", "password", None);
    let (raw, _) = enrol(&s);
    let code = totp::code_at(&raw, now());
    let ok = sign_ins_with(&s, &client, &code).await;
    assert_eq!(ok, 1, "ATTACK SUCCEEDED: one TOTP code signed in {ok} times");
    assert_eq!(sign_ins_with(&s, &client, &code).await, 0, "the spent code, replayed later");
}

#[tokio::test]
async fn a_recovery_code_is_accepted_once_across_fronts_even_at_once() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "1000")]).await;
    s.create_user("default", "alice", PW);
    let client = s.create_client("default", "password", None);
    let (_, codes) = enrol(&s);
    let ok = sign_ins_with(&s, &client, &codes[0]).await;
    assert_eq!(ok, 1, "ATTACK SUCCEEDED: one recovery code signed in {ok} times");
    assert_eq!(sign_ins_with(&s, &client, &codes[0]).await, 0, "the spent recovery code, replayed later");
    // Typed differently (case, separators), it is still the same spent code.
    let variant = codes[0].to_lowercase().replace('-', " ");
    assert_eq!(sign_ins_with(&s, &client, &variant).await, 0, "the spent recovery code, retyped");
    assert_eq!(sign_ins_with(&s, &client, &codes[1]).await, 1, "another recovery code still works");
}
