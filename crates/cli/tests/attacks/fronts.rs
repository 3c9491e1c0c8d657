//! Every route that takes a bearer token, at any tenant, and the genuine tokens of each kind
//! that a route accepts: what the attacks present their forgeries to.

use crate::harness::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

pub const PW: &str = "alice-password-1";
pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

pub fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")))
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A tenant as each front addresses it: the standard endpoints by path, Tapis, SFTPGo and
/// DocSpace by Host, ICA by its `tenant` parameter.
#[derive(Clone, Debug)]
pub struct At {
    pub tenant: String,
    /// The host name mapped to the tenant (none for the default tenant).
    pub host: Option<String>,
    /// A confidential client of the tenant allowed the password, refresh and exchange grants.
    pub client: (String, String),
}

impl At {
    fn ica_query(&self) -> String {
        format!("?tenant={}", self.tenant)
    }
}

/// A route that takes a bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Introspect,
    Exchange,
    TapisUserinfo,
    TapisV2,
    IcaToken,
    IcaRefresh,
    DocSpace,
    SftpgoLogout,
    SftpgoUserLogout,
}

/// The kinds of genuine token, by the front that minted them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Standard,
    SftpgoAdmin,
    SftpgoUser,
    Ica,
    DocSpace,
}

pub const KINDS: [Kind; 5] = [Kind::Standard, Kind::SftpgoAdmin, Kind::SftpgoUser, Kind::Ica, Kind::DocSpace];

/// Routes that do not end the token, then the two logouts (which do).
pub const ROUTES: [Route; 9] = [
    Route::Introspect,
    Route::Exchange,
    Route::TapisUserinfo,
    Route::TapisV2,
    Route::IcaToken,
    Route::IcaRefresh,
    Route::DocSpace,
    Route::SftpgoLogout,
    Route::SftpgoUserLogout,
];

impl Route {
    /// Does this route take a genuine token of `kind` (api/audience.rs proves the rest are
    /// refused)? Introspection describes any token of its tenant.
    pub fn takes(self, kind: Kind) -> bool {
        match self {
            Route::Introspect => true,
            Route::Exchange | Route::TapisUserinfo | Route::TapisV2 | Route::IcaToken => kind == Kind::Standard,
            Route::IcaRefresh => kind == Kind::Ica,
            Route::DocSpace => matches!(kind, Kind::Standard | Kind::DocSpace),
            Route::SftpgoLogout => kind == Kind::SftpgoAdmin,
            Route::SftpgoUserLogout => kind == Kind::SftpgoUser,
        }
    }
}

/// Sends a request to `path` of the server as addressed at `at` (Host header for the fronts).
pub async fn send(
    s: &TestServer,
    at: &At,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(h) = &at.host {
        all.push(("host", h));
    }
    s.call(method, path, &all, body).await
}

/// Presents `token` at `route` of tenant `at`: whether it was taken, and what was answered.
pub async fn present(s: &TestServer, at: &At, route: Route, token: &str) -> (bool, String) {
    let (id, secret) = (&at.client.0, &at.client.1);
    let auth = Auth::Basic(id, secret);
    let b = bearer(token);
    let r = match route {
        Route::Introspect => {
            let r = s.post_form(&at.tenant, "/oauth2/introspect", &[("token", token)], auth).await;
            assert_eq!(r.status, 200, "introspection answers 200: {}", r.text);
            return (r.json["active"] == json!(true), r.text);
        }
        Route::Exchange => {
            let form = [("grant_type", EXCHANGE), ("subject_token", token), ("subject_token_type", ACCESS)];
            let r = s.token(&at.tenant, &form, auth).await;
            if r.status != 200 {
                r.assert_error(400, "invalid_grant", "a refused exchange");
            }
            r
        }
        Route::TapisUserinfo => send(s, at, "GET", "/v3/oauth2/userinfo", &[("x-tapis-token", token)], None).await,
        Route::TapisV2 => {
            let body = json!({"access_token": token}).to_string();
            let h = [("x-tapis-token", token), ("content-type", "application/json")];
            send(s, at, "POST", "/v3/oauth2/v2/token", &h, Some(&body)).await
        }
        Route::IcaToken => {
            let path = format!("/ica/rest/api/tokens{}", at.ica_query());
            s.call("POST", &path, &[("authorization", &b)], None).await
        }
        Route::IcaRefresh => {
            let path = format!("/ica/rest/api/tokens:refresh{}", at.ica_query());
            s.call("POST", &path, &[("authorization", &b)], None).await
        }
        Route::DocSpace => send(s, at, "GET", "/api/2.0/security/oauth2/token", &[("authorization", &b)], None).await,
        Route::SftpgoLogout => send(s, at, "GET", "/api/v2/logout", &[("authorization", &b)], None).await,
        Route::SftpgoUserLogout => send(s, at, "GET", "/api/v2/user/logout", &[("authorization", &b)], None).await,
    };
    if r.status != 200 {
        // A refusal is the front's "not authenticated", never a server error or a crash.
        let want = if route == Route::Exchange { 400 } else { 401 };
        assert_eq!(r.status, want, "{route:?} refused with an unexpected status: {}", r.text);
    }
    (r.status == 200, r.text)
}

/// Asserts that `token` is refused at every route of `at`.
pub async fn refused_everywhere(s: &TestServer, at: &At, token: &str, what: &str) {
    for route in ROUTES {
        let (taken, answer) = present(s, at, route, token).await;
        assert!(!taken, "ATTACK SUCCEEDED: {what} was taken at {route:?} of {}: {answer}", at.tenant);
    }
}

/// An admin `alice` (password [`PW`]) and a client for the standard endpoints, in `tenant`
/// (created with a host name unless it is the default one).
pub fn world(s: &TestServer, tenant: &str) -> At {
    let host = (tenant != "default").then(|| format!("{tenant}.tessera.test"));
    if let Some(h) = &host {
        s.create_tenant(tenant, &["--host", h]);
    }
    s.cli_ok(
        &["user", "create", "--tenant", tenant, "--username", "alice", "--password-stdin", "--role", "admin"],
        Some(&format!("{PW}\n")),
    );
    let client = s.create_client(tenant, &format!("password,refresh_token,{EXCHANGE}"), None);
    At { tenant: tenant.to_owned(), host, client }
}

/// A fresh genuine token of `kind` for alice at `at`.
pub async fn genuine(s: &TestServer, at: &At, kind: Kind) -> String {
    let pw = basic("alice", PW);
    let (r, member) = match kind {
        Kind::Standard => {
            let v = s.password_token(&at.tenant, &at.client.0, &at.client.1, "alice", PW, None).await;
            return v["access_token"].as_str().expect("access_token").to_owned();
        }
        Kind::SftpgoAdmin => {
            (send(s, at, "GET", "/api/v2/token", &[("authorization", &pw)], None).await, "access_token")
        }
        Kind::SftpgoUser => {
            (send(s, at, "GET", "/api/v2/user/token", &[("authorization", &pw)], None).await, "access_token")
        }
        Kind::Ica => {
            let path = format!("/ica/rest/api/tokens{}", at.ica_query());
            (s.call("POST", &path, &[("authorization", &pw)], None).await, "token")
        }
        Kind::DocSpace => {
            (send(s, at, "GET", "/api/2.0/security/oauth2/token", &[("authorization", &pw)], None).await, "response")
        }
    };
    let v: &Value = r.assert_ok(&format!("a genuine {kind:?} token at {}", at.tenant));
    v[member].as_str().unwrap_or_else(|| panic!("{kind:?}: no {member} in {}", r.text)).to_owned()
}

/// The control: every route that takes a `kind` token takes a fresh genuine one (logouts
/// last, since they end it), so that the refusals of a test are the attack's doing.
pub async fn control(s: &TestServer, at: &At, kind: Kind) {
    let token = genuine(s, at, kind).await;
    for route in ROUTES.iter().filter(|r| r.takes(kind)) {
        let (taken, answer) = present(s, at, *route, &token).await;
        assert!(taken, "control: a genuine {kind:?} token must be taken at {route:?}: {answer}");
    }
}

/// Presents, for every kind, `forge(genuine token of that kind)` at every route, then runs
/// the controls.
pub async fn forgery_refused<F>(s: &TestServer, at: &At, what: &str, forge: F)
where
    F: Fn(&Jwt) -> Vec<(String, String)>,
{
    for kind in KINDS {
        let real = decode_jwt(&genuine(s, at, kind).await);
        for (variant, forged) in forge(&real) {
            refused_everywhere(s, at, &forged, &format!("{what} ({variant}) of a {kind:?} token")).await;
        }
    }
    for kind in KINDS {
        control(s, at, kind).await;
    }
}
