//! A panic in a handler becomes a 500 in the format of the front that was asked, is counted
//! in /metrics, and the server goes on. The panic is injected where the handler would run
//! (`TESSERA_TEST_PANICS=1`, honoured by debug builds only): no handler can be made to panic
//! by its input, which is the point.

use crate::harness::*;

/// Does an answer have its front's error format?
type InFormat = fn(&Resp) -> bool;

#[tokio::test]
async fn a_panicking_handler_answers_500_in_its_fronts_format_and_is_counted() {
    let s = TestServer::start_with_env(&[("TESSERA_TEST_PANICS", "1")]).await;
    let boom = [("x-tessera-test-panic", "1")];
    let cases: [(&str, &str, InFormat); 6] = [
        ("POST", "/oauth2/token", |r| r.json["error"] == "server_error"),
        ("POST", "/t/acme/oauth2/introspect", |r| r.json["error"] == "server_error"),
        ("GET", "/v3/oauth2/userinfo", |r| r.json["status"] == "error" && r.json["result"].is_null()),
        ("GET", "/api/v2/user/token", |r| r.json["message"] == "Internal Server Error"),
        ("POST", "/ica/rest/api/tokens", |r| {
            r.json["status"] == 500
                && r.json["title"].is_string()
                && r.header("content-type").as_deref() == Some("application/problem+json")
        }),
        ("GET", "/api/2.0/security/oauth2/token", |r| r.json["statusCode"] == 500 && r.json["status"] == 1),
    ];
    for (method, path, in_format) in cases {
        let r = s.call(method, path, &boom, None).await;
        assert_eq!(r.status, 500, "{path}: {}", r.text);
        assert!(in_format(&r), "{path}: not in its front's error format: {}", r.text);
        // The same connection pool, the same server: it goes on answering.
        assert_eq!(s.get("/healthz").await.status, 200, "after the panic at {path}");
    }
    let metrics = s.get("/metrics").await.text;
    let count = metrics
        .lines()
        .find(|l| l.starts_with("tessera_panics_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<f64>().ok());
    assert_eq!(count, Some(6.0), "tessera_panics_total in /metrics:\n{metrics}");
    // Without the switch, the header is nothing.
    let plain = TestServer::start().await;
    let r = plain.call("GET", "/api/v2/user/token", &boom, None).await;
    assert_eq!(r.status, 401, "{}", r.text);
}
