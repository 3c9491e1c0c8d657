//! A token minted from another token keeps how its holder authenticated, its session and
//! the earliest expiry of its chain, and dies with them (issue 13, finding 2); ICA tells no
//! one which tenants a username exists in (finding 5).

use crate::audience::{basic, bearer, docspace, ica, ica_refresh, setup, sftpgo_token, tapis_password};
use crate::harness::*;
use serde_json::{Value, json};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

fn claims(token: &str) -> Value {
    decode_jwt(token).claims
}

fn apikey(s: &TestServer) -> (String, String) {
    let out = s.cli_ok(&["apikey", "create", "--username", "alice", "--json"], None);
    let v: Value = serde_json::from_str(out.trim()).expect("apikey create --json");
    (v["id"].as_str().unwrap().to_owned(), v["key"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn api_key_tokens_are_not_laundered_and_die_with_the_key() {
    let s = TestServer::start().await;
    let (id, secret) = setup(&s);
    let auth = Auth::Basic(&id, &secret);
    let (key_id, key) = apikey(&s);

    let from_key = ica(&s, &[("x-api-key", &key)]).await;
    let ica_token = from_key.assert_ok("ICA with an API key")["token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&ica_token)["amr"], json!(["apikey"]));
    assert_eq!(claims(&ica_token)["api_key_id"], json!(key_id));
    // Presented back as a Bearer token, it is no IdP token: it does not come back as `pwd`.
    let r = ica(&s, &[("authorization", &bearer(&ica_token))]).await;
    assert_eq!(r.status, 401, "an ICA token as PsToken: {}", r.text);
    let r = ica_refresh(&s, &ica_token).await;
    assert_eq!(r.status, 403, "a token made from an API key cannot be refreshed: {}", r.text);

    // DocSpace: from the key, then from that token; both say how alice signed in.
    let d1 = docspace(&s, &[("authorization", &bearer(&key))]).await;
    let d1 = d1.assert_ok("DocSpace with an API key")["response"].as_str().unwrap().to_owned();
    let d2 = docspace(&s, &[("authorization", &bearer(&d1))]).await;
    let d2 = d2.assert_ok("DocSpace with its own token")["response"].as_str().unwrap().to_owned();
    let (c1, c2) = (claims(&d1), claims(&d2));
    assert_eq!(c2["amr"], json!(["apikey"]), "{c2}");
    assert_eq!((&c2["api_key_id"], &c2["auth_time"]), (&c1["api_key_id"], &c1["auth_time"]));
    assert!(c2["exp"].as_i64() <= c1["exp"].as_i64(), "a token minted from a token never outlives it");
    assert_eq!(c2["sid"], c1["jti"], "the minted token belongs to its parent's session");

    // An exchanged token too.
    let form = [("grant_type", EXCHANGE), ("subject_token", d1.as_str()), ("subject_token_type", ACCESS)];
    let exchanged = s.token("default", &form, auth).await;
    let exchanged = exchanged.assert_ok("exchange")["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&exchanged)["amr"], json!(["apikey"]));

    for t in [&ica_token, &d1, &d2, &exchanged] {
        assert!(s.is_active("default", t, auth).await, "live before the key is revoked");
    }
    // The CLI revokes in the store; the server learns of it at its next sync.
    s.cli_ok(&["apikey", "revoke", &key_id], None);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    for (what, t) in
        [("ICA", &ica_token), ("DocSpace", &d1), ("DocSpace from DocSpace", &d2), ("exchanged", &exchanged)]
    {
        assert!(!s.is_active("default", t, auth).await, "{what} token after its API key was revoked");
    }
    let r = docspace(&s, &[("authorization", &bearer(&d2))]).await;
    assert_eq!(r.status, 401, "DocSpace from a token of a revoked key: {}", r.text);
}

#[tokio::test]
async fn a_token_minted_from_a_token_never_outlives_its_chain() {
    let s = TestServer::start().await;
    let (id, secret) = setup(&s);
    let auth = Auth::Basic(&id, &secret);
    let issued = s.password_token("default", &id, &secret, "alice", "alice-password-1", None).await;
    let standard = issued["access_token"].as_str().unwrap().to_owned();
    let refresh = issued["refresh_token"].as_str().unwrap().to_owned();
    let parent = claims(&standard);
    assert_eq!(parent["amr"], json!(["pwd"]));
    // A second later, the ICA token and its renewal still end with the standard token.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = ica(&s, &[("authorization", &bearer(&standard))]).await;
    let first = r.assert_ok("ICA from a standard token")["token"].as_str().unwrap().to_owned();
    let renewed = ica_refresh(&s, &first).await;
    let renewed = renewed.assert_ok("ICA refresh")["token"].as_str().unwrap().to_owned();
    for t in [&first, &renewed] {
        let c = claims(t);
        assert!(c["exp"].as_i64() <= parent["exp"].as_i64(), "exp {} past the chain's {}", c["exp"], parent["exp"]);
        assert_eq!((&c["amr"], &c["auth_time"], &c["sid"]), (&parent["amr"], &parent["auth_time"], &parent["sid"]));
    }
    // Revoking the refresh token ends the family's session, and what was minted from it.
    assert_eq!(s.revoke("default", &refresh, auth).await.status, 200);
    for (what, t) in [("standard", &standard), ("ICA", &first), ("renewed ICA", &renewed)] {
        assert!(!s.is_active("default", t, auth).await, "{what} token after its family was revoked");
    }
    let r = ica_refresh(&s, &renewed).await;
    assert_eq!(r.status, 401, "renewing a token of a revoked session: {}", r.text);
}

#[tokio::test]
async fn exchange_drops_front_claims_and_ends_with_the_subject_session() {
    let s = TestServer::start().await;
    let (id, secret) = setup(&s);
    let auth = Auth::Basic(&id, &secret);
    let admin = sftpgo_token(&s, true).await;
    let form = [("grant_type", EXCHANGE), ("subject_token", admin.as_str()), ("subject_token_type", ACCESS)];
    let r = s.token("default", &form, auth).await;
    let exchanged = r.assert_ok("exchange of an SFTPGo admin token")["access_token"].as_str().unwrap().to_owned();
    let (a, e) = (claims(&admin), claims(&exchanged));
    assert!(e.get("permissions").is_none(), "SFTPGo's permissions must not be carried over: {e}");
    assert_eq!(e["aud"], json!(s.issuer("default")), "the exchanged token is the tenant's own: {e}");
    assert_eq!((&e["amr"], &e["sid"]), (&a["amr"], &a["jti"]));
    assert!(e["exp"].as_i64() <= a["exp"].as_i64());
    // Tapis v2: a legacy token of a Tapis token ends with it too.
    let tapis = tapis_password(&s).await;
    let body = json!({"access_token": tapis}).to_string();
    let headers = [("x-tapis-token", tapis.as_str()), ("content-type", "application/json")];
    let v2 = s.call("POST", "/v3/oauth2/v2/token", &headers, Some(&body)).await;
    let legacy = v2.assert_ok("Tapis v2 token")["result"]["access_token"].as_str().unwrap().to_owned();
    assert!(s.is_active("default", &legacy, auth).await);

    let r = s.call("GET", "/api/v2/logout", &[("authorization", &bearer(&admin))], None).await;
    assert_eq!(r.status, 200, "logout: {}", r.text);
    assert!(!s.is_active("default", &exchanged, auth).await, "the exchanged token outlived the logout");
    let body = json!({"token": tapis}).to_string();
    let r = s.call("POST", "/v3/oauth2/tokens/revoke", &[("content-type", "application/json")], Some(&body)).await;
    assert_eq!(r.status, 200, "Tapis revoke: {}", r.text);
    assert!(!s.is_active("default", &legacy, auth).await, "the v2 token outlived its v3 token");
}

#[tokio::test]
async fn a_disabled_users_tokens_mint_nothing() {
    let s = TestServer::start().await;
    let (id, secret) = setup(&s);
    let auth = Auth::Basic(&id, &secret);
    let issued = s.password_token("default", &id, &secret, "alice", "alice-password-1", None).await;
    let standard = issued["access_token"].as_str().unwrap().to_owned();
    let tapis = tapis_password(&s).await;
    s.disable_user("default", "alice");
    let form = [("grant_type", EXCHANGE), ("subject_token", standard.as_str()), ("subject_token_type", ACCESS)];
    s.token("default", &form, auth).await.assert_error(400, "invalid_grant", "exchange of a disabled user's token");
    let body = json!({"access_token": tapis}).to_string();
    let headers = [("x-tapis-token", tapis.as_str()), ("content-type", "application/json")];
    let r = s.call("POST", "/v3/oauth2/v2/token", &headers, Some(&body)).await;
    assert_eq!(r.status, 401, "Tapis v2 token of a disabled user: {}", r.text);
    let r = ica(&s, &[("authorization", &bearer(&standard))]).await;
    assert_eq!(r.status, 401, "ICA from a disabled user's token: {}", r.text);
    let r = docspace(&s, &[("authorization", &bearer(&standard))]).await;
    assert_eq!(r.status, 401, "DocSpace from a disabled user's token: {}", r.text);
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_session() {
    let s = TestServer::start().await;
    let (id, secret) = setup(&s);
    let auth = Auth::Basic(&id, &secret);
    let issued = s.password_token("default", &id, &secret, "alice", "alice-password-1", None).await;
    let access = issued["access_token"].as_str().unwrap();
    let refresh = issued["refresh_token"].as_str().unwrap();
    assert_eq!(s.revoke("default", access, auth).await.status, 200);
    let r = s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", refresh)], auth).await;
    r.assert_error(400, "invalid_grant", "refresh after its access token was revoked");
}

#[tokio::test]
async fn ica_never_tells_which_tenant_has_a_username() {
    let s = TestServer::start().await;
    s.create_tenant("acme", &[]);
    s.wait_for_tenant("acme");
    s.create_user("acme", "bob", "bob-password-12");
    s.create_user("acme", "carol", "carol-password-1");
    s.create_user("default", "carol", "carol-password-2");
    // Without ?tenant= the default tenant is asked, and only it: a name that exists only in
    // acme, in both, or nowhere gets the same answer as a wrong password.
    let mut details = vec![];
    for user in ["bob", "carol", "nobody"] {
        let r = ica(&s, &[("authorization", &basic(user, "wrong-password-1"))]).await;
        assert_eq!(r.status, 401, "{user}: {}", r.text);
        details.push(r.json["detail"].clone());
    }
    assert!(details.windows(2).all(|w| w[0] == w[1]), "answers differ: {details:?}");
    let r = ica(&s, &[("authorization", &basic("bob", "bob-password-12"))]).await;
    assert_eq!(r.status, 401, "bob is not a user of the default tenant: {}", r.text);
    let r = s
        .call("POST", "/ica/rest/api/tokens?tenant=acme", &[("authorization", &basic("bob", "bob-password-12"))], None)
        .await;
    assert_eq!(claims(r.assert_ok("bob in acme")["token"].as_str().unwrap())["tenant"], json!("acme"));
}
