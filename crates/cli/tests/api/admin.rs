//! The admin REST API (`/admin/v1`) and self-service (`/me`) over HTTP: every operation, who
//! may call them (the core decides), RFC 9457 problems, cursor paging, client secret rotation.

use crate::harness::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// A request with a bearer token (or none) and a JSON body.
async fn api(s: &TestServer, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = body.map(|b| b.to_string());
    s.call(method, path, &headers, body.as_deref()).await
}

/// Asserts an RFC 9457 problem of this status and core error code; returns its body.
#[track_caller]
fn problem(r: &Resp, status: u16, code: &str, what: &str) -> Value {
    assert_eq!((r.status, r.json["code"].as_str()), (status, Some(code)), "{what}: got {} {}", r.status, r.text);
    assert_eq!(r.header("content-type").as_deref(), Some("application/problem+json"), "{what}");
    assert_eq!(r.json["type"], format!("urn:tessera:problem:{code}"), "{what}");
    assert_eq!(r.json["status"], status, "{what}");
    assert!(r.json["title"].is_string() && r.json["detail"].is_string(), "{what}: {}", r.text);
    r.json.clone()
}

#[track_caller]
fn ok(r: &Resp, status: u16, what: &str) -> Value {
    assert_eq!(r.status, status, "{what}: got {} {}", r.status, r.text);
    r.json.clone()
}

/// A password+refresh client of `tenant`, and a token of `user` through it.
async fn user_token(s: &TestServer, tenant: &str, user: &str, password: &str) -> Value {
    let (id, secret) = s.create_client(tenant, "password,refresh_token", None);
    s.password_token(tenant, &id, &secret, user, password, None).await
}

fn access(t: &Value) -> String {
    t["access_token"].as_str().expect("access_token").to_owned()
}

/// The bootstrap admin's access token (role `admin` in the default tenant).
async fn admin_token(s: &TestServer) -> String {
    let pw = s.admin_password.clone().expect("bootstrap password");
    access(&user_token(s, "default", "admin", &pw).await)
}

fn make_admin(s: &TestServer, tenant: &str, username: &str, password: &str, role: &str) {
    s.cli_ok(
        &["user", "create", "--tenant", tenant, "--username", username, "--password-stdin", "--role", role],
        Some(&format!("{password}\n")),
    );
}

#[tokio::test]
async fn an_admin_manages_users_and_errors_are_problems() {
    let s = TestServer::start().await;
    let token = admin_token(&s).await;
    let t = Some(token.as_str());
    let body = json!({"username": "bob", "password": "bob's long password", "email": "bob@example.org"});
    let bob = ok(&api(&s, "POST", "/admin/v1/users", t, Some(body.clone())).await, 201, "create bob");
    assert_eq!((bob["username"].as_str(), bob["email"].as_str()), (Some("bob"), Some("bob@example.org")));
    assert!(bob.get("password_hash").is_none() && !bob.to_string().contains("argon2"), "no hash shown: {bob}");
    problem(&api(&s, "POST", "/admin/v1/users", t, Some(body)).await, 409, "conflict", "bob again");

    // Validation errors name the field at fault, from the core and from the body parser alike.
    let short = json!({"username": "carl", "password": "short"});
    let p = problem(&api(&s, "POST", "/admin/v1/users", t, Some(short)).await, 400, "invalid_request", "short");
    assert_eq!(p["errors"][0]["field"], "password", "{p}");
    let p = problem(
        &api(&s, "POST", "/admin/v1/users", t, Some(json!({"password": "x"}))).await,
        400,
        "invalid_request",
        "missing",
    );
    assert_eq!(p["errors"][0]["field"], "username", "{p}");
    let typo = json!({"username": "carl", "password": "carl's long password", "emial": "x"});
    let p = problem(&api(&s, "POST", "/admin/v1/users", t, Some(typo)).await, 400, "invalid_request", "typo");
    assert_eq!(p["errors"][0]["field"], "emial", "{p}");
    let r = s
        .call(
            "POST",
            "/admin/v1/users",
            &[("authorization", &format!("Bearer {token}")), ("content-type", "application/json")],
            Some("{not json"),
        )
        .await;
    problem(&r, 400, "invalid_request", "broken JSON");
    problem(&api(&s, "GET", "/admin/v1/users/nobody", t, None).await, 404, "not_found", "unknown user");

    let got = ok(&api(&s, "GET", "/admin/v1/users/bob", t, None).await, 200, "read bob");
    assert_eq!(got["roles"], json!([]));
    let patch = json!({"given_name": "Bob", "roles": ["ops"]});
    let got = ok(&api(&s, "PATCH", "/admin/v1/users/bob", t, Some(patch)).await, 200, "update bob");
    assert_eq!((got["given_name"].as_str(), got["roles"].clone()), (Some("Bob"), json!(["ops"])));
    assert_eq!(got["email"], "bob@example.org", "untouched fields stay");
    // An admin of the default tenant is no superadmin, and cannot make one.
    let up = json!({"roles": ["superadmin"]});
    problem(&api(&s, "PATCH", "/admin/v1/users/bob", t, Some(up)).await, 403, "forbidden", "grant superadmin");

    // Disable, enable, reset the password: bob's sign-in follows.
    let (id, secret) = s.create_client("default", "password,refresh_token", None);
    let bob_first = s.password_token("default", &id, &secret, "bob", "bob's long password", None).await;
    let got = ok(&api(&s, "POST", "/admin/v1/users/bob/disable", t, None).await, 200, "disable");
    assert_eq!(got["disabled"], true);
    let form = [("grant_type", "password"), ("username", "bob"), ("password", "bob's long password")];
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", "disabled");
    ok(&api(&s, "POST", "/admin/v1/users/bob/enable", t, None).await, 200, "enable");
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_ok("enabled again");
    let sessions = ok(&api(&s, "GET", "/admin/v1/users/bob/sessions", t, None).await, 200, "sessions");
    assert_eq!(sessions.as_array().map(Vec::len), Some(2), "two sign-ins, two sessions: {sessions}");
    let reset = json!({"password": "bob's new long password"});
    let r = api(&s, "POST", "/admin/v1/users/bob/password", t, Some(reset)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", "old password");
    let rt = bob_first["refresh_token"].as_str().expect("refresh token");
    let r =
        s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", rt)], Auth::Basic(&id, &secret)).await;
    r.assert_error(400, "invalid_grant", "a reset password ends the sessions");
    let sessions = ok(&api(&s, "GET", "/admin/v1/users/bob/sessions", t, None).await, 200, "sessions after");
    assert_eq!(sessions, json!([]));

    // Sessions: revoke one, then all.
    let one = s.password_token("default", &id, &secret, "bob", "bob's new long password", None).await;
    s.password_token("default", &id, &secret, "bob", "bob's new long password", None).await;
    let list = ok(&api(&s, "GET", "/admin/v1/users/bob/sessions", t, None).await, 200, "sessions");
    let sid = decode_jwt(&access(&one)).claims["sid"].as_str().expect("sid").to_owned();
    assert!(list.as_array().expect("list").iter().any(|x| x["id"] == sid.as_str()), "{list}");
    let r = api(&s, "DELETE", &format!("/admin/v1/users/bob/sessions/{sid}"), t, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!s.is_active("default", &access(&one), Auth::Basic(&id, &secret)).await, "its access token ends too");
    problem(
        &api(&s, "DELETE", &format!("/admin/v1/users/bob/sessions/{sid}"), t, None).await,
        404,
        "not_found",
        "again",
    );
    let n = ok(&api(&s, "DELETE", "/admin/v1/users/bob/sessions", t, None).await, 200, "revoke all");
    assert_eq!(n["revoked"], 1);

    // Lists filter.
    let list = ok(&api(&s, "GET", "/admin/v1/users?role=ops", t, None).await, 200, "by role");
    let names: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["bob"]);
    let list = ok(&api(&s, "GET", "/admin/v1/users?prefix=ad", t, None).await, 200, "by prefix");
    assert_eq!(list["items"][0]["username"], "admin");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    problem(&api(&s, "GET", "/admin/v1/users?limit=0", t, None).await, 400, "invalid_request", "limit 0");
    problem(&api(&s, "GET", "/admin/v1/users?cursor=zzz", t, None).await, 400, "invalid_request", "bad cursor");

    // The CLI sees the same users (one implementation, two fronts).
    let out = s.cli_ok(&["user", "list", "--json"], None);
    assert!(out.contains("\"bob\""), "{out}");
}

#[tokio::test]
async fn who_may_call_the_admin_api() {
    let s = TestServer::start().await;
    s.create_tenant("acme", &[]);
    make_admin(&s, "acme", "ann", "ann's long password", "admin");
    s.create_user("default", "plain", "plain's long password");
    let admin = admin_token(&s).await;
    let plain = access(&user_token(&s, "default", "plain", "plain's long password").await);
    let ann = access(&user_token(&s, "acme", "ann", "ann's long password").await);

    problem(&api(&s, "GET", "/admin/v1/users", None, None).await, 401, "invalid_token", "no token");
    let r = api(&s, "GET", "/admin/v1/users", Some("not-a-token"), None).await;
    problem(&r, 401, "invalid_token", "garbage");
    assert!(r.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")), "challenge");
    problem(&api(&s, "GET", "/admin/v1/users", Some(&plain), None).await, 403, "forbidden", "user token");
    ok(&api(&s, "GET", "/admin/v1/users", Some(&admin), None).await, 200, "admin");
    // The admin of tenant acme administers acme, not the default tenant; and the reverse.
    ok(&api(&s, "GET", "/t/acme/admin/v1/users", Some(&ann), None).await, 200, "ann at acme");
    problem(&api(&s, "GET", "/admin/v1/users", Some(&ann), None).await, 403, "forbidden", "ann at default");
    problem(&api(&s, "GET", "/t/acme/admin/v1/users", Some(&admin), None).await, 403, "forbidden", "admin at acme");
    problem(
        &api(&s, "GET", "/admin/v1/tenants", Some(&admin), None).await,
        403,
        "forbidden",
        "tenants: not superadmin",
    );

    // A machine token (client_credentials) is no user.
    let (cid, csecret) = s.create_client("default", "client_credentials", None);
    let machine = s.cc_token("default", &cid, &csecret, None).await;
    problem(&api(&s, "GET", "/admin/v1/users", Some(&machine), None).await, 403, "forbidden", "machine token");

    // Audience: the tenant's issuer or its admin API; another resource's token is refused.
    let (id, secret) = s.create_client("default", "password", None);
    let pw = s.admin_password.clone().expect("password");
    let form = |resource: &'static str| {
        vec![("grant_type", "password"), ("username", "admin"), ("password", pw.as_str()), ("resource", resource)]
    };
    let other = s.token("default", &form("https://elsewhere.example/api"), Auth::Basic(&id, &secret)).await;
    let other = other.assert_ok("token for another resource")["access_token"].as_str().expect("token").to_owned();
    problem(&api(&s, "GET", "/admin/v1/users", Some(&other), None).await, 401, "invalid_token", "wrong audience");
    let aud = format!("{}/admin/v1", s.issuer("default"));
    let mut f = vec![("grant_type", "password"), ("username", "admin"), ("password", pw.as_str())];
    f.push(("resource", &aud));
    let meant = s.token("default", &f, Auth::Basic(&id, &secret)).await;
    let meant = meant.assert_ok("token for the admin API")["access_token"].as_str().expect("token").to_owned();
    ok(&api(&s, "GET", "/admin/v1/users", Some(&meant), None).await, 200, "admin audience");

    // Expired: signed with the tenant's real key, but past its exp.
    let key = s.signing_key("default").await;
    let claims = decode_jwt(&admin).claims;
    let mut old = claims.clone();
    old["exp"] = json!(now() - 600);
    old["iat"] = json!(now() - 4000);
    let header = decode_jwt(&admin).header;
    let expired = sign_as(&key, &header, &old);
    problem(&api(&s, "GET", "/admin/v1/users", Some(&expired), None).await, 401, "invalid_token", "expired");
    // Revoked.
    let (rid, rsecret) = s.create_client("default", "password", None);
    let revoked = access(&s.password_token("default", &rid, &rsecret, "admin", &pw, None).await);
    assert_eq!(s.revoke("default", &revoked, Auth::Basic(&rid, &rsecret)).await.status, 200);
    problem(&api(&s, "GET", "/admin/v1/users", Some(&revoked), None).await, 401, "invalid_token", "revoked");

    // API keys: a non-admin's is refused, an admin's works (as X-API-Key or Bearer).
    let key = ok(&api(&s, "POST", "/me/api-keys", Some(&plain), Some(json!({"name": "ci"}))).await, 201, "plain's key");
    let plain_key = key["key"].as_str().expect("key").to_owned();
    let r = s.call("GET", "/admin/v1/users", &[("x-api-key", &plain_key)], None).await;
    problem(&r, 403, "forbidden", "non-admin API key");
    let key = ok(&api(&s, "POST", "/me/api-keys", Some(&admin), Some(json!({"name": "ops"}))).await, 201, "admin key");
    let admin_key = key["key"].as_str().expect("key").to_owned();
    ok(&s.call("GET", "/admin/v1/users", &[("x-api-key", &admin_key)], None).await, 200, "admin API key");
    ok(&api(&s, "GET", "/admin/v1/users", Some(&admin_key), None).await, 200, "admin API key as Bearer");
    // The admin lists and revokes API keys.
    let keys = ok(&api(&s, "GET", "/admin/v1/api-keys?username=plain", Some(&admin), None).await, 200, "keys");
    let kid = keys["items"][0]["id"].as_str().expect("id").to_owned();
    assert!(!keys.to_string().contains(&plain_key), "a listed key is never shown");
    let r = api(&s, "DELETE", &format!("/admin/v1/api-keys/{kid}"), Some(&admin), None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s.call("GET", "/me", &[("x-api-key", &plain_key)], None).await;
    problem(&r, 401, "invalid_token", "revoked API key");
}

#[tokio::test]
async fn a_superadmin_manages_tenants_and_their_keys() {
    let s = TestServer::start().await;
    make_admin(&s, "default", "root", "root's long password", "superadmin");
    let root = access(&user_token(&s, "default", "root", "root's long password").await);
    let root = Some(root.as_str());
    let body = json!({"name": "beta", "alg": "ES256", "access_ttl": 600, "hosts": ["beta.example"]});
    let t = ok(&api(&s, "POST", "/admin/v1/tenants", root, Some(body)).await, 201, "create beta");
    assert_eq!((t["alg"].as_str(), t["access_ttl"].as_i64()), (Some("ES256"), Some(600)));
    let p = problem(
        &api(&s, "POST", "/admin/v1/tenants", root, Some(json!({"name": "Bad Name"}))).await,
        400,
        "invalid_request",
        "bad name",
    );
    assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()));
    let list = ok(&api(&s, "GET", "/admin/v1/tenants", root, None).await, 200, "list");
    let names: Vec<&str> = list["items"].as_array().expect("items").iter().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["beta", "default"]);
    let patch = json!({"access_ttl": 300, "hosts": ["beta.example", "b.example"], "alg": "EdDSA"});
    let t = ok(&api(&s, "PATCH", "/admin/v1/tenants/beta", root, Some(patch)).await, 200, "update");
    assert_eq!((t["access_ttl"].as_i64(), t["alg"].as_str()), (Some(300), Some("EdDSA")));
    assert_eq!(t["hosts"], json!(["beta.example", "b.example"]));
    let bad = json!({"access_ttl": -5});
    let p = problem(&api(&s, "PATCH", "/admin/v1/tenants/beta", root, Some(bad)).await, 400, "invalid_request", "ttl");
    assert_eq!(p["errors"][0]["field"], "access_ttl");
    ok(&api(&s, "GET", "/admin/v1/tenants/beta", root, None).await, 200, "read");

    // The superadmin acts in beta through its path; a new key of the new algorithm was added.
    let keys = ok(&api(&s, "GET", "/t/beta/admin/v1/keys", root, None).await, 200, "keys");
    let algs: BTreeSet<&str> = keys.as_array().expect("keys").iter().filter_map(|k| k["alg"].as_str()).collect();
    assert_eq!(algs, BTreeSet::from(["ES256", "EdDSA"]), "{keys}");
    let k = ok(&api(&s, "POST", "/t/beta/admin/v1/keys", root, None).await, 201, "rotate");
    assert!(s.jwk("beta", k["kid"].as_str().expect("kid")).await.is_some(), "published");
    let u = json!({"username": "bea", "password": "bea's long password", "roles": ["admin"]});
    ok(&api(&s, "POST", "/t/beta/admin/v1/users", root, Some(u)).await, 201, "user in beta");
    // Beta's admin cannot touch the tenant list, nor hand out superadmin.
    let bea = access(&user_token(&s, "beta", "bea", "bea's long password").await);
    problem(&api(&s, "DELETE", "/admin/v1/tenants/beta", Some(&bea), None).await, 403, "forbidden", "bea deletes");
    let up = json!({"roles": ["superadmin"]});
    problem(
        &api(&s, "PATCH", "/t/beta/admin/v1/users/bea", Some(&bea), Some(up)).await,
        400,
        "invalid_request",
        "superadmin outside default",
    );

    problem(&api(&s, "DELETE", "/admin/v1/tenants/default", root, None).await, 400, "invalid_request", "default stays");
    let r = api(&s, "DELETE", "/admin/v1/tenants/beta", root, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    problem(&api(&s, "GET", "/admin/v1/tenants/beta", root, None).await, 404, "not_found", "gone");
    assert_eq!(s.get("/t/beta/.well-known/jwks.json").await.status, 404, "no longer served");
    // Its name can be taken again, from scratch.
    ok(&api(&s, "POST", "/admin/v1/tenants", root, Some(json!({"name": "beta"}))).await, 201, "again");
    let users = ok(&api(&s, "GET", "/t/beta/admin/v1/users", root, None).await, 200, "users of the new beta");
    assert_eq!(users["items"], json!([]));
}

#[tokio::test]
async fn paging_by_cursor_while_users_are_added() {
    let s = TestServer::start().await;
    let t = admin_token(&s).await;
    let t = Some(t.as_str());
    for n in ["u02", "u04", "u06", "u08", "u10", "u12"] {
        let body = json!({"username": n, "password": format!("{n}'s long password")});
        ok(&api(&s, "POST", "/admin/v1/users", t, Some(body)).await, 201, n);
    }
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/v1/users?prefix=u&limit=2&cursor={c}"),
            None => "/admin/v1/users?prefix=u&limit=2".to_owned(),
        };
        let page = ok(&api(&s, "GET", &path, t, None).await, 200, "page");
        for u in page["items"].as_array().expect("items") {
            seen.push(u["username"].as_str().expect("name").to_owned());
        }
        pages += 1;
        if pages == 1 {
            // Added while paging: one before the cursor (not seen), one after it (seen).
            for n in ["u01", "u09"] {
                let body = json!({"username": n, "password": format!("{n}'s long password")});
                ok(&api(&s, "POST", "/admin/v1/users", t, Some(body)).await, 201, n);
            }
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(pages < 10, "paging ends");
    }
    assert_eq!(seen, ["u02", "u04", "u06", "u08", "u09", "u10", "u12"], "in order, none twice, none skipped");
}

#[tokio::test]
async fn clients_and_secret_rotation_with_a_grace_period() {
    let s = TestServer::start().await;
    let t = admin_token(&s).await;
    let t = Some(t.as_str());
    let body = json!({"name": "svc", "grants": ["client_credentials"], "scopes": ["read"]});
    let c = ok(&api(&s, "POST", "/admin/v1/clients", t, Some(body)).await, 201, "create");
    let id = c["client_id"].as_str().expect("id").to_owned();
    let first = c["client_secret"].as_str().expect("secret").to_owned();
    s.cc_token("default", &id, &first, Some("read")).await;
    let bad = json!({"name": "x", "grants": ["implicit"]});
    let p = problem(&api(&s, "POST", "/admin/v1/clients", t, Some(bad)).await, 400, "invalid_request", "grant");
    assert_eq!(p["errors"][0]["field"], "grants");

    let got = ok(&api(&s, "GET", &format!("/admin/v1/clients/{id}"), t, None).await, 200, "read");
    assert!(got.get("client_secret").is_none(), "a read never shows the secret: {got}");
    let patch = json!({"scopes": ["read", "write"], "grants": ["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"], "name": "svc2"});
    let got = ok(&api(&s, "PATCH", &format!("/admin/v1/clients/{id}"), t, Some(patch)).await, 200, "update");
    assert_eq!((got["name"].as_str(), got["scopes"].clone()), (Some("svc2"), json!(["read", "write"])));
    s.cc_token("default", &id, &first, Some("write")).await;

    // Rotation with an hour of grace: both secrets work.
    let r = ok(
        &api(&s, "POST", &format!("/admin/v1/clients/{id}/secret"), t, Some(json!({"grace_seconds": 3600}))).await,
        200,
        "rotate",
    );
    let second = r["client_secret"].as_str().expect("new secret").to_owned();
    assert_ne!(second, first);
    assert!(r["previous_secret_expires_at"].as_i64().is_some_and(|e| e > now() + 3000), "{r}");
    s.cc_token("default", &id, &first, None).await;
    s.cc_token("default", &id, &second, None).await;
    // Rotation without grace: only the newest works; the two before stop at once.
    let r = ok(&api(&s, "POST", &format!("/admin/v1/clients/{id}/secret"), t, None).await, 200, "rotate now");
    let third = r["client_secret"].as_str().expect("new secret").to_owned();
    for old in [&first, &second] {
        let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&id, old)).await;
        r.assert_error(401, "invalid_client", "an old secret after a rotation without grace");
    }
    s.cc_token("default", &id, &third, None).await;
    // A short grace ends by itself.
    let r = ok(
        &api(&s, "POST", &format!("/admin/v1/clients/{id}/secret"), t, Some(json!({"grace_seconds": 1}))).await,
        200,
        "rotate",
    );
    let fourth = r["client_secret"].as_str().expect("new secret").to_owned();
    s.cc_token("default", &id, &third, None).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&id, &third)).await;
    r.assert_error(401, "invalid_client", "the grace period is over");
    s.cc_token("default", &id, &fourth, None).await;
    let p = problem(
        &api(&s, "POST", &format!("/admin/v1/clients/{id}/secret"), t, Some(json!({"grace_seconds": -1}))).await,
        400,
        "invalid_request",
        "grace",
    );
    assert_eq!(p["errors"][0]["field"], "grace");

    let list = ok(&api(&s, "GET", "/admin/v1/clients", t, None).await, 200, "list");
    assert!(list["items"].as_array().expect("items").iter().any(|c| c["client_id"] == id.as_str()));
    let r = api(&s, "DELETE", &format!("/admin/v1/clients/{id}"), t, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    problem(&api(&s, "GET", &format!("/admin/v1/clients/{id}"), t, None).await, 404, "not_found", "deleted");
    let r = s.token("default", &[("grant_type", "client_credentials")], Auth::Basic(&id, &fourth)).await;
    r.assert_error(401, "invalid_client", "a deleted client");
}

#[tokio::test]
async fn a_user_serves_themselves_at_me() {
    let s = TestServer::start().await;
    s.create_tenant("acme", &[]);
    s.create_user("acme", "mia", "mia's long password");
    let (id, secret) = s.create_client("acme", "password,refresh_token", None);
    let tok = s.password_token("acme", &id, &secret, "mia", "mia's long password", None).await;
    let t = access(&tok);
    let t = Some(t.as_str());
    let me = ok(&api(&s, "GET", "/t/acme/me", t, None).await, 200, "me");
    assert_eq!((me["username"].as_str(), me["tenant"].as_str()), (Some("mia"), Some("acme")));
    // A token of acme is no token at the default tenant's /me.
    problem(&api(&s, "GET", "/me", t, None).await, 401, "invalid_token", "another tenant");
    let me = ok(&api(&s, "PATCH", "/t/acme/me", t, Some(json!({"email": "mia@acme.example"}))).await, 200, "patch");
    assert_eq!(me["email"], "mia@acme.example");
    problem(
        &api(&s, "PATCH", "/t/acme/me", t, Some(json!({"roles": ["admin"]}))).await,
        400,
        "invalid_request",
        "no roles here",
    );
    problem(&api(&s, "GET", "/t/acme/admin/v1/users", t, None).await, 403, "forbidden", "a user at the admin API");

    // API keys: create, list (never the key), revoke.
    let k = ok(
        &api(&s, "POST", "/t/acme/me/api-keys", t, Some(json!({"name": "laptop", "expires_in": 3600}))).await,
        201,
        "key",
    );
    let key = k["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("tsk_"));
    let r = s.call("GET", "/t/acme/me", &[("x-api-key", &key)], None).await;
    ok(&r, 200, "me by API key");
    let list = ok(&api(&s, "GET", "/t/acme/me/api-keys", t, None).await, 200, "list");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert!(!list.to_string().contains(&key));
    let kid = list[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(api(&s, "DELETE", &format!("/t/acme/me/api-keys/{kid}"), t, None).await.status, 204);
    problem(&s.call("GET", "/t/acme/me", &[("x-api-key", &key)], None).await, 401, "invalid_token", "revoked key");

    // TOTP: enrol, confirm with a code, regenerate recovery codes, remove.
    let e = ok(&api(&s, "POST", "/t/acme/me/totp", t, None).await, 201, "enrol");
    let raw = base32_decode(e["secret"].as_str().expect("secret"));
    assert!(e["otpauth_uri"].as_str().is_some_and(|u| u.starts_with("otpauth://totp/")));
    problem(
        &api(&s, "POST", "/t/acme/me/totp/confirm", t, Some(json!({"code": "000000x"}))).await,
        400,
        "invalid_grant",
        "wrong code",
    );
    let code = tessera_core::totp::code_at(&raw, now());
    let codes = ok(&api(&s, "POST", "/t/acme/me/totp/confirm", t, Some(json!({"code": code}))).await, 200, "confirm");
    assert_eq!(codes["recovery_codes"].as_array().map(Vec::len), Some(10));
    let again = ok(&api(&s, "POST", "/t/acme/me/recovery-codes", t, None).await, 200, "regenerate");
    assert_ne!(again["recovery_codes"], codes["recovery_codes"]);
    let form = [("grant_type", "password"), ("username", "mia"), ("password", "mia's long password")];
    s.token("acme", &form, Auth::Basic(&id, &secret)).await.assert_error(400, "mfa_required", "2FA on");
    let old_code = codes["recovery_codes"][0].as_str().expect("code").to_owned();
    let mut with = form.to_vec();
    with.push(("otp", &old_code));
    s.token("acme", &with, Auth::Basic(&id, &secret)).await.assert_error(
        400,
        "invalid_grant",
        "replaced recovery code",
    );
    assert_eq!(api(&s, "DELETE", "/t/acme/me/totp", t, None).await.status, 204);
    let second = s.token("acme", &form, Auth::Basic(&id, &secret)).await.assert_ok("2FA off").clone();
    problem(&api(&s, "POST", "/t/acme/me/recovery-codes", t, None).await, 409, "conflict", "no 2FA, no codes");

    // Sessions: two sign-ins; revoke the second.
    let list = ok(&api(&s, "GET", "/t/acme/me/sessions", t, None).await, 200, "sessions");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let sid = decode_jwt(&access(&second)).claims["sid"].as_str().expect("sid").to_owned();
    assert_eq!(api(&s, "DELETE", &format!("/t/acme/me/sessions/{sid}"), t, None).await.status, 204);
    problem(&api(&s, "GET", "/t/acme/me", Some(&access(&second)), None).await, 401, "invalid_token", "its token ended");

    // Password change: the old one is required; then every session ends, this token's too.
    let wrong = json!({"old_password": "not my password", "new_password": "mia's new long password"});
    let p = problem(&api(&s, "POST", "/t/acme/me/password", t, Some(wrong)).await, 400, "invalid_request", "wrong old");
    assert_eq!(p["errors"][0]["field"], "old_password");
    let weak = json!({"old_password": "mia's long password", "new_password": "short"});
    let p = problem(&api(&s, "POST", "/t/acme/me/password", t, Some(weak)).await, 400, "invalid_request", "weak");
    assert_eq!(p["errors"][0]["field"], "password");
    let change = json!({"old_password": "mia's long password", "new_password": "mia's new long password"});
    assert_eq!(api(&s, "POST", "/t/acme/me/password", t, Some(change)).await.status, 204);
    let rt = tok["refresh_token"].as_str().expect("refresh token");
    let r = s.token("acme", &[("grant_type", "refresh_token"), ("refresh_token", rt)], Auth::Basic(&id, &secret)).await;
    r.assert_error(400, "invalid_grant", "refresh after a password change");
    problem(&api(&s, "GET", "/t/acme/me", t, None).await, 401, "invalid_token", "the caller's own token ended");
    s.password_token("acme", &id, &secret, "mia", "mia's new long password", None).await;
}

#[tokio::test]
async fn a_password_change_at_one_node_ends_the_sessions_at_both() {
    let (_schema, a, b) = crate::pg::two_nodes_with("pwchange", &[]).await;
    a.create_user("default", "nora", "nora's long password");
    let (id, secret) = a.create_client("default", "password,refresh_token", None);
    let at_a = a.password_token("default", &id, &secret, "nora", "nora's long password", None).await;
    let at_b = b.password_token("default", &id, &secret, "nora", "nora's long password", None).await;
    let tb = access(&at_b);
    ok(&api(&b, "GET", "/me", Some(&tb), None).await, 200, "B serves nora");
    let sessions = ok(&api(&b, "GET", "/me/sessions", Some(&tb), None).await, 200, "sessions at B");
    assert_eq!(sessions.as_array().map(Vec::len), Some(2), "both nodes' sign-ins: {sessions}");
    let change = json!({"old_password": "nora's long password", "new_password": "nora's new long password"});
    assert_eq!(api(&a, "POST", "/me/password", Some(&access(&at_a)), Some(change)).await.status, 204);
    // Node B learns of the revocations from the store within a second (no timing asserted:
    // it is awaited, then both refresh tokens are refused at B).
    let start = std::time::Instant::now();
    while api(&b, "GET", "/me", Some(&tb), None).await.status == 200 {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "B still accepts nora's old token");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    problem(&api(&b, "GET", "/me", Some(&tb), None).await, 401, "invalid_token", "B refuses the old token");
    for t in [&at_a, &at_b] {
        let rt = t["refresh_token"].as_str().expect("refresh token");
        let r = b
            .token("default", &[("grant_type", "refresh_token"), ("refresh_token", rt)], Auth::Basic(&id, &secret))
            .await;
        r.assert_error(400, "invalid_grant", "a refresh token of an ended session at B");
    }
    b.password_token("default", &id, &secret, "nora", "nora's new long password", None).await;
}

#[tokio::test]
async fn the_cli_runs_the_same_operations() {
    let s = TestServer::start().await;
    s.create_user("default", "olga", "olga's long password");
    let (id, secret) = s.create_client("default", "password,refresh_token,client_credentials", None);
    let first = s.password_token("default", &id, &secret, "olga", "olga's long password", None).await;
    // Roles set at the CLI open the admin API.
    let t = access(&first);
    problem(&api(&s, "GET", "/admin/v1/users", Some(&t), None).await, 403, "forbidden", "before");
    s.cli_ok(&["user", "update", "--username", "olga", "--role", "admin", "--email", "o@example.org"], None);
    let u = ok(&api(&s, "GET", "/admin/v1/users/olga", Some(&t), None).await, 200, "after");
    assert_eq!((u["roles"].clone(), u["email"].as_str()), (json!(["admin"]), Some("o@example.org")));
    // Sessions, as the API lists them.
    let out = s.cli_ok(&["user", "sessions", "--username", "olga", "--json"], None);
    let cli: Value = serde_json::from_str(&out).expect("json");
    let api_list = ok(&api(&s, "GET", "/admin/v1/users/olga/sessions", Some(&t), None).await, 200, "sessions");
    assert_eq!(cli[0]["id"], api_list[0]["id"]);
    // A reset password ends them.
    s.cli_ok(&["user", "reset-password", "--username", "olga", "--password-stdin"], Some("olga's new long password\n"));
    let rt = first["refresh_token"].as_str().expect("refresh token");
    let r =
        s.token("default", &[("grant_type", "refresh_token"), ("refresh_token", rt)], Auth::Basic(&id, &secret)).await;
    r.assert_error(400, "invalid_grant", "after the CLI's reset");
    let out = s.cli_ok(&["user", "sessions", "--username", "olga", "--json"], None);
    assert_eq!(out.trim(), "[]");
    s.password_token("default", &id, &secret, "olga", "olga's new long password", None).await;
    let out = s.cli_ok(&["user", "revoke-sessions", "--username", "olga"], None);
    assert!(out.contains("ended 1 sessions"), "{out}");
    // Disable and enable.
    s.disable_user("default", "olga");
    let form = [("grant_type", "password"), ("username", "olga"), ("password", "olga's new long password")];
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_error(400, "invalid_grant", "disabled");
    s.cli_ok(&["user", "enable", "--username", "olga"], None);
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_ok("enabled");
    // Client update and secret rotation with grace.
    // (The server learns of a change made at the CLI on its next sync with the store.)
    s.cli_ok(&["client", "update", &id, "--scope", "read write", "--name", "renamed"], None);
    let write = [("grant_type", "client_credentials"), ("scope", "write")];
    eventually_ok(&s, &write, &id, &secret, "the CLI's new scope").await;
    let out = s.cli_ok(&["client", "rotate-secret", &id, "--grace", "1h", "--json"], None);
    let v: Value = serde_json::from_str(&out).expect("json");
    let new = v["client_secret"].as_str().expect("secret");
    eventually_ok(&s, &write[..1], &id, new, "the CLI's new secret").await;
    s.cc_token("default", &id, &secret, None).await;
    // Tenants: host names at the CLI, deletion.
    s.create_tenant("gone", &[]);
    s.cli_ok(&["tenant", "policy", "gone", "--host", "gone.example"], None);
    let out = s.cli_ok(&["tenant", "list", "--json"], None);
    assert!(out.contains("\"gone\""), "{out}");
    s.cli_ok(&["tenant", "delete", "gone"], None);
    let out = s.cli_ok(&["tenant", "list", "--json"], None);
    assert!(!out.contains("\"gone\""), "{out}");
    assert_cli_error(&s.cli(&["tenant", "delete", "default"], None), "the default tenant");
}

/// Wait (5 s at most) until this token request succeeds.
async fn eventually_ok(s: &TestServer, form: &[(&str, &str)], id: &str, secret: &str, what: &str) {
    let start = std::time::Instant::now();
    loop {
        let r = s.token("default", form, Auth::Basic(id, secret)).await;
        if r.status == 200 {
            return;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(5), "{what}: still {} {}", r.status, r.text);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Every `$ref` in `v`.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_admin_and_self_service_route() {
    let s = TestServer::start().await;
    let r = s.get("/openapi.json").await;
    let doc = ok(&r, 200, "openapi.json");
    assert_eq!(doc["openapi"], "3.1.0");
    let registered = tessera_server::openapi::registered();
    assert!(registered.contains(&("post".to_owned(), "/admin/v1/users".to_owned())), "{registered:?}");
    assert!(registered.contains(&("get".to_owned(), "/t/{tenant}/me".to_owned())), "{registered:?}");
    let admin = registered
        .iter()
        .filter(|(_, p)| p.contains("/admin/v1") || p == "/me" || p.starts_with("/me/") || p.contains("}/me"));
    for (method, path) in admin {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "the document lacks {method} {path}");
        assert!(op["responses"]["default"]["content"]["application/problem+json"].is_object(), "{method} {path}");
        assert!(op["security"].is_array(), "{method} {path}: no security");
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("unexpected $ref {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "$ref {r} names no schema");
    }
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        (schemes["bearer"]["scheme"].as_str(), schemes["apiKey"]["name"].as_str()),
        (Some("bearer"), Some("X-API-Key"))
    );
    // The answers are the types the handlers serialize: a created user is a UserView.
    let user = &doc["components"]["schemas"]["UserView"]["properties"];
    assert!(user["username"].is_object() && user["totp_enabled"].is_object(), "{user}");
}

/// `GET /admin/v1/audit` with `query`, once its rows include `event` (the writer runs every
/// half second: wait for it, for at most 20 s).
async fn audit_rows(s: &TestServer, token: &str, query: &str, event: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let page = ok(&api(s, "GET", &format!("/admin/v1/audit?{query}"), Some(token), None).await, 200, query);
        let items = page["items"].as_array().expect("items");
        if items.iter().any(|r| r["event"] == event) {
            return page;
        }
        assert!(std::time::Instant::now() < deadline, "no `{event}` row for {query}: {page}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_audit_trail_over_the_api_records_every_admin_change_without_a_secret() {
    let s = TestServer::start().await;
    // A superadmin: tenants are among the changes.
    make_admin(&s, "default", "root", "root's long password", "superadmin");
    let token = access(&user_token(&s, "default", "root", "root's long password").await);
    let t = Some(token.as_str());
    // Changes of every kind the admin API makes.
    let bob_pw = "bob's first long password";
    ok(&api(&s, "POST", "/admin/v1/users", t, Some(json!({"username": "bob", "password": bob_pw}))).await, 201, "bob");
    let patch = json!({"email": "bob@example.org", "roles": ["reader"]});
    ok(&api(&s, "PATCH", "/admin/v1/users/bob", t, Some(patch)).await, 200, "update bob");
    let reset = "bob's second long password";
    let r = api(&s, "POST", "/admin/v1/users/bob/password", t, Some(json!({"password": reset}))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = api(&s, "DELETE", "/admin/v1/users/bob/sessions", t, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = ok(
        &api(&s, "POST", "/admin/v1/clients", t, Some(json!({"name": "svc", "grants": ["client_credentials"]}))).await,
        201,
        "client",
    );
    let id = c["client_id"].as_str().expect("id").to_owned();
    let first = c["client_secret"].as_str().expect("secret").to_owned();
    let rotated = ok(&api(&s, "POST", &format!("/admin/v1/clients/{id}/secret"), t, None).await, 200, "rotate");
    let second = rotated["client_secret"].as_str().expect("secret").to_owned();
    ok(&api(&s, "POST", "/admin/v1/tenants", t, Some(json!({"name": "gone"}))).await, 201, "tenant");
    let r = api(&s, "DELETE", "/admin/v1/tenants/gone", t, None).await;
    assert_eq!(r.status, 204, "{}", r.text);
    // A refused change is recorded as a failure.
    problem(
        &api(&s, "PATCH", "/admin/v1/users/nobody", t, Some(json!({"email": "x@y.z"}))).await,
        404,
        "not_found",
        "x",
    );

    for (event, subject) in [
        ("user_update", "bob"),
        ("password_change", "bob"),
        ("token_revoke", "bob"),
        ("client_secret_rotate", id.as_str()),
        ("tenant_delete", "gone"),
    ] {
        let page = audit_rows(&s, &token, &format!("event={event}&outcome=success"), event).await;
        let row = &page["items"][0];
        assert_eq!((row["subject"].as_str(), row["actor"].as_str()), (Some(subject), Some("user")), "{event}: {row}");
        assert_eq!((row["actor_name"].as_str(), row["tenant"].as_str()), (Some("root"), Some("default")), "{row}");
        assert!(row["id"].is_i64() && row["at"].as_i64().is_some_and(|at| at > now() - 600), "{row}");
    }
    let failed = audit_rows(&s, &token, "event=user_update&outcome=failure", "user_update").await;
    assert_eq!(failed["items"][0]["subject"], "nobody", "{failed}");
    assert!(failed["items"][0]["detail"].as_str().is_some_and(|d| d.contains("not_found")), "{failed}");

    // Filters by actor and subject, cursor paging (newest first), and no secret in any row.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let q = format!("actor=root&limit=2{cursor}");
        let page = ok(&api(&s, "GET", &format!("/admin/v1/audit?{q}"), t, None).await, 200, "page");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2 && items.iter().all(|r| r["actor_name"] == "root"), "{page}");
        seen.extend(items.iter().map(|r| r["id"].as_i64().expect("id")));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert!(seen.len() >= 8 && seen.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {seen:?}");
    let everything = ok(&api(&s, "GET", "/admin/v1/audit?limit=500", t, None).await, 200, "all").to_string();
    for secret in [bob_pw, reset, first.as_str(), second.as_str(), token.as_str()] {
        assert!(!everything.contains(secret), "a secret in the audit trail: {secret}");
    }
    let bob = ok(&api(&s, "GET", "/admin/v1/audit?subject=bob&limit=500", t, None).await, 200, "bob's");
    assert!(bob["items"].as_array().expect("items").iter().all(|r| r["subject"] == "bob"), "{bob}");

    // Bad filters are problems naming the field; a user without the admin role is refused.
    let p = problem(&api(&s, "GET", "/admin/v1/audit?event=nonsense", t, None).await, 400, "invalid_request", "event");
    assert_eq!(p["errors"][0]["field"], "event", "{p}");
    problem(&api(&s, "GET", "/admin/v1/audit?limit=0", t, None).await, 400, "invalid_request", "limit");
    problem(&api(&s, "GET", "/admin/v1/audit?since=20&until=10", t, None).await, 400, "invalid_request", "range");
    let bobs = access(&user_token(&s, "default", "bob", reset).await);
    problem(&api(&s, "GET", "/admin/v1/audit", Some(&bobs), None).await, 403, "forbidden", "not an admin");
}

/// Found by schemathesis: a lifetime near `i64::MAX` overflowed (a panic, answered 500).
#[tokio::test]
async fn an_api_key_lifetime_out_of_range_is_a_problem_not_a_crash() {
    let s = TestServer::start().await;
    let token = admin_token(&s).await;
    for expires_in in [i64::MAX - 1, 10 * 365 * 86_400 + 1, 0] {
        let body = json!({"name": "k", "expires_in": expires_in, "scopes": []});
        let p = problem(&api(&s, "POST", "/me/api-keys", Some(&token), Some(body)).await, 400, "invalid_request", "x");
        assert_eq!(p["errors"][0]["field"], "expires_in", "{p}");
    }
    let body = json!({"name": "k", "expires_in": 86_400});
    let k = ok(&api(&s, "POST", "/me/api-keys", Some(&token), Some(body)).await, 201, "a day");
    assert!(k["expires_at"].as_i64().is_some_and(|e| e > now() + 86_000), "{k}");
}

#[tokio::test]
async fn a_key_is_retired_early_but_never_the_one_that_signs() {
    let s = TestServer::start_with_env(&[("TESSERA_KEY_PREPUBLISH", "0")]).await;
    let token = admin_token(&s).await;
    let t = Some(token.as_str());
    let (id, secret) = s.create_client("default", "client_credentials", None);
    let old_token = s.cc_token("default", &id, &secret, None).await;
    let keys = ok(&api(&s, "GET", "/admin/v1/keys", t, None).await, 200, "keys");
    let first = keys[0]["kid"].as_str().expect("kid").to_owned();
    // The key that signs now cannot be retired.
    let p = problem(&api(&s, "DELETE", &format!("/admin/v1/keys/{first}"), t, None).await, 409, "conflict", "signing");
    assert!(p["detail"].as_str().is_some_and(|d| d.contains("rotate first")), "{p}");
    assert!(s.introspect("default", &old_token, Auth::Basic(&id, &secret)).await["active"] == true);
    // Once a new key signs, the old one goes: out of the JWK Set, and its tokens stop working.
    let new = ok(&api(&s, "POST", "/admin/v1/keys", t, None).await, 201, "rotate");
    let retired = ok(&api(&s, "DELETE", &format!("/admin/v1/keys/{first}"), t, None).await, 200, "retire");
    assert_eq!((retired["kid"].as_str(), retired["status"].as_str()), (Some(first.as_str()), Some("retiring")));
    assert!(s.jwk("default", &first).await.is_none(), "still published");
    assert!(s.jwk("default", new["kid"].as_str().expect("kid")).await.is_some(), "the new key is");
    let intro = s.introspect("default", &old_token, Auth::Basic(&id, &secret)).await;
    assert_eq!(intro["active"], false, "a token of the retired key: {intro}");
    let fresh = s.cc_token("default", &id, &secret, None).await;
    assert_eq!(s.introspect("default", &fresh, Auth::Basic(&id, &secret)).await["active"], true);
    // The administrator's own token was signed by the retired key too.
    problem(&api(&s, "GET", "/admin/v1/keys", t, None).await, 401, "invalid_token", "the old admin token");
    let token = admin_token(&s).await;
    let t = Some(token.as_str());
    problem(&api(&s, "DELETE", &format!("/admin/v1/keys/{first}"), t, None).await, 404, "not_found", "again");
    // The CLI retires through the same operation; a user without the admin role may not.
    let third = ok(&api(&s, "POST", "/admin/v1/keys", t, None).await, 201, "rotate again");
    let second = new["kid"].as_str().expect("kid");
    let out = s.cli_ok(&["key", "retire", second], None);
    assert!(out.contains(second), "{out}");
    // The server learns of it through the change feed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.jwk("default", second).await.is_some() {
        assert!(std::time::Instant::now() < deadline, "the CLI's retirement never reached the server");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    s.create_user("default", "carol", "carol's long password");
    let carol = access(&user_token(&s, "default", "carol", "carol's long password").await);
    let third = third["kid"].as_str().expect("kid");
    problem(
        &api(&s, "DELETE", &format!("/admin/v1/keys/{third}"), Some(&carol), None).await,
        403,
        "forbidden",
        "carol",
    );
    let token = admin_token(&s).await;
    let page = audit_rows(&s, &token, "event=key_retire", "key_retire").await;
    assert!(page["items"].as_array().expect("items").iter().any(|r| r["detail"] == format!("kid={first}")), "{page}");
}

/// A policy change made elsewhere (here: the CLI, on the database directly) survives an update
/// of another field through a node that has not reloaded the tenant yet: the node starts from
/// the stored tenant, not its cached copy.
#[tokio::test]
async fn a_tenant_update_keeps_a_change_made_elsewhere() {
    let s = TestServer::start().await;
    let token = admin_token(&s).await;
    let t = Some(token.as_str());
    s.cli_ok(&["tenant", "policy", "default", "--max-user-clients", "7"], None);
    let got = ok(&api(&s, "PATCH", "/admin/v1/tenants/default", t, Some(json!({"access_ttl": 600}))).await, 200, "ttl");
    assert_eq!((got["access_ttl"].as_i64(), got["max_user_clients"].as_i64()), (Some(600), Some(7)), "{got}");
    let got = ok(&api(&s, "GET", "/admin/v1/tenants/default", t, None).await, 200, "read");
    assert_eq!((got["access_ttl"].as_i64(), got["max_user_clients"].as_i64()), (Some(600), Some(7)), "{got}");
}

#[tokio::test]
async fn an_admin_requires_and_removes_a_users_second_factor() {
    let s = TestServer::start().await;
    let token = admin_token(&s).await;
    let t = Some(token.as_str());
    let body = json!({"username": "tia", "password": "tia's long password"});
    ok(&api(&s, "POST", "/admin/v1/users", t, Some(body)).await, 201, "create tia");
    let (id, secret) = s.create_client("default", "password,refresh_token", None);
    let form = [("grant_type", "password"), ("username", "tia"), ("password", "tia's long password")];
    let tia = access(s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_ok("no 2FA yet"));

    // Required by the admin: the password alone no longer gets a token.
    let got =
        ok(&api(&s, "PATCH", "/admin/v1/users/tia", t, Some(json!({"totp_required": true}))).await, 200, "require");
    assert_eq!((got["totp_required"].as_bool(), got["totp_enabled"].as_bool()), (Some(true), Some(false)), "{got}");
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_error(
        400,
        "mfa_required",
        "required, not set up",
    );
    // Nor may a user require it of themself, or of anyone (roles and 2FA policy are the admins').
    let r = api(&s, "PATCH", "/me", Some(&tia), Some(json!({"totp_required": false}))).await;
    problem(&r, 400, "invalid_request", "not at /me");

    // tia sets it up; then it is asked for, and she cannot remove it herself.
    let e = ok(&api(&s, "POST", "/me/totp", Some(&tia), None).await, 201, "enrol");
    let raw = base32_decode(e["secret"].as_str().expect("secret"));
    let code = tessera_core::totp::code_at(&raw, now());
    ok(&api(&s, "POST", "/me/totp/confirm", Some(&tia), Some(json!({"code": code}))).await, 200, "confirm");
    let got = ok(&api(&s, "GET", "/admin/v1/users/tia", t, None).await, 200, "read");
    assert_eq!(got["totp_enabled"], true, "{got}");
    assert!(!got.to_string().contains(e["secret"].as_str().expect("secret")), "no secret shown: {got}");
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_error(400, "mfa_required", "code needed");
    problem(&api(&s, "DELETE", "/me/totp", Some(&tia), None).await, 403, "forbidden", "required: not by herself");

    // Only an admin removes another user's factor; the user's own token is refused there.
    let r = api(&s, "DELETE", "/admin/v1/users/tia/totp", Some(&tia), None).await;
    problem(&r, 403, "forbidden", "a user at the admin route");
    problem(&api(&s, "DELETE", "/admin/v1/users/nobody/totp", t, None).await, 404, "not_found", "unknown user");
    assert_eq!(api(&s, "DELETE", "/admin/v1/users/tia/totp", t, None).await.status, 204);
    let got = ok(&api(&s, "GET", "/admin/v1/users/tia", t, None).await, 200, "read after");
    assert_eq!((got["totp_required"].as_bool(), got["totp_enabled"].as_bool()), (Some(true), Some(false)), "{got}");
    // Removed but still required: set it up again before a token (the old secret is gone).
    let mut with = form.to_vec();
    let old = tessera_core::totp::code_at(&raw, now());
    with.push(("otp", &old));
    s.token("default", &with, Auth::Basic(&id, &secret)).await.assert_error(400, "mfa_required", "old secret gone");
    ok(&api(&s, "PATCH", "/admin/v1/users/tia", t, Some(json!({"totp_required": false}))).await, 200, "release");
    s.token("default", &form, Auth::Basic(&id, &secret)).await.assert_ok("no longer required");
}
