//! The audit trail (issue 16, item 3): real HTTP traffic and CLI admin changes leave one row
//! per event, with who, what, from where and how it ended, and never a secret; read back with
//! `tessera audit` (filters, cursor paging), on SQLite and on PostgreSQL; old rows go at the
//! retention; a full queue drops (and counts) rather than slow a request; shutdown flushes.

use crate::audience::{basic, bearer, docspace, ica};
use crate::harness::*;
use crate::pg::Schema;
use base64::Engine;
use serde_json::Value;
use std::time::{Duration, Instant};
use tessera_core::audit::EventKind;

const ALICE_PW: &str = "alice-password-1";
const BOB_PW: &str = "bob's long password";
const BOB_NEW_PW: &str = "bob's second long password";

/// `tessera audit --json` with `args`: one page.
fn page(s: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["audit", "--json"];
    all.extend_from_slice(args);
    let out = s.cli_ok(&all, None);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("audit --json: {e}: {out}"))
}

fn events(v: &Value) -> Vec<Value> {
    v["events"].as_array().expect("events").clone()
}

/// Every row, following the cursor, 7 a page.
fn all_rows(s: &TestServer) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut args = vec!["--limit", "7"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let p = page(s, &args);
        rows.extend(events(&p));
        match p["next"].as_str() {
            Some(n) => cursor = Some(n.to_owned()),
            None => return rows,
        }
    }
}

fn has(rows: &[Value], event: &str, outcome: &str) -> bool {
    rows.iter().any(|r| r["event"] == event && r["outcome"] == outcome)
}

/// The rows, once every `(event, outcome)` of `want` is among them (the writer runs every
/// half second: wait for it, for at most 20 s).
fn rows_with(s: &TestServer, want: &[(&str, &str)]) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = all_rows(s);
        let missing: Vec<_> = want.iter().filter(|(e, o)| !has(&rows, e, o)).collect();
        if missing.is_empty() {
            return rows;
        }
        assert!(Instant::now() < deadline, "audit rows missing: {missing:?}\nrows: {rows:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Traffic of every kind that is audited, then the checks; `s` runs on either backend.
async fn every_event_is_recorded_without_a_secret(s: &TestServer) {
    // ---- admin changes at the CLI
    s.cli_ok(
        &["user", "create", "--username", "alice", "--password-stdin", "--role", "admin"],
        Some("alice-password-1\n"),
    );
    s.create_user("default", "bob", BOB_PW);
    s.disable_user("default", "bob");
    s.cli_ok(&["user", "enable", "--username", "bob"], None);
    s.cli_ok(&["user", "update", "--username", "bob", "--email", "bob@example.test"], None);
    s.cli_ok(&["user", "reset-password", "--username", "bob", "--password-stdin"], Some(&format!("{BOB_NEW_PW}\n")));
    s.cli_ok(&["tenant", "policy", "default", "--access-ttl", "1800"], None);
    s.rotate_key("default");
    // The key that signed until now (no token of it is out yet) may be retired.
    let keys: Value = serde_json::from_str(s.cli_ok(&["key", "list", "--json"], None).trim()).expect("key list --json");
    let old = keys.as_array().and_then(|k| k.iter().find(|k| k["status"] != "active")).expect("the previous key");
    s.cli_ok(&["key", "retire", old["kid"].as_str().expect("kid")], None);
    s.cli_ok(&["tenant", "create", "short-lived"], None);
    s.cli_ok(&["tenant", "delete", "short-lived"], None);
    let (cc_id, cc_secret) = s.create_client("default", "client_credentials", None);
    let (pw_id, pw_secret) = s.create_client("default", "password,refresh_token", None);
    let (gone_id, gone_secret) = s.create_client("default", "client_credentials", None);
    s.cli_ok(&["client", "update", &gone_id, "--name", "renamed"], None);
    let rotated = s.cli_ok(&["client", "rotate-secret", &gone_id, "--grace", "1h", "--json"], None);
    let rotated: Value = serde_json::from_str(rotated.trim()).expect("rotate-secret --json");
    let rotated_secret = rotated["client_secret"].as_str().expect("client_secret").to_owned();
    s.cli_ok(&["client", "delete", &gone_id], None);
    let key_out = s.cli_ok(&["apikey", "create", "--username", "alice", "--json"], None);
    let key: Value = serde_json::from_str(key_out.trim()).expect("apikey create --json");
    let (key_id, api_key) = (key["id"].as_str().unwrap().to_owned(), key["key"].as_str().unwrap().to_owned());
    let totp = s.cli_ok(&["user", "totp", "enable", "--username", "bob", "--json"], None);
    let totp_secret = serde_json::from_str::<Value>(totp.trim()).unwrap()["secret"].as_str().unwrap().to_owned();
    let code = tessera_core::totp::code_at(&base32_decode(&totp_secret), now());
    let confirmed = s.cli_ok(&["user", "totp", "confirm", "--username", "bob", "--code", &code, "--json"], None);
    let again = s.cli_ok(&["user", "totp", "recovery-codes", "--username", "bob", "--json"], None);
    let mut recovery_codes = Vec::new();
    for out in [confirmed, again] {
        let codes: Value = serde_json::from_str(out.trim()).expect("recovery codes --json");
        recovery_codes.extend(
            codes["recovery_codes"].as_array().expect("codes").iter().map(|c| c.as_str().expect("code").to_owned()),
        );
    }
    assert_eq!(recovery_codes.len(), 20, "ten at the confirmation, ten new ones");
    s.cli_ok(&["user", "totp", "disable", "--username", "bob"], None);
    // A change the operator may not make: refused, and recorded as such.
    let o = s.cli(&["user", "create", "--username", "alice", "--password-stdin"], Some("another long password\n"));
    assert!(!o.status.success(), "alice exists already");

    // ---- HTTP traffic
    let cc_token = s.cc_token("default", &cc_id, &cc_secret, None).await;
    let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&cc_id, "wrong-secret")).await;
    r.assert_error(401, "invalid_client", "a wrong client secret");
    let form = [("grant_type", "password"), ("username", "alice"), ("password", "not her password")];
    s.token("default", &form, Auth::Basic(&pw_id, &pw_secret)).await.assert_error(400, "invalid_grant", "wrong pw");
    let t = s.password_token("default", &pw_id, &pw_secret, "alice", ALICE_PW, None).await;
    let (access, first_rt) =
        (t["access_token"].as_str().unwrap().to_owned(), t["refresh_token"].as_str().unwrap().to_owned());
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", first_rt.as_str())];
    // The caller names its request: the id is kept with every event of it.
    let r = s
        .call(
            "POST",
            "/oauth2/token",
            &[
                ("authorization", &basic(&pw_id, &pw_secret)),
                ("content-type", "application/x-www-form-urlencoded"),
                ("x-request-id", "req-audit-42"),
            ],
            Some(&format!("grant_type=refresh_token&refresh_token={}", first_rt)),
        )
        .await;
    let second = r.assert_ok("refresh")["refresh_token"].as_str().unwrap().to_owned();
    let r = s.token("default", &refresh, Auth::Basic(&pw_id, &pw_secret)).await;
    r.assert_error(400, "invalid_grant", "a rotated refresh token presented again");
    assert_eq!(s.revoke("default", &cc_token, Auth::Basic(&cc_id, &cc_secret)).await.status, 200);
    let from_key = ica(s, &[("x-api-key", &api_key)]).await;
    from_key.assert_ok("ICA with an API key");
    let r = docspace(s, &[("authorization", &bearer("tsk_not_a_key"))]).await;
    assert!(r.status >= 400, "a bad key at DocSpace: {}", r.text);
    s.cli_ok(&["apikey", "revoke", &key_id], None);
    // A person approves a device at the verification page.
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let device = s.cli_ok(&["client", "create", "--name", "tv", "--grant", grant, "--public", "--json"], None);
    let device_id = serde_json::from_str::<Value>(device.trim()).unwrap()["client_id"].as_str().unwrap().to_owned();
    let r = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&device_id)).await;
    let user_code = r.assert_ok("device authorization")["user_code"].as_str().expect("user_code").to_owned();
    let form =
        [("user_code", user_code.as_str()), ("username", "alice"), ("password", ALICE_PW), ("action", "approve")];
    let approved = reqwest::Client::new().post(s.url("default", "/device")).form(&form).send().await.expect("post");
    assert_eq!(approved.status().as_u16(), 200, "the device approved");

    // Every kind of event, each with a success but the two that record only failures (a
    // client's successful authentication shows as the token it got; a reuse is refused).
    let failures_only = ["client_auth", "token_reuse"];
    let mut want: Vec<(&str, &str)> = EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .map(|k| (k, if failures_only.contains(&k) { "failure" } else { "success" }))
        .collect();
    want.extend([("user_create", "failure"), ("sign_in", "failure")]);
    let rows = rows_with(s, &want);

    // Who and what, for a few of them.
    let find = |event: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        rows.iter().find(|r| r["event"] == event && pred(r)).cloned().unwrap_or_else(|| panic!("no {event} row"))
    };
    let cc = find("token_issue", &|r| r["client_id"] == cc_id.as_str());
    assert_eq!((&cc["actor_kind"], &cc["actor"]), (&Value::from("client"), &Value::from(cc_id.as_str())), "{cc}");
    let cc_jti = decode_jwt(&cc_token).claims["jti"].as_str().unwrap().to_owned();
    assert!(cc["detail"].as_str().unwrap().contains(&cc_jti), "the jti names the token: {cc}");
    assert_eq!(cc["address"], "127.0.0.1", "{cc}");
    assert!(cc["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{cc}");
    let failed = find("sign_in", &|r| r["outcome"] == "failure" && r["subject"] == "alice");
    assert_eq!(failed["actor_kind"], "anonymous", "{failed}");
    assert_eq!(failed["detail"], "method=password error=invalid_grant", "{failed}");
    assert_eq!(failed["address"], "127.0.0.1", "{failed}");
    let by_key = find("sign_in", &|r| r["actor_kind"] == "api_key");
    assert_eq!((&by_key["actor"], &by_key["subject"]), (&Value::from(key_id.as_str()), &Value::from("alice")));
    let named = find("token_refresh", &|r| r["outcome"] == "success");
    assert_eq!(named["request_id"], "req-audit-42", "{named}");
    let reuse = find("token_reuse", &|_| true);
    assert_eq!(reuse["subject"], "alice", "{reuse}");
    let cli = find("user_disable", &|_| true);
    assert_eq!(
        (&cli["actor_kind"], &cli["subject"], &cli["address"]),
        (&Value::from("operator"), &Value::from("bob"), &Value::Null)
    );
    let bad_client = find("client_auth", &|_| true);
    assert_eq!(bad_client["subject"], cc_id.as_str());

    // Nothing secret in any row: no password, client secret, refresh token, API key, TOTP
    // secret, nor any access token whole.
    let text = serde_json::to_string(&rows).unwrap();
    let admin_pw = s.admin_password.clone().unwrap_or_else(|| "no admin password".into());
    for secret in [
        ALICE_PW,
        BOB_PW,
        "not her password",
        "wrong-secret",
        &admin_pw,
        &cc_secret,
        &pw_secret,
        &gone_secret,
        &first_rt,
        &second,
        &api_key,
        &totp_secret,
        &access,
        &cc_token,
        from_key.json["token"].as_str().unwrap(),
        BOB_NEW_PW,
        &rotated_secret,
    ]
    .into_iter()
    .chain(recovery_codes.iter().map(String::as_str))
    {
        assert!(!text.contains(secret), "a secret is in the audit rows: {secret}");
    }
    for (i, part) in access.split('.').enumerate() {
        assert!(!text.contains(part), "part {i} of an access token is in the audit rows");
    }

    // Paging: newest first, every row once, whatever the page size.
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "pages hold ids newest first, no repeats: {ids:?}");
    let big = events(&page(s, &["--limit", "500"]));
    assert_eq!(big.len(), rows.len(), "one page of 500 holds what pages of 7 held");

    // Filters.
    let failures = events(&page(s, &["--event", "sign_in", "--outcome", "failure", "--limit", "500"]));
    assert!(!failures.is_empty());
    assert!(failures.iter().all(|r| r["event"] == "sign_in" && r["outcome"] == "failure"), "{failures:?}");
    let by_client = events(&page(s, &["--actor", &cc_id, "--limit", "500"]));
    assert!(!by_client.is_empty() && by_client.iter().all(|r| r["actor"] == cc_id.as_str()));
    let about_bob = events(&page(s, &["--subject", "bob", "--limit", "500"]));
    assert!(about_bob.iter().any(|r| r["event"] == "totp_enroll"), "{about_bob:?}");
    let future = events(&page(s, &["--since", &format!("@{}", now() + 3600)]));
    assert!(future.is_empty(), "nothing happened in the future");
    let recent = events(&page(s, &["--since", "1h", "--limit", "500"]));
    assert_eq!(recent.len(), rows.len());
    // A bad cursor or filter is refused with the reason.
    let o = s.cli(&["audit", "--cursor", "not-a-cursor"], None);
    assert_cli_error(&o, "a bad cursor");
    let o = s.cli(&["audit", "--event", "no_such_event"], None);
    assert_cli_error(&o, "an unknown event");
}

#[tokio::test]
async fn every_event_is_recorded_on_sqlite() {
    let s = TestServer::start().await;
    every_event_is_recorded_without_a_secret(&s).await;
}

#[tokio::test]
async fn every_event_is_recorded_on_postgres() {
    let schema = Schema::new("audit");
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).expect("random");
    let key = base64::engine::general_purpose::STANDARD.encode(key);
    let env = [("TESSERA_DATABASE_URL", schema.url.as_str()), ("TESSERA_MASTER_KEY", key.as_str())];
    let s = TestServer::start_with_env(&env).await;
    every_event_is_recorded_without_a_secret(&s).await;
}

#[tokio::test]
async fn the_trail_is_for_administrators_of_the_tenant() {
    let s = TestServer::start().await;
    s.cli_ok(
        &["user", "create", "--username", "alice", "--password-stdin", "--role", "admin"],
        Some("alice-password-1\n"),
    );
    s.create_user("default", "carol", "carol's long password");
    s.create_tenant("other", &[]);
    // Rows of one tenant are not listed at another.
    let rows = rows_with(&s, &[("user_create", "success")]);
    assert!(rows.iter().all(|r| r["tenant"] == "default"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let other = events(&page(&s, &["--tenant", "other"]));
        if !other.is_empty() {
            assert!(other.iter().all(|r| r["tenant"] == "other" && r["event"] == "tenant_create"), "{other:?}");
            break;
        }
        assert!(Instant::now() < deadline, "tenant_create of `other` not written");
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = s.cli(&["audit", "--tenant", "nowhere"], None);
    assert_cli_error(&o, "an unknown tenant");
}

#[tokio::test]
async fn rows_older_than_the_retention_are_purged() {
    let mut s = TestServer::start_with_env(&[("TESSERA_AUDIT_RETENTION_DAYS", "30")]).await;
    s.create_user("default", "dora", "dora's long password");
    rows_with(&s, &[("user_create", "success")]);
    s.stop();
    // Rows as they would be after 31 days, and after 29, written straight to the store.
    let db = s.data_dir.join("tessera.db");
    let backend = tessera_store::open(&db.to_string_lossy(), &Default::default()).await.expect("open the store");
    let old = |days: i64, who: &str| {
        let mut e = tessera_core::audit::AuditEvent::new(
            "default",
            tessera_core::audit::EventKind::SignIn,
            tessera_core::audit::ActorKind::User,
            Some(who),
        );
        e.at = now() - days * 86_400;
        e
    };
    backend.store().audit_insert(&[old(31, "expired"), old(29, "kept")]).await.expect("insert");
    drop(backend);
    s.restart().await;
    // The purge loop runs at start, then every minute.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = all_rows(&s);
        let actors: Vec<&Value> = rows.iter().map(|r| &r["actor"]).collect();
        if !actors.contains(&&Value::from("expired")) {
            assert!(actors.contains(&&Value::from("kept")), "a row within the retention is kept: {rows:?}");
            assert!(rows.iter().any(|r| r["subject"] == "dora"), "today's rows are kept: {rows:?}");
            break;
        }
        assert!(Instant::now() < deadline, "a row older than the retention is still there");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_shutdown_flushes() {
    // A queue of 3, written only at shutdown: the fourth event on is dropped, every token
    // request is still answered.
    let env = [("TESSERA_AUDIT_QUEUE", "3"), ("TESSERA_AUDIT_FLUSH_MS", "3600000")];
    let mut s = TestServer::start_with_env(&env).await;
    let (id, secret) = s.create_client("default", "client_credentials", None);
    for _ in 0..10 {
        s.cc_token("default", &id, &secret, None).await;
    }
    let m = s.get("/metrics").await;
    let dropped = m
        .text
        .lines()
        .find_map(|l| l.strip_prefix("tessera_audit_dropped_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no tessera_audit_dropped_total in:\n{}", m.text));
    // The writer's first round (at start) wrote bootstrap's events; three tokens filled the
    // queue, the other seven were dropped.
    assert!(dropped >= 7.0, "dropped {dropped}");
    // Nothing was written yet; a graceful stop writes what is queued.
    let before = all_rows(&s);
    assert!(!before.iter().any(|r| r["event"] == "token_issue"), "written before shutdown: {before:?}");
    assert!(s.stop().is_some(), "graceful stop");
    let after = all_rows(&s);
    assert!(after.iter().any(|r| r["event"] == "token_issue" && r["client_id"] == id.as_str()), "{after:?}");
}
