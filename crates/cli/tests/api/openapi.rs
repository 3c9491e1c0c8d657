//! The OpenAPI document at `/openapi.json` describes every route of every front, and the
//! reference page at `/docs` shows it without anything from elsewhere (no script, no CDN).

use crate::harness::*;
use serde_json::Value;

/// `path` with its parameters filled in: `{tenant}` the default tenant, the rest a name.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg {
            "{tenant}" => "default",
            s if s.starts_with('{') => "someone",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn every_route_of_every_front_is_in_the_document_and_answers() {
    let s = TestServer::start().await;
    let r = s.get("/openapi.json").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let doc: Value = r.json.clone();
    let registered = tessera_server::openapi::registered();
    // One front of each kind, at each of its prefixes.
    for (method, path) in [
        ("post", "/oauth2/token"),
        ("post", "/t/{tenant}/oauth2/token"),
        ("get", "/oauth2/authorize"),
        ("get", "/.well-known/oauth-authorization-server/t/{tenant}"),
        ("post", "/v3/oauth2/tokens"),
        ("put", "/v3/oauth2/clients/{client_id}"),
        ("get", "/api/v2/user/token"),
        ("post", "/ica/rest/api/tokens:refresh"),
        ("get", "/api/2.0/security/oauth2/token"),
        ("get", "/admin/v1/audit"),
        ("delete", "/t/{tenant}/me/sessions/{id}"),
        ("get", "/healthz"),
        ("get", "/docs"),
    ] {
        assert!(registered.contains(&(method.to_owned(), path.to_owned())), "{method} {path} not registered");
    }
    let mut documented = 0;
    for (method, path) in &registered {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "the document lacks {method} {path}");
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path}: no summary");
        assert!(op["responses"]["default"]["content"].is_object(), "{method} {path}: no error format");
        assert!(op["tags"][0].is_string(), "{method} {path}: no tag");
        documented += 1;
        // The server routes what the document says: a request by the documented method is
        // not refused as an unknown method, nor left to the router's bare 404.
        let r = s.call(&method.to_uppercase(), &concrete(path), &[], None).await;
        assert_ne!(r.status, 405, "{method} {path}: {}", r.text);
        assert!(r.status != 404 || !r.text.is_empty(), "{method} {path}: the router knows no such route");
    }
    // And nothing else: the document's operations are exactly the registered ones.
    let in_doc: usize =
        doc["paths"].as_object().expect("paths").values().map(|i| i.as_object().map_or(0, |o| o.len())).sum();
    assert_eq!(in_doc, documented, "the document has operations the server does not register");
    assert!(documented > 100, "{documented} operations");
    // Each front's errors are in its own format.
    let default = |m: &str, p: &str| doc["paths"][p][m]["responses"]["default"]["content"].clone();
    assert!(default("post", "/oauth2/token")["application/json"]["schema"]["properties"]["error"].is_object());
    assert!(default("get", "/admin/v1/users")["application/problem+json"].is_object());
    assert!(default("post", "/ica/rest/api/tokens")["application/problem+json"].is_object());
    assert!(default("get", "/oauth2/authorize")["text/html"].is_object(), "pages answer errors as pages");
    let schemes = doc["components"]["securitySchemes"].as_object().expect("schemes");
    for name in ["bearer", "basic", "apiKey", "tapisToken"] {
        assert!(schemes.contains_key(name), "no {name} scheme");
    }
}

#[tokio::test]
async fn the_reference_page_shows_every_operation_and_needs_nothing_from_elsewhere() {
    let s = TestServer::start().await;
    let r = s.get("/docs").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("text/html")), "{:?}", r.header("content-type"));
    // The template engine writes `/` in text as `&#x2f;`.
    let page = &r.text.replace("&#x2f;", "/");
    for needle in [
        "/oauth2/token",
        "/v3/oauth2/tokens",
        "/api/v2/user/token",
        "/ica/rest/api/tokens:refresh",
        "/admin/v1/audit",
        "/me/api-keys",
    ] {
        assert!(page.contains(needle), "the page lacks {needle}");
    }
    assert!(
        !page.contains("<script") && !page.contains("https://") && !page.contains("http://"),
        "nothing loaded from elsewhere"
    );
    let doc = s.get("/openapi.json").await.json;
    let ops: usize =
        doc["paths"].as_object().expect("paths").values().map(|i| i.as_object().map_or(0, |o| o.len())).sum();
    assert_eq!(page.matches("<details class=\"op\">").count(), ops, "one entry per operation");
}
