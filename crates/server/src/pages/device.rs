//! The device verification page (RFC 8628 section 3.3): a person types the code shown on
//! their device (or follows `verification_uri_complete`, which fills it in), signs in, and
//! only then sees which application asks and approves or denies. Before the sign-in, every
//! well-formed code gets the same page (nothing is looked up), so the page tells a guesser
//! nothing; after it, failed look-ups are limited per address and per tenant (section 5.1).
//!
//! A person already signed in at the tenant (the session of the sign-in pages) is not asked
//! for their password again: they see the decision at once, and its form carries the CSRF
//! token of the sign-in pages instead of a ticket.

use super::visit::Visit;
use crate::AppState;
use crate::extract::{Origin, Tenant, parse_form, read_body, retry_after};
use crate::urls::endpoint;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use minijinja::context;
use std::collections::HashMap;
use tessera_core::device::{display_user_code, normalize_user_code};
use tessera_core::secret::Secret;
use tessera_core::store::{BrowserSession, DeviceRecord};
use tessera_core::{Error, ErrorKind};

const TITLE: &str = "Connect a device";
const MALFORMED: &str = "That is not a valid code: it has 8 letters, as shown on your device (XXXX-XXXX).";
const UNKNOWN: &str = "That code is unknown or has expired.";

fn code_form(visit: Visit, status: StatusCode, error: Option<&str>) -> Response {
    visit.page(status, "device_code.html", context! { title => TITLE, error })
}

/// The sign-in step: the same for every well-formed code but for the code itself.
fn sign_in_form(visit: Visit, status: StatusCode, code: &str, error: Option<&str>) -> Response {
    let ctx = context! { title => TITLE, error, code, code_shown => display_user_code(code) };
    visit.page(status, "device_sign_in.html", ctx)
}

/// Who decides on the decision page: the person who just signed in (the ticket stands for
/// their sign-in), or the person of the live session.
enum Decider<'a> {
    Ticket(String),
    Session(&'a BrowserSession),
}

/// After the sign-in: who asks, for what, and the choice.
fn decision_form(state: &AppState, visit: Visit, rec: &DeviceRecord, client_name: &str, by: Decider<'_>) -> Response {
    let (ticket, username, sign_out) = match by {
        Decider::Ticket(t) => (Some(t), None, None),
        Decider::Session(s) => (None, Some(s.username.clone()), Some(endpoint(state, &visit.tenant, "/oauth2/logout"))),
    };
    let scopes: Vec<&str> = rec.scope.as_deref().map(|s| s.split(' ').collect()).unwrap_or_default();
    let ctx = context! {
        title => "Approve this device?",
        client => client_name,
        code => &rec.user_code,
        code_shown => display_user_code(&rec.user_code),
        scopes,
        ticket,
        username,
        sign_out,
    };
    visit.page(StatusCode::OK, "device_decide.html", ctx)
}

fn decided(visit: Visit, approve: bool) -> Response {
    let (title, message) = if approve {
        ("Device connected", "You can return to your device now.")
    } else {
        ("Request denied", "The device will not be signed in.")
    };
    visit.message(StatusCode::OK, title, message)
}

/// The page for an error of the engine: `rate_limited` (429) and `unavailable` (503) in the
/// engine's words, with `Retry-After`; anything else as `otherwise` says.
fn error_page(e: &Error, body: impl FnOnce(StatusCode, &str) -> Response, otherwise: (StatusCode, &str)) -> Response {
    let status = match e.kind {
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => return body(otherwise.0, otherwise.1),
    };
    let mut res = body(status, &e.description);
    if let Some(v) = retry_after(e) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The code form, an error and its status.
fn unknown(visit: Visit) -> impl FnOnce(StatusCode, &str) -> Response {
    move |status, m| code_form(visit, status, Some(m))
}

pub async fn device_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let visit = Visit::new(&state, &tenant, &headers);
    let Some(typed) = q.get("user_code").filter(|c| !c.is_empty()) else {
        return code_form(visit, StatusCode::OK, None);
    };
    let Some(code) = normalize_user_code(typed) else {
        return code_form(visit, StatusCode::BAD_REQUEST, Some(MALFORMED));
    };
    let session = match visit.session(&state).await {
        Ok(s) => s,
        Err(e) => return error_page(&e, unknown(visit), (StatusCode::SERVICE_UNAVAILABLE, UNKNOWN)),
    };
    // Without a session nothing is looked up before the sign-in: a hit and a miss get the
    // same page. With one, the person has signed in already.
    let Some(session) = session else {
        return sign_in_form(visit, StatusCode::OK, &code, None);
    };
    match state.auth.device_lookup(&tenant, &code, origin).await {
        Ok((rec, client)) => decision_form(&state, visit, &rec, &client.name, Decider::Session(&session)),
        Err(e) => error_page(&e, unknown(visit), (StatusCode::NOT_FOUND, UNKNOWN)),
    }
}

/// The sign-in (then the decision page), the decision with the ticket of a sign-in, or the
/// decision of the live session (`via=session`, CSRF-checked). A sign-in that names the
/// action too decides at once (for scripts).
pub async fn device_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let visit = Visit::new(&state, &tenant, &headers);
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(unread) => {
            let say = if unread.status == StatusCode::PAYLOAD_TOO_LARGE {
                "The form is too large."
            } else {
                "The form could not be read."
            };
            return unread.render(|_| code_form(visit, StatusCode::BAD_REQUEST, Some(say)));
        }
    };
    let Ok(mut form) = parse_form(&headers, &body) else {
        return code_form(visit, StatusCode::BAD_REQUEST, Some("The form could not be read."));
    };
    let Some(code) = form.remove("user_code").as_deref().and_then(normalize_user_code) else {
        return code_form(visit, StatusCode::BAD_REQUEST, Some(MALFORMED));
    };
    let action = match form.remove("action").as_deref() {
        None | Some("") => None,
        Some("approve") => Some(true),
        Some("deny") => Some(false),
        Some(_) => return sign_in_form(visit, StatusCode::BAD_REQUEST, &code, Some("Choose Approve or Deny.")),
    };
    if form.remove("via").as_deref() == Some("session") {
        return session_decision(&state, visit, form, &code, action, origin).await;
    }
    if let Some(ticket) = form.remove("ticket").filter(|t| !t.is_empty()) {
        let Some(approve) = action else {
            return sign_in_form(visit, StatusCode::BAD_REQUEST, &code, Some("Choose Approve or Deny."));
        };
        return match state.auth.device_decide_with_ticket(&tenant, &code, &ticket, approve).await {
            Ok(_) => decided(visit, approve),
            Err(e) => error_page(&e, unknown(visit), (StatusCode::NOT_FOUND, UNKNOWN)),
        };
    }
    let username = form.remove("username").unwrap_or_default();
    let password = Secret::new(form.remove("password").unwrap_or_default());
    let otp = form.remove("otp").filter(|o| !o.is_empty()).map(Secret::new);
    let user = match state.auth.sign_in(&tenant, &username, password, otp.as_ref(), origin).await {
        Ok((user, _)) => user,
        Err(e) => {
            let say = match e.kind {
                ErrorKind::MfaRequired => "Enter the one-time code from your authenticator app too.",
                _ => "Wrong username, password or code.",
            };
            let form = |status, m: &str| sign_in_form(visit, status, &code, Some(m));
            return error_page(&e, form, (StatusCode::UNAUTHORIZED, say));
        }
    };
    let (rec, client) = match state.auth.device_lookup(&tenant, &code, origin).await {
        Ok(found) => found,
        Err(e) => return error_page(&e, unknown(visit), (StatusCode::NOT_FOUND, UNKNOWN)),
    };
    match action {
        None => {
            let ticket = state.auth.device_ticket(&rec, &user.username);
            decision_form(&state, visit, &rec, &client.name, Decider::Ticket(ticket))
        }
        Some(approve) => match state.auth.device_decide(&tenant, &rec.user_code, &user.username, approve).await {
            Ok(()) => decided(visit, approve),
            Err(e) => error_page(&e, unknown(visit), (StatusCode::NOT_FOUND, UNKNOWN)),
        },
    }
}

/// The decision of the person of the live session: the form's CSRF token must be the
/// cookie's, and the session must still be live (a sign-out in between ends it).
async fn session_decision(
    state: &AppState,
    visit: Visit,
    mut form: crate::extract::Form<'_>,
    code: &str,
    action: Option<bool>,
    origin: Option<std::net::IpAddr>,
) -> Response {
    if !visit.csrf_ok(&mut form) {
        let say = "The form expired. Sign in to continue.";
        return sign_in_form(visit, StatusCode::FORBIDDEN, code, Some(say));
    }
    let session = match visit.session(state).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let say = "You were signed out. Sign in to continue.";
            return sign_in_form(visit, StatusCode::UNAUTHORIZED, code, Some(say));
        }
        Err(e) => return error_page(&e, unknown(visit), (StatusCode::SERVICE_UNAVAILABLE, UNKNOWN)),
    };
    let (rec, client) = match state.auth.device_lookup(&visit.tenant, code, origin).await {
        Ok(found) => found,
        Err(e) => return error_page(&e, unknown(visit), (StatusCode::NOT_FOUND, UNKNOWN)),
    };
    let Some(approve) = action else {
        return decision_form(state, visit, &rec, &client.name, Decider::Session(&session));
    };
    match state.auth.device_decide(&visit.tenant, &rec.user_code, &session.username, approve).await {
        Ok(()) => decided(visit, approve),
        Err(e) => error_page(&e, unknown(visit), (StatusCode::NOT_FOUND, UNKNOWN)),
    }
}
