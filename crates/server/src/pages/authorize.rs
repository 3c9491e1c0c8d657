//! The browser side of the authorization code flow: `GET/POST /oauth2/authorize` (login,
//! one-time code and consent pages, then the redirect back to the client) and
//! `/oauth2/logout` (OpenID Connect RP-initiated logout). Every decision is the core's; this
//! module reads the query, the forms and the cookies, and renders pages and redirects.
//!
//! Forms carry a CSRF token (see [`super::visit`]). The authorization request stays in the
//! URL: the forms post back to it.

use super::visit::Visit;
use crate::AppState;
use crate::extract::{Form, Origin, Tenant, parse_form, parse_query, read_body, retry_after};
use crate::urls::{endpoint, with_query};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use tessera_core::authority::{Authorization, AuthorizeError, AuthorizeRequest, Prompt, SignInStep};
use tessera_core::secret::{Secret, ct_eq};
use tessera_core::store::BrowserSession;
use tessera_core::{Error, ErrorKind};

const WRONG_CREDENTIALS: &str = "Wrong username or password.";
const WRONG_CODE: &str = "That code is wrong or was already used.";

/// A 303 to `location` (the browser follows with a GET).
fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(v) => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            res.headers_mut().insert(header::LOCATION, v);
            res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(_) => (StatusCode::BAD_REQUEST, "bad redirect").into_response(),
    }
}

/// The authorization request from the query.
fn authorize_request(form: &mut Form<'_>) -> AuthorizeRequest {
    AuthorizeRequest {
        client_id: form.remove("client_id"),
        redirect_uri: form.remove("redirect_uri"),
        response_type: form.remove("response_type"),
        scope: form.remove("scope"),
        state: form.remove("state"),
        code_challenge: form.remove("code_challenge"),
        code_challenge_method: form.remove("code_challenge_method"),
        nonce: form.remove("nonce"),
        prompt: form.remove("prompt"),
        max_age: form.remove("max_age"),
    }
}

/// An error for the client, at its redirect URI: `error`, `error_description`, `state` and
/// (RFC 9207) `iss`.
fn redirect_error(state: &AppState, tenant: &str, redirect_uri: &str, st: Option<&str>, e: &Error) -> Response {
    let iss = state.auth.tenant(tenant).map(|t| t.issuer.clone()).unwrap_or_default();
    let mut params = vec![("error", e.kind.code()), ("error_description", e.description.as_str())];
    if let Some(s) = st {
        params.push(("state", s));
    }
    params.push(("iss", &iss));
    see_other(&with_query(redirect_uri, &params))
}

/// The person's page for an error that must not go to the client (unknown client or
/// redirect URI, a broken request), or that the core answers for everyone (limits, outage).
fn error_page(visit: Visit, e: &Error) -> Response {
    let (status, message, detail) = match e.kind {
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, e.description.as_str(), None),
        ErrorKind::Unavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "The service is temporarily unavailable; try again soon.", None)
        }
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong on our side.", None),
        ErrorKind::InvalidClient => (StatusCode::BAD_REQUEST, "The application that sent you here is not known.", None),
        _ => (
            StatusCode::BAD_REQUEST,
            "The application that sent you here made a request that cannot be answered.",
            Some(e.description.as_str()),
        ),
    };
    let retry = retry_after(e);
    // The technical reason is for the application's developers: shown apart, in small print.
    let detail = detail.map(|d| format!("Details for the application's developers: {d}"));
    let ctx = context! { title => "Sign-in error", message, detail };
    let mut res = visit.page(status, "message.html", ctx);
    if let Some(v) = retry {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn failure(state: &AppState, visit: Visit, err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page(e) => error_page(visit, &e),
        AuthorizeError::Redirect { redirect_uri, state: st, error } => {
            let res = redirect_error(state, &visit.tenant.clone(), &redirect_uri, st.as_deref(), &error);
            visit.finish(res)
        }
    }
}

fn login_page(visit: Visit, auth: &Authorization, status: StatusCode, error: Option<&str>, username: &str) -> Response {
    let ctx = context! { title => "Sign in", client => &auth.client.name, error, username };
    visit.page(status, "login.html", ctx)
}

fn code_page(visit: Visit, auth: &Authorization, status: StatusCode, error: Option<&str>, ticket: &str) -> Response {
    let ctx = context! { title => "Two-step verification", client => &auth.client.name, error, ticket };
    visit.page(status, "login_code.html", ctx)
}

/// The second factor to set up: its key (typed or opened as a link), then a first code.
fn enrol_page(
    visit: Visit,
    auth: &Authorization,
    error: Option<&str>,
    ticket: &str,
    secret: &str,
    uri: &str,
) -> Response {
    let status = if error.is_some() { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    // Shown in groups of four, as authenticator apps take it (they ignore the spaces).
    let key_shown = secret.as_bytes().chunks(4).map(String::from_utf8_lossy).collect::<Vec<_>>().join(" ");
    let ctx = context! {
        title => "Set up two-step verification", client => &auth.client.name, error, ticket, secret, key_shown, uri
    };
    visit.page(status, "login_enrol.html", ctx)
}

/// The recovery codes of a second factor just set up, shown once; continuing repeats the
/// authorization request (`query`), now signed in.
fn recovery_codes_page(visit: Visit, auth: &Authorization, codes: &[String], query: Option<&str>) -> Response {
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect();
    let ctx = context! { title => "Save your recovery codes", client => &auth.client.name, codes, params };
    visit.page(StatusCode::OK, "recovery_codes.html", ctx)
}

/// What a scope lets the client do, in words.
fn describe_scope(s: &str) -> String {
    match s {
        "openid" => "confirm who you are".to_owned(),
        "profile" => "see your name and username".to_owned(),
        "email" => "see your email address".to_owned(),
        other => format!("use the permission “{other}”"),
    }
}

fn consent_page(state: &AppState, visit: Visit, auth: &Authorization, session: &BrowserSession) -> Response {
    let scopes: Vec<String> = auth.scopes.iter().map(|s| describe_scope(s)).collect();
    let sign_out = endpoint(state, &visit.tenant, "/oauth2/logout");
    let ctx = context! {
        title => "Allow access?", client => &auth.client.name, username => &session.username, scopes, sign_out,
    };
    visit.page(StatusCode::OK, "consent.html", ctx)
}

/// The code, back to the client: `code`, `state`, `iss`.
async fn issue(state: &AppState, visit: Visit, auth: &Authorization, session: &BrowserSession) -> Response {
    let code = match state.auth.issue_code(auth, session).await {
        Ok(c) => c,
        Err(e) => return error_page(visit, &e),
    };
    let iss = state.auth.tenant(&visit.tenant).map(|t| t.issuer.clone()).unwrap_or_default();
    let mut params = vec![("code", code.expose())];
    if let Some(s) = &auth.state {
        params.push(("state", s));
    }
    params.push(("iss", &iss));
    let res = see_other(&with_query(&auth.redirect_uri, &params));
    visit.finish(res)
}

/// With a session that fits the request: consent (asked, or remembered), then the code.
async fn proceed(state: &AppState, visit: Visit, auth: &Authorization, session: &BrowserSession) -> Response {
    match state.auth.consent_needed(auth, session).await {
        Ok(false) => issue(state, visit, auth, session).await,
        Ok(true) if auth.prompt == Prompt::None => failure(
            state,
            visit,
            auth.fail(Error::new(ErrorKind::ConsentRequired, "the user has not allowed this client")),
        ),
        Ok(true) => consent_page(state, visit, auth, session),
        Err(e) => error_page(visit, &e),
    }
}

pub async fn authorize_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let mut visit = Visit::new(&state, &tenant, &headers);
    let mut form = match parse_query(query.as_deref()) {
        Ok(f) => f,
        Err(e) => return error_page(visit, &e),
    };
    let auth = match state.auth.authorize_request(&tenant, authorize_request(&mut form)).await {
        Ok(a) => a,
        Err(e) => return failure(&state, visit, e),
    };
    visit.allow_form_target(&auth.redirect_uri);
    let session = match visit.session(&state).await {
        Ok(s) => s.filter(|s| state.auth.session_fits(&auth, s)),
        Err(e) => return error_page(visit, &e),
    };
    match session {
        Some(s) => proceed(&state, visit, &auth, &s).await,
        None if auth.prompt == Prompt::None => {
            failure(&state, visit, auth.fail(Error::new(ErrorKind::LoginRequired, "the user is not signed in")))
        }
        None => login_page(visit, &auth, StatusCode::OK, None, ""),
    }
}

/// The forms of the flow, posted back to the authorization request's URL: `step` is
/// `password`, `code` (the one-time code) or `consent`.
pub async fn authorize_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut visit = Visit::new(&state, &tenant, &parts.headers);
    let mut params = match parse_query(query.as_deref()) {
        Ok(f) => f,
        Err(e) => return error_page(visit, &e),
    };
    let auth = match state.auth.authorize_request(&tenant, authorize_request(&mut params)).await {
        Ok(a) => a,
        Err(e) => return failure(&state, visit, e),
    };
    visit.allow_form_target(&auth.redirect_uri);
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(unread) => return unread.render(|e| error_page(visit, &e)),
    };
    let mut form = match parse_form(&parts.headers, &body) {
        Ok(f) => f,
        Err(e) => return error_page(visit, &e),
    };
    if !visit.csrf_ok(&mut form) {
        let say = "The form expired. Sign in again.";
        return login_page(visit, &auth, StatusCode::FORBIDDEN, Some(say), "");
    }
    let step = form.remove("step").unwrap_or_default();
    let signed_in = match step.as_str() {
        "password" => {
            let username = form.remove("username").unwrap_or_default();
            let password = Secret::new(form.remove("password").unwrap_or_default());
            match state.auth.browser_sign_in(&tenant, &username, password, origin).await {
                Ok(SignInStep::SecondFactor { ticket }) => {
                    return code_page(visit, &auth, StatusCode::OK, None, &ticket);
                }
                Ok(SignInStep::Enrol { ticket, enrolment: e }) => {
                    return enrol_page(visit, &auth, None, &ticket, &e.secret_base32, &e.otpauth_uri);
                }
                Ok(SignInStep::Done(cookie, session) | SignInStep::Enrolled(cookie, session, _)) => (cookie, session),
                Err(e) if e.kind == ErrorKind::InvalidGrant => {
                    return login_page(visit, &auth, StatusCode::UNAUTHORIZED, Some(WRONG_CREDENTIALS), &username);
                }
                Err(e) => return error_page(visit, &e),
            }
        }
        "code" => {
            let ticket = form.remove("ticket").unwrap_or_default();
            let otp = Secret::new(form.remove("otp").unwrap_or_default());
            match state.auth.browser_second_factor(&tenant, &ticket, otp, origin).await {
                Ok(SignInStep::Done(cookie, session) | SignInStep::Enrolled(cookie, session, _)) => (cookie, session),
                Ok(SignInStep::SecondFactor { ticket } | SignInStep::Enrol { ticket, .. }) => {
                    return code_page(visit, &auth, StatusCode::OK, None, &ticket);
                }
                Err(e) if e.kind == ErrorKind::InvalidGrant && e.description.contains("expired") => {
                    return login_page(visit, &auth, StatusCode::UNAUTHORIZED, Some(&e.description), "");
                }
                Err(e) if e.kind == ErrorKind::InvalidGrant => {
                    return code_page(visit, &auth, StatusCode::UNAUTHORIZED, Some(WRONG_CODE), &ticket);
                }
                Err(e) => return error_page(visit, &e),
            }
        }
        "enrol" => {
            let ticket = form.remove("ticket").unwrap_or_default();
            let (secret, uri) = (form.remove("secret").unwrap_or_default(), form.remove("uri").unwrap_or_default());
            let otp = Secret::new(form.remove("otp").unwrap_or_default());
            return match state.auth.browser_enrol(&tenant, &ticket, otp, origin).await {
                Ok(SignInStep::Enrolled(cookie, _, codes)) => {
                    visit.signed_in(&cookie);
                    recovery_codes_page(visit, &auth, &codes, query.as_deref())
                }
                Ok(_) => login_page(visit, &auth, StatusCode::UNAUTHORIZED, Some("Sign in again."), ""),
                Err(e) if e.kind == ErrorKind::InvalidGrant && e.description.contains("expired") => {
                    login_page(visit, &auth, StatusCode::UNAUTHORIZED, Some(&e.description), "")
                }
                Err(e) if e.kind == ErrorKind::InvalidGrant => {
                    enrol_page(visit, &auth, Some(WRONG_CODE), &ticket, &secret, &uri)
                }
                Err(e) => error_page(visit, &e),
            };
        }
        "consent" => {
            let session = match visit.session(&state).await {
                Ok(Some(s)) => s,
                Ok(None) => return login_page(visit, &auth, StatusCode::UNAUTHORIZED, Some("Sign in again."), ""),
                Err(e) => return error_page(visit, &e),
            };
            return match form.remove("decision").as_deref() {
                Some("allow") => match state.auth.remember_consent(&auth, &session).await {
                    Ok(()) => issue(&state, visit, &auth, &session).await,
                    Err(e) => error_page(visit, &e),
                },
                Some("deny") => failure(&state, visit, auth.fail(Error::access_denied("the user denied the request"))),
                _ => consent_page(&state, visit, &auth, &session),
            };
        }
        _ => return login_page(visit, &auth, StatusCode::BAD_REQUEST, None, ""),
    };
    let (cookie, session) = signed_in;
    visit.signed_in(&cookie);
    proceed(&state, visit, &auth, &session).await
}

/// OpenID Connect RP-initiated logout: `id_token_hint`, `post_logout_redirect_uri` (registered
/// for the hint's client, or for `client_id`), `state`. With a hint of the current session
/// the person is signed out at once; else they confirm on a page (a CSRF-checked form).
pub async fn logout(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut visit = Visit::new(&state, &tenant, &parts.headers);
    let is_post = parts.method == axum::http::Method::POST;
    let mut params = match parse_query(query.as_deref()) {
        Ok(f) => f,
        Err(e) => return error_page(visit, &e),
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(unread) => return unread.render(|e| error_page(visit, &e)),
    };
    let mut form = if is_post && !body.is_empty() {
        match parse_form(&parts.headers, &body) {
            Ok(f) => Some(f),
            Err(e) => return error_page(visit, &e),
        }
    } else {
        None
    };
    let mut take = |name: &str| params.remove(name).or_else(|| form.as_mut().and_then(|f| f.remove(name)));
    let hint = take("id_token_hint");
    let client_id = take("client_id");
    let target = take("post_logout_redirect_uri");
    let st = take("state");
    let hinted = match hint.as_deref().map(|h| state.auth.id_token_hint(&tenant, h)).transpose() {
        Ok(h) => h,
        Err(e) => return error_page(visit, &e),
    };
    let client_id = hinted.as_ref().map(|(aud, _)| aud.clone()).or(client_id);
    // Where to go afterwards: only a URI the client registered for it.
    let target = match target {
        None => None,
        Some(uri) => {
            let Some(id) = client_id.as_deref() else {
                return error_page(
                    visit,
                    &Error::invalid_request("post_logout_redirect_uri needs id_token_hint or client_id"),
                );
            };
            match state.auth.client_named(&tenant, id).await {
                Ok(Some(c)) if c.post_logout_redirect_uris.iter().any(|u| *u == uri) => Some(uri),
                Ok(_) => {
                    return error_page(
                        visit,
                        &Error::invalid_request("post_logout_redirect_uri is not registered for this client"),
                    );
                }
                Err(e) => return error_page(visit, &e),
            }
        }
    };
    if let Some(uri) = &target {
        visit.allow_form_target(uri);
    }
    let session = match visit.session(&state).await {
        Ok(s) => s,
        Err(e) => return error_page(visit, &e),
    };
    let confirmed = is_post && form.as_mut().is_some_and(|f| visit.csrf_ok(f));
    let hint_is_this_session = match (&hinted, &session) {
        (Some((_, Some(sid))), Some(s)) => ct_eq(sid.as_bytes(), s.sid.as_bytes()),
        _ => false,
    };
    if let Some(s) = &session {
        if !(confirmed || hint_is_this_session) {
            let ctx = context! { title => "Sign out?", username => &s.username };
            return visit.page(StatusCode::OK, "logout.html", ctx);
        }
        if let Err(e) = state.auth.end_browser_session(&tenant, &s.sid).await {
            return error_page(visit, &e);
        }
    }
    visit.signed_out();
    match target {
        Some(uri) => {
            let mut q = vec![];
            if let Some(s) = st.as_deref() {
                q.push(("state", s));
            }
            let location = if q.is_empty() { uri } else { with_query(&uri, &q) };
            visit.finish(see_other(&location))
        }
        None => visit.message(StatusCode::OK, "Signed out", "You are signed out. You can close this window."),
    }
}
