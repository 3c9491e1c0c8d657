//! Discovery documents, health endpoints and metrics.

use serde_json::Value;

use crate::harness::{Auth, Expect, Resp, TestServer, decode_jwt};

#[track_caller]
fn check_metadata(r: &Resp, issuer: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {} {}", r.status, r.text);
    let v = &r.json;
    assert_eq!(v["issuer"], issuer, "{what}: issuer: {v}");
    for (k, path) in [
        ("token_endpoint", "/oauth2/token"),
        ("introspection_endpoint", "/oauth2/introspect"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(v[k], format!("{issuer}{path}").as_str(), "{what}: {k}: {v}");
    }
    let grants: Vec<&str> = v["grant_types_supported"]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: grant_types_supported missing: {v}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for g in ["client_credentials", "password", "refresh_token"] {
        assert!(grants.contains(&g), "{what}: grant_types_supported lacks {g}: {v}");
    }
    if let Some(methods) = v["token_endpoint_auth_methods_supported"].as_array() {
        for m in ["client_secret_basic", "client_secret_post"] {
            assert!(methods.iter().any(|x| x == m), "{what}: token_endpoint_auth_methods_supported lacks {m}: {v}");
        }
    }
}

#[tokio::test]
async fn discovery_documents_per_tenant() {
    let s = TestServer::start().await;
    s.create_tenant("acme", &["--alg", "RS256"]);
    for tenant in ["default", "acme"] {
        let issuer = s.issuer(tenant);
        let expected = if tenant == "default" { s.base.clone() } else { format!("{}/t/acme", s.base) };
        assert_eq!(issuer, expected);
        for doc in ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"] {
            let r = s.get_url(&s.url(tenant, doc)).await;
            check_metadata(&r, &issuer, &format!("{tenant} {doc}"));
            // The advertised jwks_uri serves the keys that sign this tenant's tokens.
            let jwks = s.get_url(r.json["jwks_uri"].as_str().unwrap()).await;
            assert_eq!(jwks.status, 200, "{}", jwks.text);
        }
        // Tokens carry the same issuer the discovery document announces.
        let (id, secret) = s.create_client(tenant, "client_credentials", Some("read"));
        let tok = decode_jwt(&s.cc_token(tenant, &id, &secret, None).await);
        assert_eq!(tok.claims["iss"], issuer.as_str());
    }
}

#[tokio::test]
async fn discovery_rfc8414_path_insertion() {
    // RFC 8414 3.1: for issuer https://host/t/acme the metadata is at
    // https://host/.well-known/oauth-authorization-server/t/acme.
    let s = TestServer::start().await;
    s.create_tenant("acme", &[]);
    let r = s.get("/.well-known/oauth-authorization-server/t/acme").await;
    check_metadata(&r, &s.issuer("acme"), "RFC 8414 metadata URL for tenant acme");
}

#[tokio::test]
async fn tenant_with_custom_issuer() {
    let s = TestServer::start().await;
    let issuer = "https://id.example.test/custom";
    s.create_tenant("custom", &["--issuer", issuer]);
    let r = s.get_url(&s.url("custom", "/.well-known/openid-configuration")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["issuer"], issuer, "{}", r.text);
    let (id, secret) = s.create_client("custom", "client_credentials", Some("read"));
    let resp = s.token("custom", &[("grant_type", "client_credentials")], Auth::Basic(&id, &secret)).await;
    let body = resp.assert_ok("token at custom-issuer tenant").clone();
    let want = Expect { alg: "EdDSA", sub: &id, client_id: &id, scope: "read", issuer: Some(issuer) };
    s.check_access_token("custom", &body, &want).await;
}

#[tokio::test]
async fn health_and_readiness() {
    let s = TestServer::start().await;
    for path in ["/healthz", "/readyz"] {
        let r = s.get(path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
}

/// Sum of all samples whose metric name mentions issued tokens.
fn issued_total(text: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        if name.contains("token") && name.contains("issued") && !name.ends_with("_created") {
            let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
            *found.get_or_insert(0.0) += value;
        }
    }
    found
}

#[tokio::test]
async fn metrics_count_issued_tokens() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    let before = issued_total(&s.get("/metrics").await.text).unwrap_or(0.0);
    for _ in 0..3 {
        s.cc_token("default", &id, &secret, None).await;
    }
    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/plain"), "Prometheus text format expected, content-type {ct:?}");
    let after = issued_total(&r.text).unwrap_or_else(|| panic!("no tokens-issued counter in /metrics:\n{}", r.text));
    assert!(after - before >= 3.0, "tokens-issued counter went from {before} to {after} after 3 tokens");
}
