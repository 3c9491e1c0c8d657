//! Secret hygiene: no credential in the server's log at its most verbose level, and a master
//! key file that others can read is refused.

use crate::fronts::*;
use crate::harness::*;
use serde_json::{Value, json};

#[tokio::test]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    let s = TestServer::start_with_env(&[("RUST_LOG", "trace"), ("TESSERA_DEVICE_INTERVAL", "1")]).await;
    let at = world(&s, "default");
    let (id, secret) = at.client.clone();
    let auth = Auth::Basic(&id, &secret);
    let mut secrets: Vec<String> = vec![PW.to_owned(), secret.clone(), s.admin_password.clone().expect("bootstrap")];
    // Every kind of token, refreshed, exchanged, introspected, revoked.
    let issued = s.password_token("default", &id, &secret, "alice", PW, None).await;
    let refresh = issued["refresh_token"].as_str().expect("refresh").to_owned();
    let rotated = s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", &refresh)], auth).await;
    let rotated = rotated.assert_ok("refresh").clone();
    secrets.extend(
        [&issued["access_token"], &rotated["access_token"], &rotated["refresh_token"]]
            .map(|v| v.as_str().expect("token").to_owned()),
    );
    secrets.push(refresh.clone());
    for kind in KINDS {
        let token = genuine(&s, &at, kind).await;
        for route in ROUTES {
            present(&s, &at, route, &token).await;
        }
        secrets.push(token);
    }
    // A wrong password and a wrong secret are secrets too (a typo of the real one).
    let wrong = [("grant_type", "password"), ("username", "alice"), ("password", "alice-password-2")];
    s.token("default", &wrong, auth).await.assert_error(400, "invalid_grant", "wrong password");
    secrets.push("alice-password-2".into());
    s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&id, "tsc_wrongwrongwrong")).await;
    secrets.push("tsc_wrongwrongwrong".into());
    // An API key, at ICA and DocSpace, and a Tapis legacy token.
    let out = s.cli_ok(&["apikey", "create", "--username", "alice", "--json"], None);
    let key = serde_json::from_str::<Value>(out.trim()).expect("json")["key"].as_str().expect("key").to_owned();
    let ica = s.call("POST", "/ica/rest/api/tokens", &[("x-api-key", &key)], None).await;
    secrets.push(ica.assert_ok("ICA with the key")["token"].as_str().expect("token").to_owned());
    let doc = s.call("GET", "/api/2.0/security/oauth2/token", &[("apikeybearer", &key)], None).await;
    secrets.push(doc.assert_ok("DocSpace with the key")["response"].as_str().expect("token").to_owned());
    secrets.push(key);
    let tapis = genuine(&s, &at, Kind::Standard).await;
    let body = json!({"access_token": tapis}).to_string();
    let v2 = s
        .call(
            "POST",
            "/v3/oauth2/v2/token",
            &[("x-tapis-token", &tapis), ("content-type", "application/json")],
            Some(&body),
        )
        .await;
    secrets.push(v2.assert_ok("Tapis v2")["result"]["access_token"].as_str().expect("legacy").to_owned());
    secrets.push(tapis);
    // The device flow.
    let device = s.create_public_client("default", "urn:ietf:params:oauth:grant-type:device_code", None);
    let d = s.post_form("default", "/oauth2/device_authorization", &[], Auth::Public(&device)).await;
    let d = d.assert_ok("device").clone();
    let code = d["device_code"].as_str().expect("device_code").to_owned();
    let user_code = d["user_code"].as_str().expect("user_code").to_owned();
    let page = [("user_code", user_code.as_str()), ("username", "alice"), ("password", PW), ("action", "approve")];
    let r = s.http.post(s.url("default", "/device")).form(&page).send().await.expect("device page");
    assert_eq!(r.status().as_u16(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let poll = [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", code.as_str())];
    let t = s.token("default", &poll, Auth::Public(&device)).await;
    secrets.push(t.assert_ok("device token")["access_token"].as_str().expect("token").to_owned());
    secrets.push(code);
    // Revocations, and a metrics scrape.
    s.revoke("default", rotated["refresh_token"].as_str().expect("rt"), auth).await;
    s.get("/metrics").await;

    let log = s.server_log();
    assert!(log.lines().count() > 50, "the server did log at trace level: {log}");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret reached the log: {secret:?}");
        // Its signature part alone (a JWT's) or its random part (an opaque token's) neither.
        let tail = secret.rsplit(['.', '_']).next().unwrap_or(secret);
        if tail.len() >= 16 {
            assert!(!log.contains(tail), "part of a secret reached the log: {tail:?}");
        }
    }
}

#[tokio::test]
async fn a_master_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = TestServer::start().await;
    s.stop();
    let key = s.data_dir.join("master.key");
    let mode = std::fs::metadata(&key).expect("key file").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file is made 0600");
    for mode in [0o640, 0o604, 0o660, 0o666, 0o620] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let out = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&s.data_dir)
            .env_remove("TESSERA_MASTER_KEY")
            .output()
            .expect("run serve");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "mode {mode:o}: serve started with a shared key file");
        assert!(stderr.contains("master key file") && stderr.contains("chmod 600"), "mode {mode:o}: {stderr}");
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).expect("chmod");
    s.restart().await;
    assert_eq!(s.get("/healthz").await.status, 200, "a 0400 key file is accepted");
}
