//! Hostile input at every front: SQL-injection and path strings in every text field, deeply
//! nested and duplicate-key JSON, invalid UTF-8, and floods of headers and query parameters.
//! Each is refused in the front's own way (never a 5xx, never a success), and the server
//! and its data come through intact.

use crate::fronts::*;
use crate::harness::*;
use serde_json::json;

const HOSTILE: [&str; 12] = [
    "' OR '1'='1",
    "alice' --",
    "alice'; DROP TABLE users; --",
    "\" OR \"\"=\"",
    "1; SELECT pg_sleep(10)",
    "alice\0admin",
    "../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "C:\\Windows\\win.ini",
    "%00",
    "${jndi:ldap://127.0.0.1:9/a}",
    "{{7*7}}<script>alert(1)</script>",
];

/// Asserts a refusal in a front's format: a 4xx with a JSON body (or a 404 for a route
/// that does not exist), never a success or a server error.
#[track_caller]
fn refused(r: &Resp, what: &str) {
    assert!((400..500).contains(&r.status), "{what}: expected a 4xx, got {} {}", r.status, r.text);
    if r.status != 404 {
        assert!(r.json.is_object(), "{what}: the refusal is not JSON: {}", r.text);
    }
}

/// The server is up, and alice still signs in: nothing was dropped or changed.
async fn intact(s: &TestServer, at: &At) {
    assert_eq!(s.get("/healthz").await.status, 200);
    genuine(s, at, Kind::Standard).await;
    genuine(s, at, Kind::SftpgoUser).await;
}

#[tokio::test]
async fn sql_and_path_strings_in_every_text_field_of_every_front_are_refused() {
    // Hundreds of failed sign-ins from one address: the brute-force limits would answer 429
    // to most of them, which would hide how the fields themselves are handled.
    let s = TestServer::start_with_env(&[
        ("TESSERA_LOGIN_FAILURES_PER_USER", "100000"),
        ("TESSERA_LOGIN_FAILURES_PER_ADDRESS", "100000"),
    ])
    .await;
    let at = world(&s, "default");
    let (id, secret) = at.client.clone();
    let auth = Auth::Basic(&id, &secret);
    let alice = genuine(&s, &at, Kind::Standard).await;
    for bad in HOSTILE {
        let w = |front: &str| format!("{front} with {bad:?}");
        let tsr = format!("tsr_{bad}");
        // Standard endpoints: every form field, and the tenant in the path.
        let forms: Vec<Vec<(&str, &str)>> = vec![
            vec![("grant_type", "password"), ("username", bad), ("password", PW)],
            vec![("grant_type", "password"), ("username", "alice"), ("password", bad)],
            vec![("grant_type", "password"), ("username", "alice"), ("password", PW), ("scope", bad)],
            vec![("grant_type", "password"), ("username", "alice"), ("password", "x"), ("otp", bad)],
            vec![("grant_type", "refresh_token"), ("refresh_token", bad)],
            vec![("grant_type", "refresh_token"), ("refresh_token", &tsr)],
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", bad)],
            vec![("grant_type", EXCHANGE), ("subject_token", bad), ("subject_token_type", ACCESS)],
            vec![("grant_type", EXCHANGE), ("subject_token", &alice), ("subject_token_type", bad)],
            vec![("grant_type", "password"), ("username", "alice"), ("password", PW), ("resource", bad)],
            vec![("grant_type", bad)],
        ];
        for form in &forms {
            refused(&s.token("default", form, auth).await, &w(&format!("token endpoint {form:?}")));
        }
        refused(
            &s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(bad, "x")).await,
            &w("client id"),
        );
        refused(&s.token("default", &[("grant_type", "client_credentials")], Auth::Post(&id, bad)).await, &w("secret"));
        let r = s.post_form("default", "/oauth2/introspect", &[("token", bad)], auth).await;
        assert_eq!(r.json, json!({"active": false}), "{}", w("introspection"));
        assert_eq!(s.revoke("default", bad, auth).await.status, 200, "{}", w("revocation (RFC 7009: 200)"));
        let enc: String = percent_encode(bad);
        let r = s.call("POST", &format!("/t/{enc}/oauth2/token"), &[], Some("grant_type=client_credentials")).await;
        refused(&r, &w("tenant in the path"));
        // Tapis: every member of the token request, the path parameters, revocation.
        for member in ["username", "password", "client_id", "client_key", "grant_type", "refresh_token", "device_code"]
        {
            let mut body = json!({"grant_type": "password", "username": "alice", "password": PW});
            body[member] = json!(bad);
            if member == "refresh_token" || member == "device_code" {
                body["grant_type"] = json!(member);
            }
            let body = body.to_string();
            let r = s.call("POST", "/v3/oauth2/tokens", &[("content-type", "application/json")], Some(&body)).await;
            refused(&r, &w(&format!("Tapis tokens.{member}")));
        }
        let r = s.call("GET", &format!("/v3/oauth2/profiles/{enc}"), &[("x-tapis-token", &alice)], None).await;
        refused(&r, &w("Tapis profile"));
        let r = s.call("GET", &format!("/v3/oauth2/clients/{enc}"), &[("x-tapis-token", &alice)], None).await;
        refused(&r, &w("Tapis client"));
        let body = json!({"client_id": bad}).to_string();
        let r = s.call("POST", "/v3/oauth2/device/code", &[("content-type", "application/json")], Some(&body)).await;
        refused(&r, &w("Tapis device code"));
        if bad.contains('\0') {
            // Not a header value at all (HTTP forbids it): invalid_utf8_anywhere_is_refused
            // sends such bytes raw.
            continue;
        }
        let r = s.call("GET", "/v3/oauth2/userinfo", &[("x-tapis-token", bad)], None).await;
        refused(&r, &w("Tapis token"));
        // SFTPGo, ICA, DocSpace: Basic user and password, one-time codes, keys, tenant.
        for (user, pw) in [(bad, PW), ("alice", bad)] {
            let b = basic(user, pw);
            refused(&s.call("GET", "/api/v2/token", &[("authorization", &b)], None).await, &w("SFTPGo Basic"));
            refused(
                &s.call("GET", "/api/v2/user/token", &[("authorization", &b)], None).await,
                &w("SFTPGo user Basic"),
            );
            refused(&s.call("POST", "/ica/rest/api/tokens", &[("authorization", &b)], None).await, &w("ICA Basic"));
            let r = s.call("GET", "/api/2.0/security/oauth2/token", &[("authorization", &b)], None).await;
            refused(&r, &w("DocSpace Basic"));
        }
        let b = basic("alice", "wrong-password-1");
        let r = s.call("GET", "/api/v2/user/token", &[("authorization", &b), ("x-sftpgo-otp", bad)], None).await;
        refused(&r, &w("SFTPGo OTP"));
        refused(&s.call("POST", "/ica/rest/api/tokens", &[("x-api-key", bad)], None).await, &w("ICA API key"));
        let key = format!("tsk_{bad}");
        refused(&s.call("POST", "/ica/rest/api/tokens", &[("x-api-key", &key)], None).await, &w("ICA tsk_ key"));
        let r = s
            .call(
                "POST",
                &format!("/ica/rest/api/tokens?tenant={enc}"),
                &[("authorization", &basic("alice", PW))],
                None,
            )
            .await;
        refused(&r, &w("ICA tenant"));
        let r = s.call("GET", "/api/2.0/security/oauth2/token", &[("apikeybearer", &key)], None).await;
        refused(&r, &w("DocSpace ApiKeyBearer"));
        let cookie = format!("asc_auth_key={bad}");
        let r = s.call("GET", "/api/2.0/security/oauth2/token", &[("cookie", &cookie)], None).await;
        refused(&r, &w("DocSpace cookie"));
        for path in ["/api/v2/logout", "/api/v2/user/logout", "/ica/rest/api/tokens:refresh"] {
            let method = if path.starts_with("/ica") { "POST" } else { "GET" };
            refused(&s.call(method, path, &[("authorization", &bearer(bad))], None).await, &w(path));
        }
    }
    intact(&s, &at).await;
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn nested_and_duplicate_key_json_is_refused() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    let json_post = |path: &'static str, body: String| {
        let s = &s;
        async move { s.call("POST", path, &[("content-type", "application/json")], Some(&body)).await }
    };
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let deep_obj = |n: usize| format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
    for (what, body) in [
        ("arrays nested 30 000 deep", deep(30_000)),
        ("objects nested 10 000 deep", deep_obj(10_000)),
        ("a member nested 5 000 deep", format!("{{\"grant_type\":\"password\",\"username\":{}}}", deep(5_000))),
        ("duplicate username", r#"{"grant_type":"password","username":"nobody","username":"alice","password":"alice-password-1"}"#.into()),
        ("duplicate password", r#"{"grant_type":"password","username":"alice","password":"x","password":"alice-password-1"}"#.into()),
        ("duplicate grant_type", r#"{"grant_type":"refresh_token","grant_type":"password","username":"alice","password":"alice-password-1"}"#.into()),
        ("a number as username", r#"{"grant_type":"password","username":1,"password":"alice-password-1"}"#.into()),
        ("not JSON", "{\"grant_type\":".into()),
        ("a lone surrogate escape", r#"{"grant_type":"password","username":"\udc00","password":"x"}"#.into()),
    ] {
        let r = json_post("/v3/oauth2/tokens", body.clone()).await;
        assert_eq!(r.status, 400, "Tapis tokens, {what}: {}", r.text);
        assert_eq!(r.json["status"], "error", "Tapis' error envelope, {what}: {}", r.text);
        let r = json_post("/v3/oauth2/tokens/revoke", body.clone()).await;
        assert_eq!(r.status, 400, "Tapis revoke, {what}: {}", r.text);
        let r = json_post("/v3/oauth2/device/code", body).await;
        assert_eq!(r.status, 400, "Tapis device code, {what}: {}", r.text);
    }
    intact(&s, &at).await;
}

/// Sends raw bytes on a fresh connection; the status of the answer, if any came.
fn raw(s: &TestServer, request: &[u8]) -> Option<u16> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", s.port)).ok()?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(20))).ok()?;
    // The server may answer and close before reading it all: write errors are fine.
    let _ = conn.write_all(request);
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test]
async fn invalid_utf8_anywhere_is_refused() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    let basic_bytes = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(b"alice\xff:\xfe\xfdpassword")
    };
    let (id, secret) = at.client.clone();
    let cred = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    };
    let requests: Vec<(&str, Vec<u8>)> = vec![
        ("form body", form_bytes(&cred, b"grant_type=password&username=\xff\xfe&password=\xc3\x28xyz")),
        ("percent-encoded form body", form_req(&cred, "grant_type=password&username=%ff%fe&password=%c3%28")),
        ("JSON body", json_req(b"{\"grant_type\":\"password\",\"username\":\"\xff\xfe\",\"password\":\"x\"}")),
        ("Basic credentials", get_req("/api/v2/user/token", &format!("authorization: Basic {basic_bytes}"))),
        ("Basic at ICA", post_req("/ica/rest/api/tokens", &format!("authorization: Basic {basic_bytes}"))),
        ("Basic at DocSpace", get_req("/api/2.0/security/oauth2/token", &format!("authorization: Basic {basic_bytes}"))),
        ("a header value", bytes_req(b"GET /v3/oauth2/userinfo HTTP/1.1\r\nhost: x\r\nx-tapis-token: \xff\xfe\xfd\r\nconnection: close\r\n\r\n")),
        ("a bearer token", bytes_req(b"GET /api/v2/logout HTTP/1.1\r\nhost: x\r\nauthorization: Bearer \xff\xfe.\xfd\r\nconnection: close\r\n\r\n")),
        ("an API key", bytes_req(b"POST /ica/rest/api/tokens HTTP/1.1\r\nhost: x\r\nx-api-key: tsk_\xff\xfe\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")),
        ("a cookie", bytes_req(b"GET /api/2.0/security/oauth2/token HTTP/1.1\r\nhost: x\r\ncookie: asc_auth_key=\xff\r\nconnection: close\r\n\r\n")),
        ("the path", bytes_req(b"GET /t/\xff\xfe/.well-known/jwks.json HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")),
        ("a percent-encoded path", get_req("/t/%ff%fe/.well-known/jwks.json", "x-a: b")),
        ("a percent-encoded profile", get_req("/v3/oauth2/profiles/%ff%fe", "x-a: b")),
        ("the query", get_req("/ica/rest/api/tokens?tenant=%ff%fe", "x-a: b")),
        ("the Host header", bytes_req(b"GET /v3/oauth2/userinfo HTTP/1.1\r\nhost: \xff\xfe.example\r\nconnection: close\r\n\r\n")),
    ];
    for (what, req) in requests {
        let status = raw(&s, &req);
        assert!(
            status.is_some_and(|st| (400..500).contains(&st)),
            "invalid UTF-8 in {what}: expected a 4xx, got {status:?}"
        );
    }
    intact(&s, &at).await;
}

fn bytes_req(b: &[u8]) -> Vec<u8> {
    b.to_vec()
}

fn get_req(path: &str, header: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: x\r\n{header}\r\nconnection: close\r\n\r\n").into_bytes()
}

fn post_req(path: &str, header: &str) -> Vec<u8> {
    format!("POST {path} HTTP/1.1\r\nhost: x\r\n{header}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .into_bytes()
}

fn form_req(cred: &str, body: &str) -> Vec<u8> {
    form_bytes(cred, body.as_bytes())
}

fn form_bytes(cred: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /oauth2/token HTTP/1.1\r\nhost: x\r\nauthorization: Basic {cred}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn json_req(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /v3/oauth2/tokens HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

#[tokio::test]
async fn header_and_query_floods_are_refused_and_the_server_keeps_serving() {
    let s = TestServer::start().await;
    let at = world(&s, "default");
    // Many headers, one huge header, many repeated credentials.
    let many: String = (0..5_000).map(|i| format!("x-h{i}: v\r\n")).collect();
    let huge = format!("x-big: {}\r\n", "a".repeat(1 << 20));
    let auths: String = (0..2_000).map(|_| "authorization: Basic YWxpY2U6eA==\r\n".to_owned()).collect();
    let tapis: String = (0..2_000).map(|i| format!("x-tapis-token: t{i}\r\n")).collect();
    for (what, headers) in [
        ("5 000 headers", many),
        ("a 1 MiB header", huge),
        ("2 000 Authorization", auths),
        ("2 000 X-Tapis-Token", tapis),
    ] {
        for path in ["/api/v2/user/token", "/v3/oauth2/userinfo", "/oauth2/token"] {
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\n{headers}connection: close\r\n\r\n");
            // Refused with a 4xx, or the connection closed unanswered: never served.
            let status = raw(&s, req.as_bytes());
            assert!(status.is_none_or(|st| (400..500).contains(&st)), "{what} at {path}: {status:?}");
        }
    }
    // Query floods: many parameters, repeated credentials-bearing ones, a huge one.
    let many: String = (0..20_000).map(|i| format!("p{i}=v&")).collect();
    let tenants: String = (0..5_000).map(|_| "tenant=default&").collect();
    let codes: String = (0..5_000).map(|_| "user_code=BCDF-GHJK&").collect();
    for (what, path) in [
        ("20 000 parameters at ICA", format!("/ica/rest/api/tokens?{many}")),
        ("5 000 tenant parameters at ICA", format!("/ica/rest/api/tokens?{tenants}")),
        ("5 000 user codes at the device page", format!("/device?{codes}")),
        ("20 000 parameters at Tapis profiles", format!("/v3/oauth2/profiles?{many}")),
        ("a 1 MiB parameter", format!("/device?user_code={}", "B".repeat(1 << 20))),
    ] {
        let method = if path.starts_with("/ica") { "POST" } else { "GET" };
        let req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let status = raw(&s, req.as_bytes());
        assert!(
            status.is_none_or(|st| (400..500).contains(&st) || st == 200 && path.starts_with("/device?user_code=BCDF")),
            "{what}: {status:?}"
        );
    }
    intact(&s, &at).await;
}
