//! SFTPGo (`/api/v2`): admin and user API tokens by HTTP Basic (+ `X-SFTPGO-OTP`), and
//! logout (CONTRACTS.md section 3). Admin tokens and user tokens have different audiences
//! and are not accepted for each other.

use crate::AppState;
use crate::extract::{Origin, Tenant, basic_credentials, bearer_token, header_text};
use crate::openapi::{Api, Field, Front, JSON, doc, object};
use crate::time::rfc3339_z;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, json};
use std::net::IpAddr;
use tessera_core::authority::{Action, Actor, Audience, Session};
use tessera_core::secret::Secret;
use tessera_core::token::Invalid;
use tessera_core::{Error, ErrorKind};

/// SFTPGo's token lifetime: 20 minutes, or the tenant's access lifetime if shorter (the core caps it).
const TOKEN_TTL: i64 = 20 * 60;
const ADMIN_AUDIENCE: &str = "API";
const USER_AUDIENCE: &str = "APIUser";

/// SFTPGo's `ApiResponse`.
#[derive(Debug, Serialize)]
pub struct ApiResponse<'a> {
    pub message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}

/// SFTPGo's `Token`: `expires_at` in RFC 3339, UTC, whole seconds.
#[derive(Debug, Serialize)]
pub struct TokenAnswer {
    pub access_token: String,
    pub expires_at: String,
}

/// SFTPGo's token and logout API, at `/api/v2`.
pub fn front() -> Front {
    use Field::Str;
    let token = || object(&[("access_token", Str), ("expires_at", Str)]);
    let done = || object(&[("message", Str), ("error?", Str)]);
    let api = Api::default()
        .get(
            "/token",
            admin_token_get,
            doc("An admin token (Basic; X-SFTPGO-OTP when 2FA is on)").also(200, "the token", JSON, token()),
        )
        .get(
            "/user/token",
            user_token_get,
            doc("A user token (Basic; X-SFTPGO-OTP when 2FA is on)").also(200, "the token", JSON, token()),
        )
        .get("/logout", admin_logout_get, doc("End an admin token (Bearer)").also(200, "ended", JSON, done()))
        .get("/user/logout", user_logout_get, doc("End a user token (Bearer)").also(200, "ended", JSON, done()));
    Front {
        tag: "sftpgo",
        prefixes: &["/api/v2"],
        api,
        security: &["basic", "bearer"],
        errors: (JSON, done()),
        error_schemas: vec![],
    }
}

/// `{"message", "error"?}` with SFTPGo's statuses.
fn reply(status: StatusCode, message: &str, error: Option<&str>) -> Response {
    let mut res = (status, axum::Json(ApiResponse { message, error })).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"SFTPGo\""));
    }
    res
}

fn unauthorized(error: Option<&str>) -> Response {
    reply(StatusCode::UNAUTHORIZED, "Unauthorized", error)
}

pub(crate) fn failure(e: Error) -> Response {
    match e.kind {
        ErrorKind::Unavailable => {
            let mut r = reply(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", Some(&e.description));
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        ErrorKind::Internal => reply(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", None),
        ErrorKind::MfaRequired => unauthorized(Some("two-factor authentication required: send X-SFTPGO-OTP")),
        ErrorKind::RateLimited => {
            let mut r = reply(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", Some(&e.description));
            if let Some(v) = crate::extract::retry_after(&e) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        _ => unauthorized(Some("invalid credentials")),
    }
}

async fn token(state: &AppState, tenant: &str, origin: Option<IpAddr>, headers: &HeaderMap, admin: bool) -> Response {
    let (username, password) = match basic_credentials(headers) {
        Ok(Some(c)) => c,
        _ => return unauthorized(None),
    };
    if username.is_empty() || password.expose().trim().is_empty() {
        return unauthorized(None);
    }
    let otp = header_text(headers, "x-sftpgo-otp").map(Secret::new);
    let (user, provenance) = match state.auth.sign_in(tenant, &username, password, otp.as_ref(), origin).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    // Admins and users are separate accounts in SFTPGo: to an admin sign-in, a user who may
    // not administer the tenant is no account at all.
    if admin && state.auth.authorize(&Actor::User(&user), tenant, Action::Administer).await.is_err() {
        return unauthorized(Some("invalid credentials"));
    }
    let mut extra = Map::new();
    if admin {
        extra.insert("permissions".into(), json!(["*"]));
    }
    let session = Session {
        audience: Some(if admin { ADMIN_AUDIENCE } else { USER_AUDIENCE }.to_owned()),
        ttl: Some(TOKEN_TTL),
        scope: None,
        extra,
        provenance,
    };
    match state.auth.issue_session(&user, session) {
        Ok(t) => {
            crate::metrics_layer::tokens_issued("sftpgo").increment(1);
            let answer = TokenAnswer { expires_at: rfc3339_z(t.expires_at), access_token: t.access_token };
            (StatusCode::OK, axum::Json(answer)).into_response()
        }
        Err(e) => failure(e),
    }
}

async fn admin_token_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    headers: HeaderMap,
) -> Response {
    token(&state, &tenant, origin, &headers, true).await
}

async fn user_token_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    headers: HeaderMap,
) -> Response {
    token(&state, &tenant, origin, &headers, false).await
}

async fn logout(state: &AppState, tenant: &str, headers: &HeaderMap, audience: &str) -> Response {
    let Some(raw) = bearer_token(headers) else {
        return unauthorized(Some("no token found"));
    };
    let claims = match state.auth.verify_for(tenant, raw, &[Audience::Named(audience)]) {
        Ok(c) => c,
        Err(Invalid::Revoked) => return reply(StatusCode::UNAUTHORIZED, "Your token is no longer valid", None),
        Err(Invalid::Expired) => return unauthorized(Some("token is expired")),
        Err(Invalid::WrongAudience) => {
            return reply(StatusCode::UNAUTHORIZED, "Your token audience is not valid", None);
        }
        Err(_) => return unauthorized(Some("token is unauthorized")),
    };
    if claims.username.is_none() {
        return reply(StatusCode::BAD_REQUEST, "Invalid token claims", None);
    }
    match state.auth.revoke_access(&claims).await {
        Ok(()) => reply(StatusCode::OK, "Your token has been invalidated", None),
        Err(e) => failure(e),
    }
}

async fn admin_logout_get(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    logout(&state, &tenant, &headers, ADMIN_AUDIENCE).await
}

async fn user_logout_get(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    logout(&state, &tenant, &headers, USER_AUDIENCE).await
}
