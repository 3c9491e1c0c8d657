//! The device verification page (RFC 8628 section 3.3): a person types the code shown on
//! their device, sees which application asks, signs in, and approves or denies.

use super::{esc, page};
use crate::AppState;
use crate::extract::{Origin, TenantName, parse_form, read_body};
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;
use tessera_core::ErrorKind;
use tessera_core::device::display_user_code;
use tessera_core::secret::Secret;

const TITLE: &str = "Connect a device";

fn code_form(error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p class=\"err\">{}</p>", esc(e))).unwrap_or_default();
    format!(
        "{err}<form method=\"get\"><label for=\"user_code\">Enter the code shown on your device</label>\
         <input id=\"user_code\" name=\"user_code\" autocomplete=\"off\" autofocus required>\
         <button type=\"submit\">Continue</button></form>"
    )
}

fn sign_in_form(code: &str, client_name: &str, scope: Option<&str>, error: Option<&str>) -> String {
    let err = error.map(|e| format!("<p class=\"err\">{}</p>", esc(e))).unwrap_or_default();
    let scope = scope.map(|s| format!("<p>It asks for: <b>{}</b></p>", esc(s))).unwrap_or_default();
    format!(
        "{err}<p><b>{name}</b> wants to sign in as you on a device showing the code</p>\
         <p class=\"code\">{code_shown}</p>{scope}\
         <form method=\"post\"><input type=\"hidden\" name=\"user_code\" value=\"{code}\">\
         <label for=\"username\">Username</label><input id=\"username\" name=\"username\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <label for=\"otp\">One-time code (if you use two-factor authentication)</label>\
         <input id=\"otp\" name=\"otp\" inputmode=\"numeric\" autocomplete=\"one-time-code\">\
         <button type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"action\" value=\"deny\">Deny</button></form>",
        name = esc(client_name),
        code_shown = esc(&display_user_code(code)),
        code = esc(code),
    )
}

pub async fn device_get(
    State(state): State<AppState>,
    TenantName(tenant): TenantName,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(code) = q.get("user_code").filter(|c| !c.is_empty()) else {
        return page(StatusCode::OK, TITLE, &code_form(None));
    };
    match state.auth.device_pending(&tenant, code).await {
        Ok((rec, client)) => {
            page(StatusCode::OK, TITLE, &sign_in_form(&rec.user_code, &client.name, rec.scope.as_deref(), None))
        }
        Err(e) if e.kind == ErrorKind::Unavailable => {
            page(StatusCode::SERVICE_UNAVAILABLE, TITLE, &code_form(Some(&e.description)))
        }
        Err(_) => page(StatusCode::NOT_FOUND, TITLE, &code_form(Some("That code is unknown or has expired."))),
    }
}

pub async fn device_post(
    State(state): State<AppState>,
    TenantName(tenant): TenantName,
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
            return unread.render(|_| page(StatusCode::BAD_REQUEST, TITLE, &code_form(Some(say))));
        }
    };
    let headers = parts.headers;
    let Ok(mut form) = parse_form(&headers, &body) else {
        return page(StatusCode::BAD_REQUEST, TITLE, &code_form(Some("The form could not be read.")));
    };
    let code = form.remove("user_code").unwrap_or_default();
    let (rec, client) = match state.auth.device_pending(&tenant, &code).await {
        Ok(found) => found,
        Err(_) => return page(StatusCode::NOT_FOUND, TITLE, &code_form(Some("That code is unknown or has expired."))),
    };
    let username = form.remove("username").unwrap_or_default();
    let password = Secret::new(form.remove("password").unwrap_or_default());
    let approve = match form.remove("action").as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            let f = sign_in_form(&rec.user_code, &client.name, rec.scope.as_deref(), Some("Choose Approve or Deny."));
            return page(StatusCode::BAD_REQUEST, TITLE, &f);
        }
    };
    let otp = form.remove("otp").filter(|o| !o.is_empty()).map(Secret::new);
    if let Err(e) = state.auth.check_credentials(&tenant, &username, password, otp.as_ref(), origin).await {
        let msg = match e.kind {
            ErrorKind::Unavailable | ErrorKind::RateLimited => e.description,
            ErrorKind::MfaRequired => "Enter the one-time code from your authenticator app too.".into(),
            _ => "Wrong username, password or code.".into(),
        };
        let f = sign_in_form(&rec.user_code, &client.name, rec.scope.as_deref(), Some(&msg));
        return page(StatusCode::UNAUTHORIZED, TITLE, &f);
    }
    match state.auth.device_decide(&tenant, &rec.user_code, &username, approve).await {
        Ok(()) if approve => page(StatusCode::OK, "Device connected", "<p>You can return to your device now.</p>"),
        Ok(()) => page(StatusCode::OK, "Request denied", "<p>The device will not be signed in.</p>"),
        Err(_) => page(StatusCode::NOT_FOUND, TITLE, &code_form(Some("That code is unknown or has expired."))),
    }
}
