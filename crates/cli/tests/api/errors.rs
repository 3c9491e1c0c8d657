//! Token endpoint errors: RFC 6749 section 5.2 codes and status codes.

use crate::harness::{Auth, TestServer};

const PW: &str = "correct horse battery";

#[tokio::test]
async fn wrong_secret_is_invalid_client() {
    let s = TestServer::start().await;
    let (id, _secret) = s.create_client("default", "client_credentials", Some("read"));
    let form = [("grant_type", "client_credentials")];

    let r = s.token("default", &form, Auth::Basic(&id, "tsc_wrong")).await;
    r.assert_error(401, "invalid_client", "wrong secret via Basic");
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(
        www.to_ascii_lowercase().starts_with("basic"),
        "401 after Basic needs WWW-Authenticate: Basic, got {www:?}"
    );

    let r = s.token("default", &form, Auth::Post(&id, "tsc_wrong")).await;
    r.assert_error(401, "invalid_client", "wrong secret via post");

    // A confidential client that sends no secret at all is not authenticated either.
    let r = s.token("default", &form, Auth::Public(&id)).await;
    r.assert_error(401, "invalid_client", "confidential client without secret");

    let r = s.token("default", &form, Auth::None).await;
    r.assert_error(401, "invalid_client", "no client authentication at all");
}

#[tokio::test]
async fn unknown_client_is_invalid_client() {
    let s = TestServer::start().await;
    let form = [("grant_type", "client_credentials")];
    let r = s.token("default", &form, Auth::Basic("no-such-client", "tsc_whatever")).await;
    r.assert_error(401, "invalid_client", "unknown client via Basic");
    assert!(r.header("www-authenticate").is_some(), "401 after Basic needs WWW-Authenticate");
    let r = s.token("default", &form, Auth::Post("no-such-client", "tsc_whatever")).await;
    r.assert_error(401, "invalid_client", "unknown client via post");
}

#[tokio::test]
async fn wrong_password_is_invalid_grant() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "password", Some("read"));
    s.create_user("default", "alice", PW);
    let auth = Auth::Basic(&id, &secret);
    let r = s
        .token("default", &[("grant_type", "password"), ("username", "alice"), ("password", "not the password")], auth)
        .await;
    r.assert_error(400, "invalid_grant", "wrong password");
    let r = s.token("default", &[("grant_type", "password"), ("username", "nobody"), ("password", PW)], auth).await;
    r.assert_error(400, "invalid_grant", "unknown user");
    // And the right password still works (no lock-out after two failures).
    s.password_token("default", &id, &secret, "alice", PW, None).await;
}

#[tokio::test]
async fn disabled_user_is_invalid_grant() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "password", Some("read"));
    s.create_user("default", "carol", PW);
    s.password_token("default", &id, &secret, "carol", PW, None).await;
    s.disable_user("default", "carol");
    let r = s
        .token(
            "default",
            &[("grant_type", "password"), ("username", "carol"), ("password", PW)],
            Auth::Basic(&id, &secret),
        )
        .await;
    r.assert_error(400, "invalid_grant", "disabled user");
}

#[tokio::test]
async fn grant_not_allowed_for_client_is_unauthorized_client() {
    let s = TestServer::start().await;
    s.create_user("default", "alice", PW);
    let (cc_id, cc_secret) = s.create_client("default", "client_credentials", Some("read"));
    let r = s
        .token(
            "default",
            &[("grant_type", "password"), ("username", "alice"), ("password", PW)],
            Auth::Basic(&cc_id, &cc_secret),
        )
        .await;
    r.assert_error(400, "unauthorized_client", "password grant by a client_credentials-only client");

    let (pw_id, pw_secret) = s.create_client("default", "password", Some("read"));
    let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&pw_id, &pw_secret)).await;
    r.assert_error(400, "unauthorized_client", "client_credentials by a password-only client");
}

#[tokio::test]
async fn unsupported_grant_type() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    for gt in ["urn:example:params:oauth:grant-type:nope", "magic"] {
        let r = s.token("default", &[("grant_type", gt)], Auth::Basic(&id, &secret)).await;
        r.assert_error(400, "unsupported_grant_type", gt);
    }
}

#[tokio::test]
async fn missing_parameters_are_invalid_request() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials,password,refresh_token", Some("read"));
    s.create_user("default", "alice", PW);
    let auth = Auth::Basic(&id, &secret);
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("no grant_type", &[("scope", "read")]),
        ("password grant without password", &[("grant_type", "password"), ("username", "alice")]),
        ("password grant without username", &[("grant_type", "password"), ("password", PW)]),
        ("refresh_token grant without refresh_token", &[("grant_type", "refresh_token")]),
    ];
    for (what, form) in cases {
        let r = s.token("default", form, auth).await;
        r.assert_error(400, "invalid_request", what);
        assert!(
            r.json["error_description"].is_string() || r.json.get("error_description").is_none(),
            "{what}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    // RFC 6749 3.2: parameters MUST NOT be included more than once.
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read write"));
    let r = s
        .token(
            "default",
            &[("grant_type", "client_credentials"), ("scope", "read"), ("scope", "write")],
            Auth::Basic(&id, &secret),
        )
        .await;
    r.assert_error(400, "invalid_request", "scope given twice");
}

#[tokio::test]
async fn oversized_or_malformed_forms_are_refused() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", None);
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        http.post(s.url("default", "/oauth2/token"))
            .basic_auth(&id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    // Over the 64 KiB body limit: 413, and the server goes on answering.
    let mut big = b"grant_type=client_credentials&pad=".to_vec();
    big.resize(100 * 1024, b'a');
    let r = post(big).await.unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // The rest of the body is left unread, so the connection is not kept for another request.
    assert_eq!(r.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "invalid_request", "413 in the RFC 6749 error format: {v}");
    // Not UTF-8, raw or once percent-decoded: invalid_request.
    for body in [&b"grant_type=client_credentials&x=\xff"[..], b"grant_type=client_credentials&x=%FF"] {
        let r = post(body.to_vec()).await.unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_request", "{v}");
    }
    // Too many parameters: invalid_request.
    let many: Vec<String> = (0..100).map(|i| format!("p{i}=1")).collect();
    let r = post(format!("grant_type=client_credentials&{}", many.join("&")).into_bytes()).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // A well-formed request still gets its token.
    let r = post(b"grant_type=client_credentials".to_vec()).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn scope_outside_client_is_invalid_scope() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials,password", Some("read write"));
    s.create_user("default", "alice", PW);
    let auth = Auth::Basic(&id, &secret);
    for scope in ["admin", "read admin"] {
        let r = s.token("default", &[("grant_type", "client_credentials"), ("scope", scope)], auth).await;
        r.assert_error(400, "invalid_scope", &format!("client_credentials scope {scope:?}"));
        let r = s
            .token(
                "default",
                &[("grant_type", "password"), ("username", "alice"), ("password", PW), ("scope", scope)],
                auth,
            )
            .await;
        r.assert_error(400, "invalid_scope", &format!("password scope {scope:?}"));
    }
}

#[tokio::test]
async fn deleted_client_is_refused_within_the_sync_interval() {
    // The CLI runs in another process: the server learns of the deletion from the store's
    // change feed, polled every 250 ms. Allow four intervals, then it must be refused.
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    s.cc_token("default", &id, &secret, None).await;
    s.cli_ok(&["client", "delete", "--tenant", "default", &id], None);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&id, &secret)).await;
    r.assert_error(401, "invalid_client", "client deleted while the server runs");
}

#[tokio::test]
async fn repeated_wrong_passwords_are_rate_limited_even_with_the_right_one() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "3")]).await;
    s.create_user("default", "erin", "erin's long password");
    s.create_user("default", "frank", "frank's long password");
    let (id, secret) = s.create_client("default", "password", None);
    let wrong = [("grant_type", "password"), ("username", "erin"), ("password", "not the password")];
    for _ in 0..3 {
        s.token("default", &wrong, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", "wrong");
    }
    let right = [("grant_type", "password"), ("username", "erin"), ("password", "erin's long password")];
    let r = s.token("default", &right, Auth::Basic(&id, &secret)).await;
    r.assert_error(429, "rate_limited", "locked after 3 failures");
    let wait: i64 = r.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!(wait > 0 && wait <= 300, "{wait}");
    // Another user is not affected.
    let other = [("grant_type", "password"), ("username", "frank"), ("password", "frank's long password")];
    s.token("default", &other, Auth::Basic(&id, &secret)).await.assert_ok("other user");
}

#[tokio::test]
async fn wrong_passwords_from_one_address_are_rate_limited_across_users() {
    // The limit per address only counts if the server knows the client's address.
    let s = TestServer::start_with_env(&[
        ("TESSERA_LOGIN_FAILURES_PER_USER", "100"),
        ("TESSERA_LOGIN_FAILURES_PER_ADDRESS", "3"),
    ])
    .await;
    s.create_user("default", "gina", "gina's long password");
    let (id, secret) = s.create_client("default", "password", None);
    for user in ["hal", "ida", "jon"] {
        let wrong = [("grant_type", "password"), ("username", user), ("password", "not the password")];
        s.token("default", &wrong, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", user);
    }
    let right = [("grant_type", "password"), ("username", "gina"), ("password", "gina's long password")];
    let r = s.token("default", &right, Auth::Basic(&id, &secret)).await;
    r.assert_error(429, "rate_limited", "this address failed 3 times, for other users");
}

#[tokio::test]
async fn oversized_bodies_get_each_fronts_error_format() {
    let s = TestServer::start().await;
    let mut big = br#"{"grant_type":"password","pad":""#.to_vec();
    big.resize(100 * 1024, b'a');
    big.extend_from_slice(b"\"}");
    let r = s
        .http
        .post(format!("{}/v3/oauth2/tokens", s.base))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error", "413 in the Tapis envelope: {v}");
    assert!(v["message"].as_str().unwrap_or_default().contains("KiB"), "{v}");
}
