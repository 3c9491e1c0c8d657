//! Signing keys: rotation keeps old tokens valid, JWKS publishes old and new keys.

use std::time::{Duration, Instant};

use crate::harness::{Auth, TestServer, check_jwk_shape, decode_jwt, verify_with_jwk};

async fn rotation_for(tenant: &str, alg: &str) {
    let s = TestServer::start().await;
    if tenant != "default" {
        s.create_tenant(tenant, &["--alg", alg]);
    }
    let (id, secret) = s.create_client(tenant, "client_credentials", Some("read"));
    let auth = Auth::Basic(&id, &secret);
    let old = decode_jwt(&s.cc_token(tenant, &id, &secret, None).await);
    let old_kid = old.header["kid"].as_str().unwrap().to_string();

    s.rotate_key(tenant);

    // The running server picks the new key up within about a second.
    let deadline = Instant::now() + Duration::from_secs(3);
    let new = loop {
        let t = decode_jwt(&s.cc_token(tenant, &id, &secret, None).await);
        if t.header["kid"] != old_kid.as_str() {
            break t;
        }
        assert!(
            Instant::now() < deadline,
            "after `key rotate` new tokens are still signed with {old_kid} after 3 s (spec: ~1 s)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let new_kid = new.header["kid"].as_str().unwrap().to_string();
    assert_eq!(new.header["alg"], alg);

    assert!(s.is_active(tenant, &old.raw, auth).await, "token signed by the old key must stay active after rotation");
    assert!(s.is_active(tenant, &new.raw, auth).await, "token signed by the new key must be active");

    let jwks = s.jwks(tenant).await;
    let keys = jwks["keys"].as_array().unwrap();
    for (kid, tok) in [(&old_kid, &old), (&new_kid, &new)] {
        let jwk = keys
            .iter()
            .find(|k| k["kid"] == kid.as_str())
            .unwrap_or_else(|| panic!("kid {kid} missing from JWKS after rotation: {jwks}"));
        check_jwk_shape(jwk, alg);
        assert!(
            verify_with_jwk(jwk, tok.signing_input.as_bytes(), &tok.signature),
            "kid {kid} does not verify its token"
        );
    }

    let listed = s.cli_ok(&["key", "list", "--tenant", tenant, "--json"], None);
    assert!(listed.contains(&old_kid) && listed.contains(&new_kid), "key list should show both kids: {listed}");
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_default_tenant() {
    rotation_for("default", "EdDSA").await;
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_valid_rs256_tenant() {
    rotation_for("rsatenant", "RS256").await;
}

#[tokio::test]
async fn jwks_lists_only_public_keys_with_unique_kids() {
    let s = TestServer::start().await;
    s.create_tenant("ec", &["--alg", "ES256"]);
    s.create_tenant("rsa", &["--alg", "RS256"]);
    for (tenant, alg) in [("default", "EdDSA"), ("ec", "ES256"), ("rsa", "RS256")] {
        let jwks = s.jwks(tenant).await;
        let keys = jwks["keys"].as_array().unwrap();
        assert!(!keys.is_empty(), "tenant {tenant} publishes no keys");
        let mut kids: Vec<&str> = keys.iter().map(|k| k["kid"].as_str().expect("kid")).collect();
        for k in keys {
            check_jwk_shape(k, alg);
        }
        kids.sort();
        kids.dedup();
        assert_eq!(kids.len(), keys.len(), "duplicate kids in {jwks}");
    }
}
