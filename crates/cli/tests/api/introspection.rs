//! Introspection (RFC 7662) and revocation (RFC 7009): what must come back inactive.

use serde_json::{Value, json};

use crate::harness::{
    Auth, TestServer, b64e, decode_jwt, forge_hs256, now, pem, raw_public_key, signing_input, spki_der,
};

const PW: &str = "correct horse battery";

#[tokio::test]
async fn revoked_access_token_is_inactive() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read write"));
    let auth = Auth::Basic(&id, &secret);
    let at = s.cc_token("default", &id, &secret, Some("read")).await;
    let jwt = decode_jwt(&at);

    let v = s.introspect("default", &at, auth).await;
    assert_eq!(v["active"], true, "fresh token should be active: {v}");
    for k in ["sub", "client_id", "scope", "exp", "iat", "iss", "jti", "tenant"] {
        assert_eq!(v[k], jwt.claims[k], "introspection {k} should match the token: {v}");
    }
    assert!(v.get("aud").is_some(), "introspection without aud: {v}");
    assert!(v.get("token_type").is_some(), "introspection without token_type: {v}");

    let r = s.revoke("default", &at, auth).await;
    assert_eq!(r.status, 200, "revoke: {} {}", r.status, r.text);
    assert!(r.text.is_empty(), "revoke should answer with an empty body, got {:?}", r.text);

    let v = s.introspect("default", &at, auth).await;
    assert_eq!(v, json!({"active": false}), "revoked access token");

    // Revoking a token the server never issued is also 200 (RFC 7009 2.2).
    let r = s.revoke("default", "not-a-token-we-know", auth).await;
    assert_eq!(r.status, 200, "revoke unknown token: {} {}", r.status, r.text);
}

#[tokio::test]
async fn revoked_refresh_token_is_inactive() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "password,refresh_token", Some("read"));
    s.create_user("default", "alice", PW);
    let auth = Auth::Basic(&id, &secret);
    let body = s.password_token("default", &id, &secret, "alice", PW, None).await;
    let rt = body["refresh_token"].as_str().expect("refresh_token").to_string();

    let v = s.introspect_hint("default", &rt, Some("refresh_token"), auth).await;
    assert_eq!(v["active"], true, "fresh refresh token should introspect active: {v}");
    assert_eq!(v["client_id"], id.as_str(), "{v}");
    assert_eq!(v["sub"], "alice", "{v}");

    let r = s.revoke("default", &rt, auth).await;
    assert_eq!(r.status, 200, "revoke refresh token: {} {}", r.status, r.text);

    let v = s.introspect_hint("default", &rt, Some("refresh_token"), auth).await;
    assert_eq!(v, json!({"active": false}), "revoked refresh token");
    let v = s.introspect("default", &rt, auth).await;
    assert_eq!(v, json!({"active": false}), "revoked refresh token without hint");
    let r = s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], auth).await;
    r.assert_error(400, "invalid_grant", "refresh with a revoked refresh token");
}

#[tokio::test]
async fn token_of_tenant_a_is_inactive_at_tenant_b() {
    let s = TestServer::start().await;
    s.create_tenant("beta", &["--alg", "EdDSA"]);
    let (a_id, a_secret) = s.create_client("default", "client_credentials", Some("read"));
    let (b_id, b_secret) = s.create_client("beta", "client_credentials", Some("read"));
    let a_auth = Auth::Basic(&a_id, &a_secret);
    let b_auth = Auth::Basic(&b_id, &b_secret);
    let a_tok = s.cc_token("default", &a_id, &a_secret, None).await;
    let b_tok = s.cc_token("beta", &b_id, &b_secret, None).await;

    assert!(s.is_active("default", &a_tok, a_auth).await, "A's token at A");
    assert!(s.is_active("beta", &b_tok, b_auth).await, "B's token at B");
    assert!(!s.is_active("beta", &a_tok, b_auth).await, "A's token introspected at B must be inactive");
    assert!(!s.is_active("default", &b_tok, a_auth).await, "B's token introspected at A must be inactive");

    // Clients belong to one tenant too.
    let r = s.token("beta", &[("grant_type", "client_credentials")], a_auth).await;
    r.assert_error(401, "invalid_client", "tenant A's client at tenant B's token endpoint");

    // Revoking A's token at B does nothing to it at A.
    let r = s.revoke("beta", &a_tok, b_auth).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(s.is_active("default", &a_tok, a_auth).await, "revocation at B must not touch A's token");
}

/// A real token's claims with a fresh jti, for forging.
fn forged_claims(real: &Value) -> Value {
    let mut c = real.clone();
    c["jti"] = json!(format!("forged-{}", now()));
    c["exp"] = json!(now() + 3600);
    c
}

#[tokio::test]
async fn alg_none_token_is_inactive() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    let auth = Auth::Basic(&id, &secret);
    let real = decode_jwt(&s.cc_token("default", &id, &secret, None).await);
    assert!(s.is_active("default", &real.raw, auth).await, "control: the real token is active");
    let claims = forged_claims(&real.claims);
    let kid = real.header["kid"].clone();
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        let si = signing_input(&header, &claims);
        for tok in [format!("{si}."), format!("{si}.{}", b64e(&real.signature))] {
            assert!(!s.is_active("default", &tok, auth).await, "alg {alg} token must be inactive: {tok}");
        }
    }
}

#[tokio::test]
async fn hs256_signed_with_public_key_is_inactive() {
    let s = TestServer::start().await;
    s.create_tenant("ec", &["--alg", "ES256"]);
    s.create_tenant("rsa", &["--alg", "RS256"]);
    for tenant in ["default", "ec", "rsa"] {
        let (id, secret) = s.create_client(tenant, "client_credentials", Some("read"));
        let auth = Auth::Basic(&id, &secret);
        let real = decode_jwt(&s.cc_token(tenant, &id, &secret, None).await);
        assert!(s.is_active(tenant, &real.raw, auth).await, "control: the real token is active at {tenant}");
        let kid = real.header["kid"].as_str().unwrap().to_string();
        let jwk = s.jwk(tenant, &kid).await.expect("kid in JWKS");
        let der = spki_der(&jwk);
        let pem_text = pem("PUBLIC KEY", &der);
        let jwk_text = serde_json::to_string(&jwk).unwrap();
        let secrets: Vec<(&str, Vec<u8>)> = vec![
            ("raw public key", raw_public_key(&jwk)),
            ("SPKI DER", der.clone()),
            ("SPKI PEM", pem_text.clone().into_bytes()),
            ("SPKI PEM without final newline", pem_text.trim_end().as_bytes().to_vec()),
            ("JWK JSON", jwk_text.into_bytes()),
        ];
        let claims = forged_claims(&real.claims);
        for (what, key) in secrets {
            let tok = forge_hs256(&kid, &claims, &key);
            assert!(
                !s.is_active(tenant, &tok, auth).await,
                "tenant {tenant}: HS256 keyed with the {what} must be inactive"
            );
        }
    }
}

#[tokio::test]
async fn tampered_token_is_inactive() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read write"));
    let auth = Auth::Basic(&id, &secret);
    let real = decode_jwt(&s.cc_token("default", &id, &secret, Some("read")).await);
    assert!(s.is_active("default", &real.raw, auth).await);
    let sig = b64e(&real.signature);

    let mut widened = real.claims.clone();
    widened["scope"] = json!("read write admin");
    let mut other_sub = real.claims.clone();
    other_sub["sub"] = json!("someone-else");
    let mut later = real.claims.clone();
    later["exp"] = json!(real.claims["exp"].as_i64().unwrap() + 86400);
    for (what, claims) in [("scope", widened), ("sub", other_sub), ("exp", later)] {
        let tok = format!("{}.{sig}", signing_input(&real.header, &claims));
        assert!(!s.is_active("default", &tok, auth).await, "token with tampered {what} must be inactive");
    }

    // A flipped bit in the signature.
    let mut bad = real.signature.clone();
    bad[0] ^= 1;
    let tok = format!("{}.{}", real.signing_input, b64e(&bad));
    assert!(!s.is_active("default", &tok, auth).await, "token with a flipped signature bit must be inactive");
}

#[tokio::test]
async fn expired_token_is_inactive() {
    let s = TestServer::start().await;
    s.create_tenant("short", &["--access-ttl", "1"]);
    let (id, secret) = s.create_client("short", "client_credentials", Some("read"));
    let auth = Auth::Basic(&id, &secret);
    // Control: a fresh token is active. With a 1 s lifetime a single try can straddle the
    // expiry second, so one of a few tries must see it active.
    let mut seen_active = false;
    let mut at = String::new();
    for _ in 0..5 {
        let r = s.token("short", &[("grant_type", "client_credentials")], auth).await;
        let body = r.assert_ok("token at a tenant with --access-ttl 1").clone();
        assert_eq!(body["expires_in"], 1, "--access-ttl 1 should give expires_in 1: {body}");
        at = body["access_token"].as_str().unwrap().to_string();
        if s.is_active("short", &at, auth).await {
            seen_active = true;
            break;
        }
    }
    assert!(seen_active, "control: a fresh 1 s token was never active");
    let exp = decode_jwt(&at).claims["exp"].as_i64().unwrap();
    // Wait until exp has clearly passed (about 2 s).
    while now() <= exp + 1 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let v = s.introspect("short", &at, auth).await;
    assert_eq!(v, json!({"active": false}), "token expired at {exp}, now {}", now());
}

#[tokio::test]
async fn malformed_tokens_are_inactive() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    let auth = Auth::Basic(&id, &secret);
    let real = s.cc_token("default", &id, &secret, None).await;
    let parts: Vec<&str> = real.split('.').collect();
    let cases = [
        "not-a-token".to_string(),
        "a.b.c".to_string(),
        "....".to_string(),
        "eyJ.eyJ.".to_string(),
        "tsr_doesnotexist".to_string(),
        "tsc_doesnotexist".to_string(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}..{}", parts[0], parts[2]),
        format!("{real}.extra"),
        "x".repeat(8000),
        "\u{00e9}\u{1F600}.\u{00e9}.\u{00e9}".to_string(),
    ];
    for tok in cases {
        let v = s.introspect("default", &tok, auth).await;
        assert_eq!(
            v,
            json!({"active": false}),
            "malformed token {:?} must be inactive",
            tok.chars().take(60).collect::<String>()
        );
    }
    // The server is still fine afterwards.
    assert!(s.is_active("default", &real, auth).await);
}

#[tokio::test]
async fn introspection_and_revocation_require_client_auth() {
    // RFC 7662 2.1 and RFC 7009 2.1: the endpoints authenticate the caller.
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    let at = s.cc_token("default", &id, &secret, None).await;
    for (what, auth) in [("no client auth", Auth::None), ("wrong secret", Auth::Basic(&id, "tsc_wrong"))] {
        let r = s.post_form("default", "/oauth2/introspect", &[("token", &at)], auth).await;
        r.assert_error(401, "invalid_client", &format!("introspect with {what}"));
        assert!(r.json.get("active").is_none(), "introspect with {what} leaked token state: {}", r.text);
        let r = s.revoke("default", &at, auth).await;
        r.assert_error(401, "invalid_client", &format!("revoke with {what}"));
    }
    assert!(s.is_active("default", &at, Auth::Basic(&id, &secret)).await, "failed revocations must not revoke");
}

#[tokio::test]
async fn revocation_by_another_client_does_not_revoke() {
    // RFC 7009 2.1: the server checks the token was issued to the client asking to revoke it.
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    let (other_id, other_secret) = s.create_client("default", "client_credentials", Some("read"));
    let at = s.cc_token("default", &id, &secret, None).await;
    let r = s.revoke("default", &at, Auth::Basic(&other_id, &other_secret)).await;
    assert!(r.status == 200 || r.status == 400, "revoke by another client: {} {}", r.status, r.text);
    assert!(
        s.is_active("default", &at, Auth::Basic(&id, &secret)).await,
        "a client must not be able to revoke another client's token"
    );
}
