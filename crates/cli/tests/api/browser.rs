//! Browser sign-in over HTTP: the authorization code flow with PKCE, the login, one-time code
//! and consent pages driven as a browser would (cookies, CSRF tokens from the forms), OpenID
//! Connect ID tokens, userinfo and logout, and every error path of the authorization and
//! token endpoints.

use crate::harness::*;
use serde_json::Value;
use std::collections::BTreeMap;
use tessera_core::authority::browser::s256;
use tessera_core::totp;

const CB: &str = "https://app.example/cb";
const BYE: &str = "https://app.example/bye";
const NATIVE: &str = "http://127.0.0.1/native";
const PASSWORD: &str = "erin's long password";
const VERIFIER: &str = "a-verifier-of-more-than-forty-three-characters-0123456789";

/// Query parameters, in order.
type Query<'a> = Vec<(&'a str, &'a str)>;

/// One page or redirect, as a browser got it.
struct Page {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    /// The Content-Security-Policy header.
    csp: Option<String>,
    body: String,
}

impl Page {
    /// The value of the form field `name` (`<input ... name="NAME" value="...">`).
    fn field(&self, name: &str) -> String {
        let at =
            self.body.find(&format!("name=\"{name}\"")).unwrap_or_else(|| panic!("no field {name}: {}", self.body));
        let rest = &self.body[at..];
        let v = rest.find("value=\"").map(|i| &rest[i + 7..]).unwrap_or_else(|| panic!("no value for {name}"));
        v[..v.find('"').expect("closing quote")].to_owned()
    }

    /// The query parameters of the redirect.
    fn redirect_params(&self) -> BTreeMap<String, String> {
        let loc = self.location.as_deref().unwrap_or_else(|| panic!("no redirect ({}): {}", self.status, self.body));
        let query = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
        form_urlencoded::parse(query.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[track_caller]
    fn assert_redirect_to(&self, prefix: &str) -> BTreeMap<String, String> {
        assert_eq!(self.status, 303, "expected a redirect: {}", self.body);
        let loc = self.location.as_deref().unwrap_or_default();
        assert!(loc.starts_with(&format!("{prefix}?")), "redirect to {loc}, not {prefix}");
        self.redirect_params()
    }

    /// An error page for the person: no redirect anywhere.
    #[track_caller]
    fn assert_error_page(&self, what: &str) {
        assert_eq!(self.status, 400, "{what}: {}", self.body);
        assert!(self.location.is_none(), "{what}: redirected to {:?}", self.location);
        assert!(self.body.contains("Sign-in error"), "{what}: {}", self.body);
    }
}

/// A browser: its cookie jar, and no automatic redirects.
struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("http client");
        Browser { http, cookies: BTreeMap::new() }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let req = if jar.is_empty() { req } else { req.header("cookie", jar.join("; ")) };
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let location = res.headers().get("location").map(|v| v.to_str().expect("ascii").to_owned());
        let csp = res.headers().get("content-security-policy").map(|v| v.to_str().expect("ascii").to_owned());
        let set_cookies: Vec<String> =
            res.headers().get_all("set-cookie").iter().map(|v| v.to_str().expect("ascii").to_owned()).collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap_or_default();
            let (k, v) = pair.split_once('=').expect("cookie pair");
            if v.is_empty() || c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        Page { status, location, set_cookies, csp, body: res.text().await.expect("body") }
    }

    async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.send(req).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }

    /// The password step of the login page at `url` (already shown as `page`).
    async fn sign_in(&mut self, url: &str, page: &Page, username: &str, password: &str) -> Page {
        let csrf = page.field("csrf");
        self.post(url, &[("csrf", &csrf), ("step", "password"), ("username", username), ("password", password)]).await
    }

    async fn consent(&mut self, url: &str, page: &Page, decision: &str) -> Page {
        let csrf = page.field("csrf");
        self.post(url, &[("csrf", &csrf), ("step", "consent"), ("decision", decision)]).await
    }
}

fn authorize_url(s: &TestServer, tenant: &str, params: &[(&str, &str)]) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    format!("{}?{}", s.url(tenant, "/oauth2/authorize"), ser.finish())
}

/// The usual request of `client`: code, PKCE S256, OpenID Connect with a nonce and a state.
fn usual<'a>(client: &'a str, redirect_uri: &'a str, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", redirect_uri),
        ("scope", "openid profile email"),
        ("state", "st-42"),
        ("nonce", "n-0S6_WzA2Mj"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
}

/// A client of the code flow; `public` ones have no secret. Returns (id, secret or "").
fn code_client(s: &TestServer, name: &str, public: bool, first_party: bool) -> (String, String) {
    let mut args = vec![
        "client",
        "create",
        "--name",
        name,
        "--grant",
        "authorization_code,refresh_token",
        "--redirect-uri",
        CB,
        "--redirect-uri",
        NATIVE,
        "--redirect-uri",
        "https://app.example:8443/port",
        "--post-logout-redirect-uri",
        BYE,
        "--json",
    ];
    if public {
        args.push("--public");
    }
    if first_party {
        args.push("--first-party");
    }
    let v: Value = serde_json::from_str(s.cli_ok(&args, None).trim()).expect("json");
    (v["client_id"].as_str().expect("id").to_owned(), v["client_secret"].as_str().unwrap_or("").to_owned())
}

/// Sign in and consent: the code the client gets back (asserting state and iss).
async fn code_for(s: &TestServer, b: &mut Browser, url: &str, username: &str) -> String {
    let login = b.get(url).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let consent = b.sign_in(url, &login, username, PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let back = b.consent(url, &consent, "allow").await;
    let p = back.assert_redirect_to(CB);
    assert_eq!(p["state"], "st-42");
    assert_eq!(p["iss"], s.issuer("default"));
    p["code"].clone()
}

async fn redeem(s: &TestServer, client: &str, secret: &str, code: &str, verifier: Option<&str>) -> Resp {
    let mut form = vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", CB)];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    let auth = if secret.is_empty() { Auth::Public(client) } else { Auth::Basic(client, secret) };
    s.token("default", &form, auth).await
}

fn user_with_profile(s: &TestServer, username: &str) {
    s.cli_ok(
        &[
            "user",
            "create",
            "--username",
            username,
            "--password-stdin",
            "--email",
            "erin@example.org",
            "--given-name",
            "Erin",
            "--last-name",
            "Example",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
}

#[tokio::test]
async fn a_person_signs_in_consents_and_the_client_gets_tokens_and_an_id_token() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (id, _) = code_client(&s, "Photo Album", true, false);
    let challenge = s256(VERIFIER);
    let url = authorize_url(&s, "default", &usual(&id, CB, &challenge));
    let mut b = Browser::new();

    let login = b.get(&url).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("Photo Album") && login.body.contains("default"), "{}", login.body);
    assert!(!login.body.contains("<script"), "no JavaScript");
    // Browsers apply form-action to the redirect that answers a form: the client's origin
    // must be allowed, and nothing more.
    let csp = login.csp.as_deref().unwrap_or_default();
    assert!(csp.contains("form-action 'self' https://app.example;"), "{csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let csrf_cookie = login.set_cookies.iter().find(|c| c.starts_with("tessera-csrf=")).expect("csrf cookie");
    assert!(csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"), "{csrf_cookie}");

    // A wrong password first: the same words whatever was wrong.
    let wrong = b.sign_in(&url, &login, "erin", "not erin's password").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong username or password."), "{}", wrong.body);
    let unknown = b.sign_in(&url, &login, "nobody", "not erin's password").await;
    assert!(unknown.body.contains("Wrong username or password."), "{}", unknown.body);
    // A form without the CSRF token is refused.
    let forged = b.post(&url, &[("step", "password"), ("username", "erin"), ("password", PASSWORD)]).await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let consent = b.sign_in(&url, &wrong, "erin", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Allow access?") && consent.body.contains("see your email address"));
    let session = consent.set_cookies.iter().find(|c| c.starts_with("tessera-session-default=")).expect("session");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Lax") && !session.contains("Secure"));
    let back = b.consent(&url, &consent, "allow").await;
    let p = back.assert_redirect_to(CB);
    assert_eq!(p["state"], "st-42");
    assert_eq!(p["iss"], s.issuer("default"));
    let code = p["code"].clone();
    assert!(code.starts_with("tsa_"), "{code}");

    let r = redeem(&s, &id, "", &code, Some(VERIFIER)).await;
    let t = r.assert_ok("code redemption").clone();
    let access = t["access_token"].as_str().expect("access_token");
    assert!(t["refresh_token"].as_str().is_some_and(|r| r.starts_with("tsr_")));
    assert_eq!(decode_jwt(access).header["typ"], "at+jwt");
    let id_token = t["id_token"].as_str().expect("id_token");
    let jwt = decode_jwt(id_token);
    assert_eq!(jwt.header["typ"], "JWT");
    let c = &jwt.claims;
    assert_eq!(c["iss"], s.issuer("default"));
    assert_eq!(c["sub"], "erin");
    assert_eq!(c["aud"], id.as_str());
    assert_eq!(c["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(c["amr"], serde_json::json!(["pwd"]));
    assert_eq!(c["acr"], "urn:tessera:acr:pwd");
    assert!(c["sid"].as_str().is_some_and(|s| !s.is_empty()));
    let (iat, exp, auth_time) =
        (c["iat"].as_i64().unwrap(), c["exp"].as_i64().unwrap(), c["auth_time"].as_i64().unwrap());
    assert!(auth_time <= iat && iat < exp && (now() - iat).abs() < 300, "{c}");
    // at_hash: the left half of SHA-512 (Ed25519 keys) of the access token.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, access.as_bytes());
    assert_eq!(c["at_hash"], b64e(&digest.as_ref()[..32]));
    // Signed by the tenant's key.
    let jwk = s.jwk("default", jwt.header["kid"].as_str().expect("kid")).await.expect("published key");
    let (input, sig) = id_token.rsplit_once('.').expect("jws");
    assert!(verify_with_jwk(&jwk, input.as_bytes(), &b64d(sig)), "ID token signature");

    // userinfo with the access token; the ID token is no access token anywhere.
    let ui = s.call("GET", "/oauth2/userinfo", &[("authorization", &format!("Bearer {access}"))], None).await;
    let ui = ui.assert_ok("userinfo");
    assert_eq!(ui["sub"], "erin");
    assert_eq!(ui["preferred_username"], "erin");
    assert_eq!(ui["name"], "Erin Example");
    assert_eq!((ui["given_name"].as_str(), ui["family_name"].as_str()), (Some("Erin"), Some("Example")));
    assert_eq!(ui["email"], "erin@example.org");
    let r = s.call("POST", "/oauth2/userinfo", &[("authorization", &format!("Bearer {id_token}"))], None).await;
    assert_eq!(r.status, 401, "ID token at userinfo: {}", r.text);
    assert!(r.header("www-authenticate").is_some_and(|h| h.contains("invalid_token")));
    let (cc_id, cc_secret) = s.create_client("default", "client_credentials", None);
    assert!(!s.is_active("default", id_token, Auth::Basic(&cc_id, &cc_secret)).await, "ID token introspected active");
    assert!(s.is_active("default", access, Auth::Basic(&cc_id, &cc_secret)).await);

    // The live session: the same client again gets a code at once (consent remembered), a
    // second client only asks for consent, without the password.
    let again = b.get(&url).await;
    let p = again.assert_redirect_to(CB);
    assert!(p["code"].starts_with("tsa_"));
    let (other, _) = code_client(&s, "Calendar", true, false);
    let url2 = authorize_url(&s, "default", &usual(&other, CB, &challenge));
    let consent = b.get(&url2).await;
    assert!(consent.body.contains("Calendar") && consent.body.contains("Allow access?"), "{}", consent.body);
    assert!(!consent.body.contains("name=\"password\""));
    let p = b.consent(&url2, &consent, "deny").await.assert_redirect_to(CB);
    assert_eq!((p["error"].as_str(), p["state"].as_str()), ("access_denied", "st-42"));
    // A first-party client skips consent.
    let (own, _) = code_client(&s, "Console", true, true);
    let url3 = authorize_url(&s, "default", &usual(&own, CB, &challenge));
    assert!(b.get(&url3).await.assert_redirect_to(CB)["code"].starts_with("tsa_"));
    // prompt=consent asks again; prompt=login signs in again.
    let mut q = usual(&id, CB, &challenge);
    q.push(("prompt", "consent"));
    assert!(b.get(&authorize_url(&s, "default", &q)).await.body.contains("Allow access?"));
    let mut q = usual(&id, CB, &challenge);
    q.push(("prompt", "login"));
    assert!(b.get(&authorize_url(&s, "default", &q)).await.body.contains("name=\"password\""));
    // max_age is a number of seconds.
    let mut q = usual(&id, CB, &challenge);
    q.push(("max_age", "soon"));
    assert_eq!(b.get(&authorize_url(&s, "default", &q)).await.assert_redirect_to(CB)["error"], "invalid_request");
}

#[tokio::test]
async fn unknown_clients_and_tricked_redirect_uris_get_an_error_page_never_a_redirect() {
    let s = TestServer::start().await;
    let (id, _) = code_client(&s, "App", true, false);
    let challenge = s256(VERIFIER);
    let mut b = Browser::new();
    b.get(&authorize_url(&s, "default", &usual("no-such-client", CB, &challenge))).await.assert_error_page("unknown");
    let no_id: Vec<_> = usual(&id, CB, &challenge).into_iter().filter(|(k, _)| *k != "client_id").collect();
    b.get(&authorize_url(&s, "default", &no_id)).await.assert_error_page("no client_id");
    let no_uri: Vec<_> = usual(&id, CB, &challenge).into_iter().filter(|(k, _)| *k != "redirect_uri").collect();
    b.get(&authorize_url(&s, "default", &no_uri)).await.assert_error_page("no redirect_uri");
    for tricked in [
        "https://app.example/c",         // prefix
        "https://app.example/cb/evil",   // suffix
        "https://app.example/cbx",       // suffix
        "https://app.example/cb?next=x", // extra query
        "https://evil@app.example/cb",   // userinfo
        "https://app.example@evil.example/cb",
        "https://app.example/cb#frag",   // fragment
        "https://app.example:9443/port", // other port
        "https://app.example/port",      // no port
        "http://app.example/cb",         // other scheme
        "https://APP.example/cb",        // not the same string
        "http://127.0.0.1:8080/nativex", // loopback, other path
        "http://localhost:8080/native",  // loopback rule is for IP literals
    ] {
        b.get(&authorize_url(&s, "default", &usual(&id, tricked, &challenge))).await.assert_error_page(tricked);
    }
    // RFC 8252: a loopback redirect URI with any port.
    let native = b.get(&authorize_url(&s, "default", &usual(&id, "http://127.0.0.1:53682/native", &challenge))).await;
    assert_eq!(native.status, 200, "{}", native.body);
    assert!(native.body.contains("name=\"password\""));
    // Another tenant does not know the client.
    s.create_tenant("acme", &[]);
    b.get(&authorize_url(&s, "acme", &usual(&id, CB, &challenge))).await.assert_error_page("other tenant");
}

#[tokio::test]
async fn request_errors_go_back_to_the_client_with_state_and_iss() {
    let s = TestServer::start().await;
    let (public, _) = code_client(&s, "Public", true, false);
    let (confidential, secret) = code_client(&s, "Confidential", false, false);
    let (cc, _) = s.create_client("default", "client_credentials", None);
    let challenge = s256(VERIFIER);
    let mut b = Browser::new();
    let cases: Vec<(Query, &str, &str)> = vec![
        // plain is not supported
        (
            usual(&public, CB, &challenge)
                .into_iter()
                .map(|(k, v)| if k == "code_challenge_method" { (k, "plain") } else { (k, v) })
                .collect(),
            "invalid_request",
            "plain method",
        ),
        // a public client without PKCE
        (
            usual(&public, CB, &challenge).into_iter().filter(|(k, _)| !k.starts_with("code_challenge")).collect(),
            "invalid_request",
            "no PKCE",
        ),
        // a challenge that is no S256 value
        (
            usual(&public, CB, &challenge)
                .into_iter()
                .map(|(k, v)| if k == "code_challenge" { (k, "short") } else { (k, v) })
                .collect(),
            "invalid_request",
            "bad challenge",
        ),
        (
            usual(&public, CB, &challenge)
                .into_iter()
                .map(|(k, v)| if k == "response_type" { (k, "token") } else { (k, v) })
                .collect(),
            "unsupported_response_type",
            "implicit",
        ),
        (
            usual(&public, CB, &challenge)
                .into_iter()
                .map(|(k, v)| if k == "scope" { (k, "openid admin") } else { (k, v) })
                .collect(),
            "invalid_scope",
            "scope not allowed",
        ),
        (
            {
                let mut q = usual(&public, CB, &challenge);
                q.push(("prompt", "none"));
                q
            },
            "login_required",
            "prompt=none without a session",
        ),
    ];
    for (q, error, what) in cases {
        let p = b.get(&authorize_url(&s, "default", &q)).await.assert_redirect_to(CB);
        assert_eq!(p["error"], error, "{what}: {p:?}");
        assert_eq!(p["state"], "st-42", "{what}");
        assert_eq!(p["iss"], s.issuer("default"), "{what}");
        assert!(!p.contains_key("code"), "{what}");
    }
    // A client not allowed the code flow has no redirect URIs to send errors to.
    b.get(&authorize_url(&s, "default", &usual(&cc, CB, &challenge))).await.assert_error_page("cc client");
    // A confidential client may skip PKCE (and then must not send a verifier).
    let q: Vec<_> = usual(&confidential, CB, &challenge).into_iter().filter(|(k, _)| !k.starts_with("code_")).collect();
    let url = authorize_url(&s, "default", &q);
    user_with_profile(&s, "erin");
    let code = code_for(&s, &mut b, &url, "erin").await;
    redeem(&s, &confidential, &secret, &code, Some(VERIFIER)).await.assert_error(400, "invalid_grant", "downgrade");
    redeem(&s, &confidential, "wrong-secret-wrong-secret", &code, None).await.assert_error(
        401,
        "invalid_client",
        "bad secret",
    );
    redeem(&s, &confidential, &secret, &code, None).await.assert_ok("confidential without PKCE");
}

#[tokio::test]
async fn pkce_redirect_uri_and_client_are_checked_at_the_token_endpoint() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (id, _) = code_client(&s, "App", true, false);
    let (other, other_secret) = code_client(&s, "Other", false, false);
    let challenge = s256(VERIFIER);
    let mut b = Browser::new();
    let code = code_for(&s, &mut b, &authorize_url(&s, "default", &usual(&id, CB, &challenge)), "erin").await;
    redeem(&s, &id, "", &code, None).await.assert_error(400, "invalid_grant", "missing verifier");
    let wrong = "another-verifier-of-more-than-forty-three-characters-012345";
    redeem(&s, &id, "", &code, Some(wrong)).await.assert_error(400, "invalid_grant", "wrong verifier");
    redeem(&s, &id, "", &code, Some(&challenge)).await.assert_error(400, "invalid_grant", "challenge as verifier");
    redeem(&s, &other, &other_secret, &code, Some(VERIFIER)).await.assert_error(400, "invalid_grant", "other client");
    let form =
        [("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", NATIVE), ("code_verifier", VERIFIER)];
    s.token("default", &form, Auth::Public(&id)).await.assert_error(400, "invalid_grant", "other redirect_uri");
    let form = [("grant_type", "authorization_code"), ("code", &code), ("code_verifier", VERIFIER)];
    s.token("default", &form, Auth::Public(&id)).await.assert_error(400, "invalid_request", "no redirect_uri");
    redeem(&s, &id, "", "tsa_made-up", Some(VERIFIER)).await.assert_error(400, "invalid_grant", "unknown code");
    // None of these spent the code.
    let t = redeem(&s, &id, "", &code, Some(VERIFIER)).await.assert_ok("right verifier").clone();
    // No openid scope: no ID token.
    let q: Vec<_> = usual(&id, CB, &challenge)
        .into_iter()
        .map(|(k, v)| if k == "scope" { (k, "profile") } else { (k, v) })
        .collect();
    let p = b.get(&authorize_url(&s, "default", &q)).await.assert_redirect_to(CB);
    let t2 = redeem(&s, &id, "", &p["code"], Some(VERIFIER)).await.assert_ok("no openid").clone();
    assert!(t2["id_token"].is_null(), "{t2}");
    assert!(t["id_token"].is_string());
}

#[tokio::test]
async fn a_reused_code_fails_and_revokes_the_tokens_of_its_first_redemption() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (id, _) = code_client(&s, "App", true, false);
    let (cc_id, cc_secret) = s.create_client("default", "client_credentials", None);
    let mut b = Browser::new();
    let url = authorize_url(&s, "default", &usual(&id, CB, &s256(VERIFIER)));
    let code = code_for(&s, &mut b, &url, "erin").await;
    let t = redeem(&s, &id, "", &code, Some(VERIFIER)).await.assert_ok("first").clone();
    let access = t["access_token"].as_str().expect("access");
    let refresh = t["refresh_token"].as_str().expect("refresh");
    assert!(s.is_active("default", access, Auth::Basic(&cc_id, &cc_secret)).await);
    let r = redeem(&s, &id, "", &code, Some(VERIFIER)).await;
    r.assert_error(400, "invalid_grant", "second redemption");
    assert!(r.text.contains("revoked"), "{}", r.text);
    assert!(!s.is_active("default", access, Auth::Basic(&cc_id, &cc_secret)).await, "access token still active");
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    s.token("default", &form, Auth::Public(&id)).await.assert_error(400, "invalid_grant", "refresh after reuse");
    let r = s.call("GET", "/oauth2/userinfo", &[("authorization", &format!("Bearer {access}"))], None).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn two_factor_users_give_their_code_on_a_second_step() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let out = s.cli_ok(&["user", "totp", "enable", "--username", "erin", "--json"], None);
    let enrol: Value = serde_json::from_str(&out).expect("json");
    let raw = base32_decode(enrol["secret"].as_str().expect("secret"));
    let first = totp::code_at(&raw, now());
    let out = s.cli_ok(&["user", "totp", "confirm", "--username", "erin", "--code", &first, "--json"], None);
    let recovery: Value = serde_json::from_str(&out).expect("json");
    let recovery = recovery["recovery_codes"][0].as_str().expect("codes").to_owned();
    let (id, _) = code_client(&s, "App", true, true);
    let url = authorize_url(&s, "default", &usual(&id, CB, &s256(VERIFIER)));
    let mut b = Browser::new();
    let login = b.get(&url).await;
    let second = b.sign_in(&url, &login, "erin", PASSWORD).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.contains("authenticator app"), "{}", second.body);
    assert!(!second.set_cookies.iter().any(|c| c.starts_with("tessera-session")), "signed in before the code");
    let ticket = second.field("ticket");
    let csrf = second.field("csrf");
    // The code used to confirm is spent (replay), a wrong one is wrong.
    for bad in [first.as_str(), "000000"] {
        let page = b.post(&url, &[("csrf", &csrf), ("step", "code"), ("ticket", &ticket), ("otp", bad)]).await;
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("That code is wrong"), "{}", page.body);
    }
    let forged =
        b.post(&url, &[("csrf", &csrf), ("step", "code"), ("ticket", "bm90LWEtdGlja2V0"), ("otp", &recovery)]).await;
    assert!(forged.body.contains("expired"), "{}", forged.body);
    let back = b.post(&url, &[("csrf", &csrf), ("step", "code"), ("ticket", &ticket), ("otp", &recovery)]).await;
    let p = back.assert_redirect_to(CB);
    let t = redeem(&s, &id, "", &p["code"], Some(VERIFIER)).await.assert_ok("with 2FA").clone();
    let c = decode_jwt(t["id_token"].as_str().expect("id_token")).claims;
    assert_eq!(c["amr"], serde_json::json!(["pwd", "otp"]));
    assert_eq!(c["acr"], "urn:tessera:acr:mfa");
    assert_eq!(decode_jwt(t["access_token"].as_str().unwrap()).claims["amr"], serde_json::json!(["pwd", "otp"]));
}

#[tokio::test]
async fn logout_ends_the_session_and_goes_only_to_a_registered_uri() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (id, _) = code_client(&s, "App", true, true);
    let url = authorize_url(&s, "default", &usual(&id, CB, &s256(VERIFIER)));
    let mut b = Browser::new();
    let login = b.get(&url).await;
    let p = b.sign_in(&url, &login, "erin", PASSWORD).await.assert_redirect_to(CB);
    let t = redeem(&s, &id, "", &p["code"], Some(VERIFIER)).await.assert_ok("tokens").clone();
    let id_token = t["id_token"].as_str().expect("id_token");

    let logout = |params: &[(&str, &str)]| {
        let mut ser = form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            ser.append_pair(k, v);
        }
        format!("{}?{}", s.url("default", "/oauth2/logout"), ser.finish())
    };
    // Not registered for the client: no redirect.
    let evil = logout(&[("id_token_hint", id_token), ("post_logout_redirect_uri", "https://evil.example/")]);
    b.get(&evil).await.assert_error_page("unregistered logout URI");
    // Without a hint, the person confirms (a CSRF-checked form).
    let confirm = b.get(&logout(&[])).await;
    assert!(confirm.body.contains("Sign out?"), "{}", confirm.body);
    assert!(b.get(&url).await.location.is_some(), "still signed in");
    let old_cookies = b.cookies.clone();
    let done = b.get(&logout(&[("id_token_hint", id_token), ("post_logout_redirect_uri", BYE), ("state", "s1")])).await;
    assert!(done.set_cookies.iter().any(|c| c.starts_with("tessera-session-default=;") && c.contains("Max-Age=0")));
    let p = done.assert_redirect_to(BYE);
    assert_eq!(p["state"], "s1");
    let challenge = s256(VERIFIER);
    let mut q = usual(&id, CB, &challenge);
    q.push(("prompt", "none"));
    let p = b.get(&authorize_url(&s, "default", &q)).await.assert_redirect_to(CB);
    assert_eq!(p["error"], "login_required");
    // The old cookie, replayed after logout, does not bring the session back.
    b.cookies = old_cookies;
    assert!(b.cookies.contains_key("tessera-session-default"));
    assert!(b.get(&url).await.body.contains("name=\"password\""));
}

#[tokio::test]
async fn the_tapis_front_has_the_authorize_page_and_the_code_grant() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (id, _) = code_client(&s, "Tapis app", true, true);
    let challenge = s256(VERIFIER);
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in usual(&id, CB, &challenge) {
        ser.append_pair(k, v);
    }
    let url = format!("{}/v3/oauth2/authorize?{}", s.base, ser.finish());
    let mut b = Browser::new();
    let login = b.get(&url).await;
    let p = b.sign_in(&url, &login, "erin", PASSWORD).await.assert_redirect_to(CB);
    let body = serde_json::json!({
        "grant_type": "authorization_code", "client_id": id, "code": p["code"], "redirect_uri": CB,
        "code_verifier": VERIFIER,
    });
    let r = s.call("POST", "/v3/oauth2/tokens", &[("content-type", "application/json")], Some(&body.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let access = r.json["result"]["access_token"]["access_token"].as_str().expect("access token");
    let claims = decode_jwt(access).claims;
    assert_eq!(claims["tapis/grant_type"], "authorization_code");
    assert_eq!(claims["sub"], "erin@default");
    // Reused at the Tapis endpoint: Tapis' error envelope.
    let r = s.call("POST", "/v3/oauth2/tokens", &[("content-type", "application/json")], Some(&body.to_string())).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["status"], "error");
}

#[tokio::test]
async fn over_https_the_cookies_are_host_prefixed_and_secure() {
    let s = TestServer::start_with_env(&[("TESSERA_PUBLIC_URL", "https://login.example")]).await;
    let (id, _) = code_client(&s, "App", true, false);
    let mut b = Browser::new();
    let page = b.get(&authorize_url(&s, "default", &usual(&id, CB, &s256(VERIFIER)))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let c = page.set_cookies.iter().find(|c| c.contains("tessera-csrf=")).expect("csrf cookie");
    assert!(c.starts_with("__Host-tessera-csrf="), "{c}");
    assert!(c.contains("; Secure") && c.contains("Path=/") && c.contains("HttpOnly") && c.contains("SameSite=Lax"));
}

#[tokio::test]
async fn discovery_lists_the_browser_flow() {
    let s = TestServer::start().await;
    let d = s.get("/.well-known/openid-configuration").await;
    let d = d.assert_ok("discovery");
    assert_eq!(d["authorization_endpoint"], format!("{}/oauth2/authorize", s.base));
    assert_eq!(d["userinfo_endpoint"], format!("{}/oauth2/userinfo", s.base));
    assert_eq!(d["end_session_endpoint"], format!("{}/oauth2/logout", s.base));
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["scopes_supported"], serde_json::json!(["openid", "profile", "email"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    for c in ["nonce", "auth_time", "acr", "amr", "at_hash", "sid", "email", "preferred_username"] {
        assert!(d["claims_supported"].as_array().unwrap().iter().any(|x| x == c), "{c}");
    }
    assert!(d["grant_types_supported"].as_array().unwrap().iter().any(|g| g == "authorization_code"));
}

/// A public device-flow client named `name`, with scope `tv`; returns its id.
fn device_client(s: &TestServer, name: &str) -> String {
    let grant = "urn:ietf:params:oauth:grant-type:device_code";
    let args = ["client", "create", "--name", name, "--grant", grant, "--scope", "tv", "--public", "--json"];
    let v: Value = serde_json::from_str(s.cli_ok(&args, None).trim()).expect("json");
    v["client_id"].as_str().expect("id").to_owned()
}

/// A device authorization of `client`: (device_code, user_code, verification_uri_complete).
async fn start_device(s: &TestServer, client: &str) -> (String, String, String) {
    let r = s.post_form("default", "/oauth2/device_authorization", &[("scope", "tv")], Auth::Public(client)).await;
    let d = r.assert_ok("device authorization");
    let text = |k: &str| d[k].as_str().unwrap_or_else(|| panic!("no {k}: {d}")).to_owned();
    (text("device_code"), text("user_code"), text("verification_uri_complete"))
}

async fn poll_device(s: &TestServer, client: &str, device_code: &str) -> Resp {
    let form = [("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code)];
    s.token("default", &form, Auth::Public(client)).await
}

#[tokio::test]
async fn a_signed_in_person_approves_or_denies_a_device_without_the_password_again() {
    let s = TestServer::start_with_env(&[("TESSERA_DEVICE_INTERVAL", "1")]).await;
    user_with_profile(&s, "erin");
    let (web, _) = code_client(&s, "Photo Album", true, true);
    let tv = device_client(&s, "Living-room TV");
    let device_page = s.url("default", "/device");
    let (code1, user1, complete1) = start_device(&s, &tv).await;
    let (code2, user2, complete2) = start_device(&s, &tv).await;
    assert_eq!(complete1, format!("{device_page}?user_code={user1}"));

    // Without a session: the code is filled in, the password is asked, nothing is looked up.
    let mut b = Browser::new();
    let page = b.get(&complete1).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(&user1) && page.body.contains("name=\"password\""), "{}", page.body);
    assert!(!page.body.contains("Living-room TV"), "the client is shown before the sign-in");

    // Signed in at the authorization endpoint: the device page decides at once.
    let url = authorize_url(&s, "default", &usual(&web, CB, &s256(VERIFIER)));
    let login = b.get(&url).await;
    b.sign_in(&url, &login, "erin", PASSWORD).await.assert_redirect_to(CB);
    let page = b.get(&complete1).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for shown in ["Living-room TV", "default", "erin", &user1, "tv", "Approve", "Deny"] {
        assert!(page.body.contains(shown), "{shown} not shown: {}", page.body);
    }
    assert!(!page.body.contains("name=\"password\""), "the password asked again: {}", page.body);
    assert!(!page.body.contains("<script"), "no JavaScript");
    let csrf = page.field("csrf");
    assert_eq!(page.field("via"), "session");

    // Without the CSRF token, or with another one, nothing is decided.
    for forged in ["", "a-csrf-token-of-some-other-browser-0123456789"] {
        let form = [("user_code", user1.as_str()), ("via", "session"), ("csrf", forged), ("action", "approve")];
        let r = b.post(&device_page, &form).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("name=\"password\""), "{}", r.body);
    }
    // Another browser has no session: its own CSRF pair is not enough.
    let mut other = Browser::new();
    other.get(&complete1).await;
    let their_csrf = other.cookies.get("tessera-csrf").expect("a CSRF cookie").clone();
    let form = [("user_code", user1.as_str()), ("via", "session"), ("csrf", &their_csrf), ("action", "approve")];
    let r = other.post(&device_page, &form).await;
    assert_eq!(r.status, 401, "{}", r.body);
    poll_device(&s, &tv, &code1).await.assert_error(400, "authorization_pending", "nothing decided yet");

    // Approve the first, deny the second; the poller gets tokens, then access_denied.
    let form = [("user_code", user1.as_str()), ("via", "session"), ("csrf", &csrf), ("action", "approve")];
    let done = b.post(&device_page, &form).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Device connected"), "{}", done.body);
    let t = poll_device(&s, &tv, &code1).await.assert_ok("approved device").clone();
    let claims = decode_jwt(t["access_token"].as_str().expect("access token")).claims;
    assert_eq!((claims["sub"].as_str(), claims["scope"].as_str()), (Some("erin"), Some("tv")));
    let page = b.get(&complete2).await;
    assert!(page.body.contains("Living-room TV") && page.body.contains(&user2), "{}", page.body);
    let form = [("user_code", user2.as_str()), ("via", "session"), ("csrf", &csrf), ("action", "deny")];
    let done = b.post(&device_page, &form).await;
    assert!(done.body.contains("Request denied"), "{}", done.body);
    poll_device(&s, &tv, &code2).await.assert_error(400, "access_denied", "denied device");
    // A decided code is no longer pending: the page says so and decides nothing more.
    let again = b.get(&complete1).await;
    assert_eq!(again.status, 404, "{}", again.body);
    assert!(again.body.contains("unknown or has expired"), "{}", again.body);
    let form = [("user_code", user2.as_str()), ("via", "session"), ("csrf", &csrf), ("action", "approve")];
    assert_eq!(b.post(&device_page, &form).await.status, 404);
    poll_device(&s, &tv, &code2).await.assert_error(400, "access_denied", "still denied");

    // After signing out, the page asks for the password again, and an old form fails.
    let (code3, user3, complete3) = start_device(&s, &tv).await;
    let decision = b.get(&complete3).await;
    let csrf = decision.field("csrf");
    let confirm = b.get(&s.url("default", "/oauth2/logout")).await;
    assert!(confirm.body.contains("Sign out?"), "{}", confirm.body);
    let out = b.post(&s.url("default", "/oauth2/logout"), &[("csrf", &csrf)]).await;
    assert!(out.body.contains("You are signed out"), "{}", out.body);
    let form = [("user_code", user3.as_str()), ("via", "session"), ("csrf", &csrf), ("action", "approve")];
    let r = b.post(&device_page, &form).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("name=\"password\""), "{}", r.body);
    assert!(b.get(&complete3).await.body.contains("name=\"password\""));
    poll_device(&s, &tv, &code3).await.assert_error(400, "authorization_pending", "not decided after logout");
}

/// A JSON call of the admin API or self-service with a bearer token.
async fn api_json(s: &TestServer, method: &str, path: &str, token: &str) -> Resp {
    let auth = format!("Bearer {token}");
    s.call(method, path, &[("authorization", auth.as_str())], None).await
}

/// Whether the browser's session still signs it in (`prompt=none` answers a code).
async fn signed_in(s: &TestServer, b: &mut Browser, client: &str) -> bool {
    let challenge = s256(VERIFIER);
    let mut q = usual(client, CB, &challenge);
    q.push(("prompt", "none"));
    let p = b.get(&authorize_url(s, "default", &q)).await.assert_redirect_to(CB);
    match p.get("error").map(String::as_str) {
        None => true,
        Some("login_required") => false,
        Some(e) => panic!("prompt=none: {e}"),
    }
}

#[tokio::test]
async fn browser_sessions_are_listed_and_ended_by_admins_by_their_user_and_by_a_password_reset() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (id, _) = code_client(&s, "App", true, true);
    let (pid, psecret) = s.create_client("default", "password,refresh_token", None);
    let admin_pw = s.admin_password.clone().expect("bootstrap password");
    let admin = s.password_token("default", &pid, &psecret, "admin", &admin_pw, None).await;
    let admin = admin["access_token"].as_str().expect("token").to_owned();
    let url = authorize_url(&s, "default", &usual(&id, CB, &s256(VERIFIER)));

    // Two browsers signed in; the admin sees both, the user sees them at /me.
    let (mut one, mut two) = (Browser::new(), Browser::new());
    for b in [&mut one, &mut two] {
        let login = b.get(&url).await;
        b.sign_in(&url, &login, "erin", PASSWORD).await.assert_redirect_to(CB);
    }
    let listed = api_json(&s, "GET", "/admin/v1/users/erin/browser-sessions", &admin).await;
    let items = listed.json.as_array().unwrap_or_else(|| panic!("{}", listed.text)).clone();
    assert_eq!(items.len(), 2, "{}", listed.text);
    assert!(items.iter().all(|i| i["amr"] == serde_json::json!(["pwd"]) && i["sid"].is_string()), "{items:?}");
    let erin = s.password_token("default", &pid, &psecret, "erin", PASSWORD, None).await;
    let erin = erin["access_token"].as_str().expect("token").to_owned();
    let mine = api_json(&s, "GET", "/me/browser-sessions", &erin).await;
    assert_eq!(mine.json.as_array().map(Vec::len), Some(2), "{}", mine.text);

    // The user ends one of them: that browser is signed out, the other is not.
    let sid = items[0]["sid"].as_str().expect("sid").to_owned();
    assert_eq!(api_json(&s, "DELETE", &format!("/me/browser-sessions/{sid}"), &erin).await.status, 204);
    assert_eq!(api_json(&s, "DELETE", &format!("/me/browser-sessions/{sid}"), &erin).await.status, 404);
    let (in_one, in_two) = (signed_in(&s, &mut one, &id).await, signed_in(&s, &mut two, &id).await);
    assert!(in_one != in_two, "exactly one browser is signed out ({in_one}, {in_two})");
    let (mut kept, mut ended) = if in_one { (one, two) } else { (two, one) };
    // The admin ends another by id; another user cannot see or end erin's.
    let before: Vec<Value> = api_json(&s, "GET", "/admin/v1/users/erin/browser-sessions", &admin)
        .await
        .json
        .as_array()
        .cloned()
        .unwrap_or_default();
    let login = ended.get(&url).await;
    ended.sign_in(&url, &login, "erin", PASSWORD).await.assert_redirect_to(CB);
    let listed = api_json(&s, "GET", "/admin/v1/users/erin/browser-sessions", &admin).await;
    let newest = listed.json.as_array().expect("list").iter().find(|i| !before.contains(i)).expect("the new session");
    let newest = newest["sid"].as_str().expect("sid").to_owned();
    s.create_user("default", "mallory", "mallory's long password");
    let mallory = s.password_token("default", &pid, &psecret, "mallory", "mallory's long password", None).await;
    let mallory = mallory["access_token"].as_str().expect("token").to_owned();
    let r = api_json(&s, "DELETE", &format!("/admin/v1/users/erin/browser-sessions/{newest}"), &mallory).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = api_json(&s, "DELETE", &format!("/me/browser-sessions/{newest}"), &mallory).await;
    assert_eq!(r.status, 404, "another user's session is not yours: {}", r.text);
    let r = api_json(&s, "DELETE", &format!("/admin/v1/users/erin/browser-sessions/{newest}"), &admin).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!signed_in(&s, &mut ended, &id).await);
    // A password reset ends every one left.
    assert!(signed_in(&s, &mut kept, &id).await);
    let reset = serde_json::json!({"password": "erin's second long password"}).to_string();
    let auth = format!("Bearer {admin}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let r = s.call("POST", "/admin/v1/users/erin/password", &headers, Some(&reset)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(!signed_in(&s, &mut kept, &id).await, "a password reset signs every browser out");
    let listed = api_json(&s, "GET", "/admin/v1/users/erin/browser-sessions", &admin).await;
    assert_eq!(listed.json, serde_json::json!([]), "{}", listed.text);
}

#[tokio::test]
async fn a_required_second_factor_is_set_up_at_the_first_browser_sign_in_and_nothing_else_lets_in() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (pid, psecret) = s.create_client("default", "password,refresh_token", None);
    // Required of erin alone: a password without a second factor no longer gets a token.
    s.cli_ok(&["user", "update", "--username", "erin", "--require-totp", "true"], None);
    let r = s
        .token(
            "default",
            &[("grant_type", "password"), ("username", "erin"), ("password", PASSWORD)],
            Auth::Basic(&pid, &psecret),
        )
        .await;
    r.assert_error(400, "mfa_required", "no second factor yet");
    assert!(r.json["error_description"].as_str().is_some_and(|d| d.contains("set up two-factor")), "{}", r.text);
    // A wrong password is still a wrong password (and counted as one).
    let r = s
        .token(
            "default",
            &[("grant_type", "password"), ("username", "erin"), ("password", "nope nope nope")],
            Auth::Basic(&pid, &psecret),
        )
        .await;
    r.assert_error(400, "invalid_grant", "wrong password");

    // The browser sign-in sets it up: the key, a wrong code, the right one, the recovery codes.
    let (id, _) = code_client(&s, "App", true, true);
    let url = authorize_url(&s, "default", &usual(&id, CB, &s256(VERIFIER)));
    let mut b = Browser::new();
    let login = b.get(&url).await;
    let enrol = b.sign_in(&url, &login, "erin", PASSWORD).await;
    assert_eq!(enrol.status, 200, "{}", enrol.body);
    assert!(enrol.body.contains("Set up two-step verification"), "{}", enrol.body);
    assert!(!enrol.set_cookies.iter().any(|c| c.starts_with("tessera-session")), "signed in before the code");
    let (ticket, csrf, secret) = (enrol.field("ticket"), enrol.field("csrf"), enrol.field("secret"));
    assert!(enrol.body.contains("href=\"otpauth:"), "the link for the app: {}", enrol.body);
    let step = |otp: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("step", "enrol".into()),
            ("ticket", ticket.clone()),
            ("secret", secret.clone()),
            ("uri", String::new()),
            ("otp", otp.to_owned()),
        ]
    };
    let wrong = step("000000");
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let again = b.post(&url, &wrong).await;
    assert_eq!(again.status, 401, "{}", again.body);
    assert!(again.body.contains("That code is wrong") && again.field("secret") == secret, "{}", again.body);
    let code = totp::code_at(&base32_decode(&secret), now());
    let right = step(&code);
    let right: Vec<(&str, &str)> = right.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let codes = b.post(&url, &right).await;
    assert_eq!(codes.status, 200, "{}", codes.body);
    assert!(codes.set_cookies.iter().any(|c| c.starts_with("tessera-session")), "signed in now");
    assert_eq!(codes.body.matches("<li class=\"code\">").count(), 10, "ten recovery codes: {}", codes.body);
    // Continuing repeats the request, signed in: the code, with both factors in its tokens.
    let p = b.get(&url).await.assert_redirect_to(CB);
    let t = redeem(&s, &id, "", &p["code"], Some(VERIFIER)).await.assert_ok("set up").clone();
    let c = decode_jwt(t["id_token"].as_str().expect("id_token")).claims;
    assert_eq!(c["amr"], serde_json::json!(["pwd", "otp"]));
    // From now on the password grant takes the code as well; the ticket was for one setup.
    let r = b.post(&url, &right).await;
    assert!(r.status == 401 && r.body.contains("expired"), "{}: {}", r.status, r.body);
    let next = totp::code_at(&base32_decode(&secret), now() + 30);
    let r = s
        .token(
            "default",
            &[("grant_type", "password"), ("username", "erin"), ("password", PASSWORD), ("otp", &next)],
            Auth::Basic(&pid, &psecret),
        )
        .await;
    r.assert_ok("password and code");
    // Where it is required, the user cannot take it away themself.
    let erin = format!("Bearer {}", r.json["access_token"].as_str().expect("token"));
    let r = s.call("DELETE", "/me/totp", &[("authorization", erin.as_str())], None).await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Required by a tenant, of every user in it, through the admin API.
    s.create_tenant("strict", &[]);
    s.create_user("strict", "sam", "sam's long password");
    let (sid, ssecret) = s.create_client("strict", "password", None);
    sam_signs_in(&s, &sid, &ssecret).await.assert_ok("not required yet");
    s.cli_ok(&["user", "update", "--username", "admin", "--role", "admin", "--role", "superadmin"], None);
    let admin_pw = s.admin_password.clone().expect("bootstrap password");
    let admin = s.password_token("default", &pid, &psecret, "admin", &admin_pw, None).await;
    let admin = format!("Bearer {}", admin["access_token"].as_str().expect("token"));
    let headers = [("authorization", admin.as_str()), ("content-type", "application/json")];
    let r = s.call("PATCH", "/admin/v1/tenants/strict", &headers, Some(r#"{"totp_required": true}"#)).await;
    assert_eq!((r.status, r.json["totp_required"].as_bool()), (200, Some(true)), "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let r = sam_signs_in(&s, &sid, &ssecret).await;
        if r.status == 400 && r.json["error"] == "mfa_required" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the tenant's policy never applied: {}", r.text);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

async fn sam_signs_in(s: &TestServer, id: &str, secret: &str) -> Resp {
    let form = [("grant_type", "password"), ("username", "sam"), ("password", "sam's long password")];
    s.token("strict", &form, Auth::Basic(id, secret)).await
}

#[tokio::test]
async fn the_admin_api_registers_and_changes_a_clients_redirect_uris() {
    let s = TestServer::start().await;
    user_with_profile(&s, "erin");
    let (pid, psecret) = s.create_client("default", "password", None);
    let admin_pw = s.admin_password.clone().expect("bootstrap password");
    let admin = s.password_token("default", &pid, &psecret, "admin", &admin_pw, None).await;
    let auth = format!("Bearer {}", admin["access_token"].as_str().expect("token"));
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let body = serde_json::json!({"name": "Web", "grants": ["authorization_code"], "public": true,
        "redirect_uris": [CB], "post_logout_redirect_uris": [BYE], "first_party": true});
    let r = s.call("POST", "/admin/v1/clients", &headers, Some(&body.to_string())).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (r.json["redirect_uris"].clone(), r.json["first_party"].as_bool()),
        (serde_json::json!([CB]), Some(true))
    );
    let id = r.json["client_id"].as_str().expect("id").to_owned();
    let bad = serde_json::json!({"name": "Bad", "grants": ["authorization_code"], "public": true, "redirect_uris": ["https://app.example/cb#x"]});
    let r = s.call("POST", "/admin/v1/clients", &headers, Some(&bad.to_string())).await;
    assert_eq!((r.status, r.json["errors"][0]["field"].as_str()), (400, Some("redirect_uris")), "{}", r.text);

    let challenge = s256(VERIFIER);
    let mut b = Browser::new();
    let url = authorize_url(&s, "default", &usual(&id, CB, &challenge));
    let login = b.get(&url).await;
    b.sign_in(&url, &login, "erin", PASSWORD).await.assert_redirect_to(CB);
    // Replaced: the old URI is refused with an error page, the new one works.
    let new = "https://app.example/new";
    let patch = serde_json::json!({"redirect_uris": [new], "first_party": false}).to_string();
    let r = s.call("PATCH", &format!("/admin/v1/clients/{id}"), &headers, Some(&patch)).await;
    assert_eq!((r.status, r.json["redirect_uris"].clone()), (200, serde_json::json!([new])), "{}", r.text);
    b.get(&url).await.assert_error_page("a replaced redirect URI");
    let page = b.get(&authorize_url(&s, "default", &usual(&id, new, &challenge))).await;
    assert_eq!(page.status, 200, "no longer first party: the consent page: {}", page.body);
    assert!(page.body.contains("name=\"decision\""), "{}", page.body);
}

/// The sign-in page counts wrong passwords in the same limits as the token endpoint: past
/// them even the right password gets a 429 page and no session, and the password grant
/// refuses the same user too.
#[tokio::test]
async fn wrong_passwords_at_the_sign_in_page_are_limited_like_everywhere_else() {
    let s = TestServer::start_with_env(&[("TESSERA_LOGIN_FAILURES_PER_USER", "3")]).await;
    user_with_profile(&s, "erin");
    let (id, _) = code_client(&s, "Photo Album", true, false);
    let challenge = s256(VERIFIER);
    let url = authorize_url(&s, "default", &usual(&id, CB, &challenge));
    let mut b = Browser::new();
    let mut page = b.get(&url).await;
    for i in 0..3 {
        page = b.sign_in(&url, &page, "erin", "not erin's password").await;
        assert_eq!(page.status, 401, "try {i}: {}", page.body);
        assert!(page.body.contains("Wrong username or password."), "try {i}: {}", page.body);
    }
    let locked = b.sign_in(&url, &page, "erin", PASSWORD).await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.location.is_none() && !locked.body.contains("Allow access?"), "{}", locked.body);
    assert!(!locked.set_cookies.iter().any(|c| c.starts_with("tessera-session-")), "no session");
    let (pid, psecret) = s.create_client("default", "password", None);
    let form = [("grant_type", "password"), ("username", "erin"), ("password", PASSWORD)];
    s.token("default", &form, Auth::Basic(&pid, &psecret)).await.assert_error(429, "rate_limited", "the grant too");
}
