//! Successful grants: every algorithm, both grant types, both client authentication methods.

use crate::harness::{Auth, Expect, TestServer, assert_scope_eq};

const PW: &str = "correct horse battery";

/// client_credentials and password grants on a tenant signing with `alg`.
async fn grants_for_alg(alg: &str, tenant: &str) {
    let s = TestServer::start().await;
    s.create_tenant(tenant, &["--alg", alg]);
    let (id, secret) = s.create_client(tenant, "client_credentials,password,refresh_token", Some("read write"));
    assert!(secret.starts_with("tsc_"), "client secrets should look like tsc_...: {secret}");

    // client_credentials: sub = client_id.
    let r =
        s.token(tenant, &[("grant_type", "client_credentials"), ("scope", "read")], Auth::Basic(&id, &secret)).await;
    let body = r.assert_ok("client_credentials").clone();
    let want = Expect { alg, sub: &id, client_id: &id, scope: "read", issuer: None };
    let cc = s.check_access_token(tenant, &body, &want).await;

    // password: sub = username.
    s.create_user(tenant, "alice", PW);
    let body = s.password_token(tenant, &id, &secret, "alice", PW, Some("read write")).await;
    let want = Expect { alg, sub: "alice", client_id: &id, scope: "read write", issuer: None };
    let pw = s.check_access_token(tenant, &body, &want).await;
    let rt = body["refresh_token"].as_str().unwrap_or_else(|| panic!("password grant without refresh_token: {body}"));
    assert!(rt.starts_with("tsr_"), "refresh tokens should look like tsr_...: {rt}");

    assert_ne!(cc.claims["jti"], pw.claims["jti"], "jti must be unique per token");
    assert_eq!(cc.header["kid"], pw.header["kid"], "one active signing key per tenant");
}

#[tokio::test]
async fn eddsa_tenant_issues_verifiable_tokens() {
    grants_for_alg("EdDSA", "edtenant").await;
}

#[tokio::test]
async fn es256_tenant_issues_verifiable_tokens() {
    grants_for_alg("ES256", "ectenant").await;
}

#[tokio::test]
async fn rs256_tenant_issues_verifiable_tokens() {
    grants_for_alg("RS256", "rsatenant").await;
}

#[tokio::test]
async fn default_tenant_signs_with_eddsa() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&id, &secret)).await;
    let body = r.assert_ok("client_credentials at the default tenant").clone();
    let want = Expect { alg: "EdDSA", sub: &id, client_id: &id, scope: "read", issuer: None };
    let jwt = s.check_access_token("default", &body, &want).await;
    assert_eq!(jwt.claims["iss"], s.base.as_str());
}

#[tokio::test]
async fn client_secret_basic_and_post_both_work() {
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read write"));
    let form = [("grant_type", "client_credentials"), ("scope", "write")];

    for (what, auth) in
        [("client_secret_basic", Auth::Basic(&id, &secret)), ("client_secret_post", Auth::Post(&id, &secret))]
    {
        let r = s.token("default", &form, auth).await;
        let body = r.assert_ok(what).clone();
        let cc = r.header("cache-control").unwrap_or_default();
        assert!(cc.contains("no-store"), "{what}: token response needs Cache-Control: no-store, got {cc:?}");
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.starts_with("application/json"), "{what}: content-type {ct:?}");
        let want = Expect { alg: "EdDSA", sub: &id, client_id: &id, scope: "write", issuer: None };
        s.check_access_token("default", &body, &want).await;
    }

    // Without a scope parameter the server grants (at most) the client's registered scope.
    let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Post(&id, &secret)).await;
    let body = r.assert_ok("no scope parameter");
    if let Some(sc) = body["scope"].as_str() {
        for x in sc.split_whitespace() {
            assert!(["read", "write"].contains(&x), "granted scope {sc:?} exceeds the client's");
        }
    }
}

#[tokio::test]
async fn public_client_uses_password_and_refresh_without_secret() {
    let s = TestServer::start().await;
    let id = s.create_public_client("default", "password,refresh_token", Some("read"));
    s.create_user("default", "bob", PW);
    let r = s
        .token(
            "default",
            &[("grant_type", "password"), ("username", "bob"), ("password", PW), ("scope", "read")],
            Auth::Public(&id),
        )
        .await;
    let body = r.assert_ok("public client password grant").clone();
    let want = Expect { alg: "EdDSA", sub: "bob", client_id: &id, scope: "read", issuer: None };
    s.check_access_token("default", &body, &want).await;
    let rt = body["refresh_token"].as_str().expect("refresh_token").to_string();
    let r = s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", &rt)], Auth::Public(&id)).await;
    let body = r.assert_ok("public client refresh").clone();
    assert_scope_eq(body["scope"].as_str().unwrap_or_default(), "read");
}

#[tokio::test]
async fn resource_parameter_sets_audience() {
    // Spec: aud is the issuer unless a `resource` parameter (RFC 8707) is given.
    let s = TestServer::start().await;
    let (id, secret) = s.create_client("default", "client_credentials", Some("read"));
    let api = "https://api.example.test/v1";
    let r =
        s.token("default", &[("grant_type", "client_credentials"), ("resource", api)], Auth::Basic(&id, &secret)).await;
    let body = r.assert_ok("client_credentials with resource");
    let jwt = crate::harness::decode_jwt(body["access_token"].as_str().unwrap());
    crate::harness::assert_aud_contains(&jwt.claims["aud"], api);
}
