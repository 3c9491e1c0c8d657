//! Illumina ICA (`/ica/rest`): JWTs for an API key (`X-API-Key`) or HTTP Basic, with an
//! optional `tenant` parameter, and refresh of a still-valid JWT (CONTRACTS.md section 2).
//! Errors are RFC 7807 `application/problem+json`.

use crate::AppState;
use crate::extract::{Origin, basic_credentials, bearer_token, header_text};
use crate::time::rfc3339_z;
use axum::Router;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Map, json};
use std::net::IpAddr;
use tessera_core::authority::Session;
use tessera_core::principal::User;
use tessera_core::secret::Secret;
use tessera_core::{Error, ErrorKind};

const CONTENT_TYPE: &str = "application/vnd.illumina.v3+json";
const AUDIENCE: &str = "ica";
/// How the token's holder signed in: refreshing is for password sign-ins only.
const AMR_API_KEY: &str = "apikey";
const AMR_PASSWORD: &str = "pwd";

pub fn routes() -> Router<AppState> {
    // The refresh path has a literal colon in its last segment.
    Router::new().route("/api/tokens", post(tokens_post)).route("/api/tokens:refresh", post(refresh_post))
}

#[derive(Deserialize, Default)]
pub struct TenantParam {
    tenant: Option<String>,
}

fn problem(e: &Error, instance: &str, state: &AppState) -> Response {
    let (status, title) = match e.kind {
        ErrorKind::InvalidRequest | ErrorKind::MfaRequired => (StatusCode::BAD_REQUEST, "Bad Request"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "Forbidden"),
        ErrorKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        _ => (StatusCode::UNAUTHORIZED, "Unauthorized"),
    };
    let status = if e.kind == ErrorKind::MfaRequired { StatusCode::UNAUTHORIZED } else { status };
    let body = json!({
        "id": tessera_core::secret::random_b64(&tessera_core::clock::SystemRng, 16),
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": format!("{}: {}", e.kind.code(), e.description),
        "instance": instance,
        "parameters": {},
        "timestamp": rfc3339_z(state.auth.now()),
    });
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if let Some(v) = crate::extract::retry_after(e) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn token_reply(token: &str) -> Response {
    let mut res = (StatusCode::OK, axum::Json(json!({ "token": token }))).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    res
}

fn session(amr: &str) -> Session {
    let mut extra = Map::new();
    extra.insert("amr".into(), json!([amr]));
    Session { audience: Some(AUDIENCE.to_owned()), ttl: None, scope: None, extra }
}

/// The tenant named explicitly, else by Host, else none.
fn named_tenant(state: &AppState, q: &TenantParam, headers: &HeaderMap) -> Option<String> {
    q.tenant
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| header_text(headers, "host").and_then(|h| state.auth.tenant_for_host(h)))
}

/// For Basic sign-in without a tenant: the one tenant that has this user. A user of several
/// tenants must name one.
async fn tenant_of_user(state: &AppState, username: &str) -> Result<String, Error> {
    let mut found = Vec::new();
    for (t, _) in state.auth.list_tenants().await? {
        if state.auth.get_user(&t.name, username).await.is_ok() {
            found.push(t.name);
        }
    }
    match found.len() {
        0 => Ok(tessera_core::DEFAULT_TENANT.to_owned()),
        1 => Ok(found.remove(0)),
        _ => Err(Error::invalid_request("this user belongs to several tenants: name one with ?tenant=")),
    }
}

async fn sign_in(
    state: &AppState,
    q: &TenantParam,
    headers: &HeaderMap,
    origin: Option<IpAddr>,
) -> Result<(User, &'static str), Error> {
    let named = named_tenant(state, q, headers);
    if let Some(key) = header_text(headers, "x-api-key") {
        if let Some(t) = &named {
            state.auth.tenant(t).map_err(|_| Error::invalid_token("unknown tenant"))?;
        }
        let (user, _) = state.auth.authenticate_api_key(named.as_deref(), key).await?;
        return Ok((user, AMR_API_KEY));
    }
    if let Some((username, password)) = basic_credentials(headers)? {
        let tenant = match named {
            Some(t) => t,
            None => tenant_of_user(state, &username).await?,
        };
        let otp = header_text(headers, "x-tessera-otp").map(Secret::new);
        let user = state.auth.check_credentials(&tenant, &username, password, otp.as_ref(), origin).await?;
        return Ok((user, AMR_PASSWORD));
    }
    if let Some(raw) = bearer_token(headers) {
        // PsTokenAuth: a user's access token of this server stands for the IdP token.
        let tenant = match named {
            Some(t) => t,
            None => claimed_tenant(raw)?,
        };
        let claims = state.auth.bearer(&tenant, raw)?;
        let username = claims.user().ok_or_else(|| Error::invalid_token("the token names no user"))?;
        let user = state.auth.get_user(&tenant, username).await.map_err(|_| Error::invalid_token("unknown user"))?;
        if user.disabled {
            return Err(Error::invalid_token("the user is disabled"));
        }
        return Ok((user, AMR_PASSWORD));
    }
    Err(Error::invalid_token("authenticate with X-API-Key, HTTP Basic or a Bearer token"))
}

/// The tenant a token says it belongs to (checked afterwards by verifying it with that
/// tenant's keys only).
fn claimed_tenant(raw: &str) -> Result<String, Error> {
    tessera_core::token::parse(raw)
        .ok()
        .and_then(|p| p.claims.get("tenant").and_then(|t| t.as_str()).map(str::to_owned))
        .ok_or_else(|| Error::invalid_token("not a token of this server"))
}

async fn tokens_post(
    State(state): State<AppState>,
    Query(q): Query<TenantParam>,
    OriginalUri(uri): OriginalUri,
    Origin(origin): Origin,
    headers: HeaderMap,
) -> Response {
    let issued = match sign_in(&state, &q, &headers, origin).await {
        Ok((user, amr)) => state.auth.issue_session(&user, session(amr)),
        Err(e) => Err(e),
    };
    match issued {
        Ok(t) => {
            metrics::counter!("tessera_tokens_issued_total", "grant" => "ica").increment(1);
            token_reply(&t.access_token)
        }
        Err(e) => problem(&e, uri.path(), &state),
    }
}

async fn refresh_post(
    State(state): State<AppState>,
    Query(q): Query<TenantParam>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    match refresh(&state, &q, &headers).await {
        Ok(token) => token_reply(&token),
        Err(e) => problem(&e, uri.path(), &state),
    }
}

async fn refresh(state: &AppState, q: &TenantParam, headers: &HeaderMap) -> Result<String, Error> {
    let raw = bearer_token(headers).ok_or_else(|| Error::invalid_token("a Bearer JWT is required"))?;
    // The token names its tenant; it is then verified with that tenant's keys only, and
    // refused if the request names another tenant.
    let claimed = claimed_tenant(raw)?;
    if named_tenant(state, q, headers).is_some_and(|t| t != claimed) {
        return Err(Error::invalid_token("the token belongs to another tenant"));
    }
    let claims = state.auth.bearer(&claimed, raw)?;
    if claims.aud != AUDIENCE {
        return Err(Error::invalid_token("not an ICA token"));
    }
    if claims.extra.get("amr").and_then(|a| a.get(0)).and_then(|a| a.as_str()) != Some(AMR_PASSWORD) {
        return Err(Error::forbidden("a token made from an API key cannot be refreshed"));
    }
    let username = claims.user().ok_or_else(|| Error::invalid_token("the token names no user"))?;
    let user = state.auth.get_user(&claimed, username).await?;
    if user.disabled {
        return Err(Error::invalid_token("the user is disabled"));
    }
    Ok(state.auth.issue_session(&user, session(AMR_PASSWORD))?.access_token)
}
