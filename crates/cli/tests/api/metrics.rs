//! `/metrics`: requests counted by route, method and status.

use crate::harness::{Auth, TestServer};

/// The value of the `tessera_http_requests_total` series with these labels, if present.
fn requests_total(text: &str, route: &str, method: &str, status: u16) -> Option<u64> {
    let labels = [format!("route=\"{route}\""), format!("method=\"{method}\""), format!("status=\"{status}\"")];
    text.lines()
        .filter(|l| l.starts_with("tessera_http_requests_total{"))
        .find(|l| labels.iter().all(|want| l.contains(want.as_str())))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn requests_are_counted_by_route_method_and_status() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", None);
    for _ in 0..3 {
        assert_eq!(s.http.get(format!("{}/healthz", s.base)).send().await.expect("healthz").status().as_u16(), 200);
    }
    let form = [("grant_type", "client_credentials")];
    for _ in 0..2 {
        s.token("default", &form, Auth::Basic(&id, "tsc_wrong")).await.assert_error(401, "invalid_client", "wrong");
    }
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_ok("token");

    let text = s.http.get(format!("{}/metrics", s.base)).send().await.expect("metrics").text().await.expect("text");
    assert_eq!(requests_total(&text, "/healthz", "GET", 200), Some(3), "{text}");
    assert_eq!(requests_total(&text, "/oauth2/token", "POST", 401), Some(2), "{text}");
    assert_eq!(requests_total(&text, "/oauth2/token", "POST", 200), Some(1), "{text}");
    assert_eq!(requests_total(&text, "/oauth2/token", "POST", 500), None, "{text}");
    assert!(text.contains("tessera_tokens_issued_total{grant=\"client_credentials\"} 1"), "{text}");
}
