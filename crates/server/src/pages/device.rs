//! The device verification page (RFC 8628 section 3.3): a person types the code shown on
//! their device, signs in, and only then sees which application asks and approves or denies.
//! Before the sign-in, every well-formed code gets the same page (nothing is looked up), so
//! the page tells a guesser nothing; after it, failed look-ups are limited per address and
//! per tenant (section 5.1).

use super::page;
use crate::AppState;
use crate::extract::{Origin, Tenant, parse_form, read_body, retry_after};
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use minijinja::context;
use std::collections::HashMap;
use tessera_core::device::{display_user_code, normalize_user_code};
use tessera_core::secret::Secret;
use tessera_core::store::DeviceRecord;
use tessera_core::{Error, ErrorKind};

const TITLE: &str = "Connect a device";
const MALFORMED: &str = "That is not a valid code: it has 8 letters, as shown on your device (XXXX-XXXX).";
const UNKNOWN: &str = "That code is unknown or has expired.";

fn code_form(status: StatusCode, error: Option<&str>) -> Response {
    page(status, "device_code.html", context! { title => TITLE, error })
}

/// The sign-in step: the same for every well-formed code but for the code itself.
fn sign_in_form(status: StatusCode, code: &str, error: Option<&str>) -> Response {
    let ctx = context! { title => TITLE, error, code, code_shown => display_user_code(code) };
    page(status, "device_sign_in.html", ctx)
}

/// After the sign-in: who asks, for what, and the choice (the ticket stands for the sign-in).
fn decision_form(rec: &DeviceRecord, client_name: &str, ticket: &str) -> Response {
    let ctx = context! {
        title => TITLE,
        client => client_name,
        code => &rec.user_code,
        code_shown => display_user_code(&rec.user_code),
        scope => rec.scope.as_deref(),
        ticket,
    };
    page(StatusCode::OK, "device_decide.html", ctx)
}

fn decided(approve: bool) -> Response {
    let (title, message) = if approve {
        ("Device connected", "You can return to your device now.")
    } else {
        ("Request denied", "The device will not be signed in.")
    };
    page(StatusCode::OK, "message.html", context! { title, message })
}

/// The page for an error of the engine: `rate_limited` (429) and `unavailable` (503) in the
/// engine's words, with `Retry-After`; anything else as `otherwise` says.
fn error_page(e: &Error, body: impl Fn(StatusCode, &str) -> Response, otherwise: (StatusCode, &str)) -> Response {
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

pub async fn device_get(Tenant(_): Tenant, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(typed) = q.get("user_code").filter(|c| !c.is_empty()) else {
        return code_form(StatusCode::OK, None);
    };
    // Nothing is looked up before the sign-in: a hit and a miss get the same page.
    match normalize_user_code(typed) {
        Some(code) => sign_in_form(StatusCode::OK, &code, None),
        None => code_form(StatusCode::BAD_REQUEST, Some(MALFORMED)),
    }
}

/// The sign-in (then the decision page), or the decision with the ticket of a sign-in. A
/// sign-in that names the action too decides at once (for scripts).
pub async fn device_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(unread) => {
            let say = if unread.status == StatusCode::PAYLOAD_TOO_LARGE {
                "The form is too large."
            } else {
                "The form could not be read."
            };
            return unread.render(|_| code_form(StatusCode::BAD_REQUEST, Some(say)));
        }
    };
    let headers = parts.headers;
    let Ok(mut form) = parse_form(&headers, &body) else {
        return code_form(StatusCode::BAD_REQUEST, Some("The form could not be read."));
    };
    let Some(code) = form.remove("user_code").as_deref().and_then(normalize_user_code) else {
        return code_form(StatusCode::BAD_REQUEST, Some(MALFORMED));
    };
    let action = match form.remove("action").as_deref() {
        None | Some("") => None,
        Some("approve") => Some(true),
        Some("deny") => Some(false),
        Some(_) => return sign_in_form(StatusCode::BAD_REQUEST, &code, Some("Choose Approve or Deny.")),
    };
    let unknown = |status: StatusCode, m: &str| code_form(status, Some(m));
    if let Some(ticket) = form.remove("ticket").filter(|t| !t.is_empty()) {
        let Some(approve) = action else {
            return sign_in_form(StatusCode::BAD_REQUEST, &code, Some("Choose Approve or Deny."));
        };
        return match state.auth.device_decide_with_ticket(&tenant, &code, &ticket, approve).await {
            Ok(_) => decided(approve),
            Err(e) => error_page(&e, unknown, (StatusCode::NOT_FOUND, UNKNOWN)),
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
            return error_page(&e, |status, m| sign_in_form(status, &code, Some(m)), (StatusCode::UNAUTHORIZED, say));
        }
    };
    let (rec, client) = match state.auth.device_lookup(&tenant, &code, origin).await {
        Ok(found) => found,
        Err(e) => return error_page(&e, unknown, (StatusCode::NOT_FOUND, UNKNOWN)),
    };
    match action {
        None => {
            let ticket = state.auth.device_ticket(&rec, &user.username);
            decision_form(&rec, &client.name, &ticket)
        }
        Some(approve) => match state.auth.device_decide(&tenant, &rec.user_code, &user.username, approve).await {
            Ok(()) => decided(approve),
            Err(e) => error_page(&e, unknown, (StatusCode::NOT_FOUND, UNKNOWN)),
        },
    }
}
