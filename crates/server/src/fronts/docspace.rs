//! ONLYOFFICE DocSpace (`GET /api/2.0/security/oauth2/token`): a short-lived JWT for a caller
//! authenticated by any of DocSpace's schemes, in the `StringWrapper` envelope
//! (CONTRACTS.md section 1).

use crate::AppState;
use crate::extract::{Origin, Tenant, basic_credentials, cookie_value, header_text};
use crate::openapi::{Api, Field, Front, JSON, doc, object};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Map;
use std::net::IpAddr;
use tessera_core::Error;
use tessera_core::authority::{Audience, Session};
use tessera_core::principal::User;
use tessera_core::secret::{Secret, prefix};
use tessera_core::token::Provenance;

const PATH: &str = "/api/2.0/security/oauth2/token";
/// DocSpace's identity tokens live five minutes, or the tenant's access lifetime if shorter.
const TOKEN_TTL: i64 = 5 * 60;
/// The audience of DocSpace's tokens. The real portal writes its root URL (= `iss`); no
/// client reads it, and a value of its own keeps these tokens out of the other fronts.
pub const AUDIENCE: &str = "docspace";
/// DocSpace takes its own tokens, and the tenant's standard ones (its API is defined with
/// the portal's root URL, the issuer, as audience).
const ACCEPTS: &[Audience<'static>] = &[Audience::Named(AUDIENCE), Audience::Issuer];

/// DocSpace's `StringWrapper`: the answer, with the real server's envelope members.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StringWrapper {
    pub response: String,
    pub count: u32,
    pub links: [Link; 1],
    /// 0: success.
    pub status: u8,
    pub status_code: u16,
}

#[derive(Debug, Serialize)]
pub struct Link {
    pub href: String,
    pub action: &'static str,
}

/// DocSpace's error envelope (without the stack trace the real server adds in development).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEnvelope {
    pub error: ErrorMessage,
    /// 1: error.
    pub status: u8,
    pub status_code: u16,
}

#[derive(Debug, Serialize)]
pub struct ErrorMessage {
    pub message: String,
}

/// DocSpace's token endpoint.
pub fn front() -> Front {
    use Field::{Int, Objs, Str};
    let answer = object(&[("response", Str), ("count", Int), ("links", Objs), ("status", Int), ("statusCode", Int)]);
    let api = Api::default().get(
        PATH,
        token_get,
        doc("An identity token for a user (Basic, or a token or cookie of the portal)").also(
            200,
            "the token",
            JSON,
            answer,
        ),
    );
    let errors = (JSON, object(&[("status", Int), ("statusCode", Int), ("error", Field::Obj)]));
    Front { tag: "docspace", prefixes: &[""], api, security: &["basic", "bearer"], errors, error_schemas: vec![] }
}

fn json_reply(status: StatusCode, body: impl Serialize) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    res
}

pub(crate) fn failure(e: Error) -> Response {
    let status = crate::status::sign_in_status(e.kind, false);
    let body = ErrorEnvelope {
        error: ErrorMessage { message: format!("{}: {}", e.kind.code(), e.description) },
        status: 1,
        status_code: status.as_u16(),
    };
    let mut res = json_reply(status, body);
    if let Some(v) = crate::extract::retry_after(&e) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// A credential that is a token or an API key. A token minted from a token keeps its
/// authentication facts, session and expiry.
async fn user_of_token(
    state: &AppState,
    tenant: &str,
    value: &str,
    origin: Option<IpAddr>,
) -> Result<(User, Provenance), Error> {
    let value = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
    if value.starts_with(prefix::API_KEY) {
        return state.auth.api_key_sign_in(Some(tenant), value, origin).await;
    }
    state.auth.bearer_sign_in(tenant, value, ACCEPTS).await
}

/// Every scheme the SDKs and real clients use: Basic (e-mail and password), Bearer token or
/// API key, a raw `Authorization` value, the `ApiKeyBearer` header, and the `asc_auth_key`
/// cookie (named, or bare as the Python SDK sends it).
async fn caller(
    state: &AppState,
    tenant: &str,
    headers: &HeaderMap,
    origin: Option<IpAddr>,
) -> Result<(User, Provenance), Error> {
    if let Some((username, password)) = basic_credentials(headers)? {
        let otp = header_text(headers, "x-tessera-otp").map(Secret::new);
        return state.auth.sign_in(tenant, &username, password, otp.as_ref(), origin).await;
    }
    if let Some(v) = header_text(headers, "authorization") {
        return user_of_token(state, tenant, v, origin).await;
    }
    if let Some(v) = header_text(headers, "apikeybearer") {
        return user_of_token(state, tenant, v, origin).await;
    }
    if let Some(v) = cookie_value(headers, "asc_auth_key", true) {
        return user_of_token(state, tenant, v, origin).await;
    }
    Err(Error::invalid_token("not authenticated"))
}

async fn token_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    headers: HeaderMap,
) -> Response {
    let (user, provenance) = match caller(&state, &tenant, &headers, origin).await {
        Ok(u) => u,
        Err(e) => return failure(e),
    };
    let root = state.auth.settings().public_url.trim_end_matches('/').to_owned();
    // DocSpace's `tenant_url` is the portal's root URL: here, the tenant's issuer.
    let issuer = match state.auth.tenant(&tenant) {
        Ok(ts) => ts.issuer.clone(),
        Err(e) => return failure(e),
    };
    let flag = |b: bool| if b { "true" } else { "false" };
    let mut extra = Map::new();
    extra.insert("user_id".into(), user.username.as_str().into());
    extra.insert("user_name".into(), user.username.as_str().into());
    extra.insert("user_email".into(), user.profile.email.clone().unwrap_or_else(|| user.username.to_string()).into());
    extra.insert("tenant_id".into(), tenant.clone().into());
    extra.insert("tenant_url".into(), issuer.clone().into());
    extra.insert("is_admin".into(), flag(user.is_admin()).into());
    extra.insert("is_guest".into(), "false".into());
    extra.insert("is_public".into(), "false".into());
    let session = Session { audience: Some(AUDIENCE.to_owned()), ttl: Some(TOKEN_TTL), scope: None, extra, provenance };
    match state.auth.issue_session(&user, session) {
        Ok(t) => {
            crate::metrics_layer::tokens_issued("docspace").increment(1);
            let answer = StringWrapper {
                response: t.access_token,
                count: 1,
                links: [Link { href: format!("{root}{PATH}"), action: "GET" }],
                status: 0,
                status_code: 200,
            };
            json_reply(StatusCode::OK, answer)
        }
        Err(e) => failure(e),
    }
}
