//! `health_check.hello / ready` and `metadata.get_server_metadata`.

use crate::common::*;

#[tokio::test]
async fn hello_and_ready() {
    let s = Server::start();
    for c in [s.tapis(None), s.tapis(Some("garbage"))] {
        let h = ok(c.health_check.hello().await, "hello");
        assert!(h.message.as_deref().is_some_and(|m| !m.is_empty()));
        ok(c.health_check.ready().await, "ready");
    }
}

#[tokio::test]
async fn server_metadata() {
    let s = Server::start();
    for c in [s.tapis(None), s.tapis(Some("garbage"))] {
        let m = *ok(c.metadata.get_server_metadata().await, "get_server_metadata").result.expect("result");
        assert_eq!(m.issuer.as_deref(), Some(s.base.as_str()), "issuer of the default tenant: {m:?}");
        assert_eq!(m.token_endpoint.as_deref(), Some(format!("{}/v3/oauth2/tokens", s.base).as_str()), "{m:?}");
        let jwks_uri = m.jwks_uri.clone().expect("jwks_uri");
        assert_eq!(jwks_uri, format!("{}/.well-known/jwks.json", s.base));
        let grants = m.grant_types_supported.clone().expect("grant_types_supported");
        for g in ["password", "refresh_token"] {
            assert!(grants.iter().any(|x| x == g), "grant_types_supported should include {g}: {grants:?}");
        }
        assert!(grants.iter().any(|x| x.contains("device_code")), "{grants:?}");
        let jwks: Value = s.http.get(&jwks_uri).send().await.unwrap().json().await.unwrap();
        assert!(jwks["keys"].as_array().is_some_and(|k| !k.is_empty()), "{jwks}");
    }
    // The issuer is the one the tokens carry.
    user(&s, "alice");
    let t = s.password_token("alice", PW).await;
    let (_, claims) = s.verify_jwt("default", &access(&t)).await;
    assert_eq!(claims["iss"], s.base.as_str());
}

#[tokio::test]
async fn unknown_tapis_path_is_a_json_404() {
    let s = Server::start();
    let r = s.http.get(format!("{}/v3/oauth2/no-such-thing", s.base)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "error", "{v}");
}
