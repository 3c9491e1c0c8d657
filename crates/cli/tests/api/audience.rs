//! Each front accepts only tokens meant for it (issue 13, findings 1 and 9): its own
//! audience, or the tenant's default one where its API is defined that way; and only access
//! tokens (`typ: at+jwt`) without `crit` extensions, even when correctly signed.

use crate::harness::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// An admin `alice` and a client allowed the password, refresh and exchange grants.
pub fn setup(s: &TestServer) -> (String, String) {
    s.cli_ok(
        &["user", "create", "--username", "alice", "--password-stdin", "--role", "admin"],
        Some("alice-password-1\n"),
    );
    s.create_client("default", "password,refresh_token,token_exchange", None)
}

pub async fn sftpgo_token(s: &TestServer, admin: bool) -> String {
    let path = if admin { "/api/v2/token" } else { "/api/v2/user/token" };
    let r = s.call("GET", path, &[("authorization", &basic("alice", "alice-password-1"))], None).await;
    r.assert_ok("SFTPGo token")["access_token"].as_str().expect("access_token").to_owned()
}

pub async fn ica(s: &TestServer, headers: &[(&str, &str)]) -> Resp {
    s.call("POST", "/ica/rest/api/tokens", headers, None).await
}

pub async fn ica_refresh(s: &TestServer, token: &str) -> Resp {
    s.call("POST", "/ica/rest/api/tokens:refresh", &[("authorization", &bearer(token))], None).await
}

pub async fn docspace(s: &TestServer, headers: &[(&str, &str)]) -> Resp {
    s.call("GET", "/api/2.0/security/oauth2/token", headers, None).await
}

pub async fn tapis_password(s: &TestServer) -> String {
    let body = json!({"grant_type": "password", "username": "alice", "password": "alice-password-1"}).to_string();
    let r = s.call("POST", "/v3/oauth2/tokens", &[("content-type", "application/json")], Some(&body)).await;
    assert!(r.status < 300, "Tapis password grant: {} {}", r.status, r.text);
    r.json["result"]["access_token"]["access_token"].as_str().expect("Tapis access token").to_owned()
}

pub async fn tapis_userinfo(s: &TestServer, token: &str) -> Resp {
    s.call("GET", "/v3/oauth2/userinfo", &[("x-tapis-token", token)], None).await
}

fn token_of(r: &Resp, member: &str, what: &str) -> String {
    r.assert_ok(what)[member].as_str().unwrap_or_else(|| panic!("{what}: no {member} in {}", r.text)).to_owned()
}

#[tokio::test]
async fn each_front_accepts_only_tokens_meant_for_it() {
    let s = TestServer::start().await;
    let (id, secret) = setup(&s);
    let pw = basic("alice", "alice-password-1");
    let standard = s.password_token("default", &id, &secret, "alice", "alice-password-1", None).await;
    let standard = standard["access_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "alice-password-1"),
        ("resource", "https://files.example.org/api"),
    ];
    let other_resource =
        token_of(&s.token("default", &form, Auth::Basic(&id, &secret)).await, "access_token", "resource");
    let tokens: Vec<(&str, String)> = vec![
        ("standard", standard),
        ("tapis", tapis_password(&s).await),
        ("other resource", other_resource),
        ("sftpgo admin", sftpgo_token(&s, true).await),
        ("sftpgo user", sftpgo_token(&s, false).await),
        ("ica", token_of(&ica(&s, &[("authorization", &pw)]).await, "token", "ICA Basic")),
        ("docspace", token_of(&docspace(&s, &[("authorization", &pw)]).await, "response", "DocSpace Basic")),
    ];
    let accepted = |list: &[&str], name: &str| list.contains(&name);
    for (name, token) in &tokens {
        let want = |list: &[&str]| if accepted(list, name) { 200 } else { 401 };
        let r = tapis_userinfo(&s, token).await;
        assert_eq!(r.status, want(&["standard", "tapis"]), "Tapis userinfo with the {name} token: {}", r.text);
        let r = ica(&s, &[("authorization", &bearer(token))]).await;
        assert_eq!(r.status, want(&["standard", "tapis"]), "ICA tokens with the {name} token as Bearer: {}", r.text);
        let r = ica_refresh(&s, token).await;
        assert_eq!(r.status, want(&["ica"]), "ICA refresh of the {name} token: {}", r.text);
        let r = docspace(&s, &[("authorization", &bearer(token))]).await;
        assert_eq!(r.status, want(&["standard", "tapis", "docspace"]), "DocSpace with the {name} token: {}", r.text);
        let r = s
            .call(
                "POST",
                "/v3/oauth2/v2/token",
                &[("x-tapis-token", token), ("content-type", "application/json")],
                Some(&json!({"access_token": token}).to_string()),
            )
            .await;
        assert_eq!(
            r.status == 200,
            accepted(&["standard", "tapis"], name),
            "Tapis v2 token from the {name} token: {} {}",
            r.status,
            r.text
        );
    }
    // Logout revokes, so the refusals come first: only the front's own audience may log out.
    for (name, token) in &tokens {
        for (path, own) in [("/api/v2/logout", "sftpgo admin"), ("/api/v2/user/logout", "sftpgo user")] {
            if *name == own {
                continue;
            }
            let r = s.call("GET", path, &[("authorization", &bearer(token))], None).await;
            assert_eq!(
                (r.status, r.json["message"].as_str()),
                (401, Some("Your token audience is not valid")),
                "{path} with the {name} token: {}",
                r.text
            );
        }
    }
    for (path, own) in [("/api/v2/logout", "sftpgo admin"), ("/api/v2/user/logout", "sftpgo user")] {
        let token = &tokens.iter().find(|(n, _)| *n == own).unwrap().1;
        let r = s.call("GET", path, &[("authorization", &bearer(token))], None).await;
        assert_eq!(r.status, 200, "{path} with its own token: {}", r.text);
    }
}

/// The token's claims under `header`, signed with the tenant's real key.
async fn resigned(s: &TestServer, token: &str, header: Value) -> String {
    sign_as(&s.signing_key("default").await, &header, &decode_jwt(token).claims)
}

#[tokio::test]
async fn only_access_tokens_without_crit_are_accepted() {
    let s = TestServer::start().await;
    let (id, secret) = setup(&s);
    let token = tapis_password(&s).await;
    let auth = Auth::Basic(&id, &secret);
    let header = decode_jwt(&token).header;
    let (alg, kid) = (&header["alg"], &header["kid"]);
    // The control: the same header re-signed with the stolen key is accepted, so the
    // refusals below are the header's doing, not the signature's.
    let same = resigned(&s, &token, json!({"alg": alg, "typ": "at+jwt", "kid": kid})).await;
    assert!(s.is_active("default", &same, auth).await, "a correctly signed at+jwt token is active");
    assert_eq!(tapis_userinfo(&s, &same).await.status, 200);
    let variants = [
        ("typ JWT (an ID token or any other JWT)", json!({"alg": alg, "typ": "JWT", "kid": kid})),
        ("no typ", json!({"alg": alg, "kid": kid})),
        ("a crit extension", json!({"alg": alg, "typ": "at+jwt", "kid": kid, "crit": ["urn:x"], "urn:x": 1})),
    ];
    for (what, header) in variants {
        let forged = resigned(&s, &token, header).await;
        assert!(!s.is_active("default", &forged, auth).await, "{what}: introspection must say inactive");
        let r = tapis_userinfo(&s, &forged).await;
        assert_eq!(r.status, 401, "{what}: Tapis userinfo: {}", r.text);
        let r = docspace(&s, &[("authorization", &bearer(&forged))]).await;
        assert_eq!(r.status, 401, "{what}: DocSpace: {}", r.text);
        let r = ica(&s, &[("authorization", &bearer(&forged))]).await;
        assert_eq!(r.status, 401, "{what}: ICA: {}", r.text);
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
            ("subject_token", forged.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
        ];
        s.token("default", &form, auth).await.assert_error(400, "invalid_grant", &format!("{what}: token exchange"));
    }
}
