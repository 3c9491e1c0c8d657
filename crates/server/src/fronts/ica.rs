//! Illumina ICA (`/ica/rest`): JWTs for an API key (`X-API-Key`) or HTTP Basic, with an
//! optional `tenant` parameter, and refresh of a still-valid JWT (CONTRACTS.md section 2).
//! Errors are RFC 7807 `application/problem+json`.

use crate::AppState;
use crate::extract::{Origin, basic_credentials, bearer_token, header_text};
use crate::openapi::{Api, Field, Front, doc, object};
use crate::time::rfc3339_z;
use axum::extract::rejection::QueryRejection;
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Map;
use std::net::IpAddr;
use tessera_core::Error;
use tessera_core::authority::{Audience, Session};
use tessera_core::principal::User;
use tessera_core::secret::Secret;
use tessera_core::token::Provenance;

const CONTENT_TYPE: &str = "application/vnd.illumina.v3+json";
const AUDIENCE: &str = "ica";

/// ICA's token API, at `/ica/rest` (the refresh path has a literal colon in its last segment).
pub fn front() -> Front {
    use Field::{Int, Obj, Str};
    let token = || object(&[("token", Str)]);
    let api = Api::default()
        .post(
            "/api/tokens",
            tokens_post,
            doc("A token for an API key (X-API-Key) or a user (Basic)").query(&["tenant"]).also(
                200,
                "the token",
                CONTENT_TYPE,
                token(),
            ),
        )
        .post(
            "/api/tokens:refresh",
            refresh_post,
            doc("A fresh token for a token (Bearer)").query(&["tenant"]).also(200, "the token", CONTENT_TYPE, token()),
        );
    let problem = object(&[
        ("id", Str),
        ("type", Str),
        ("title", Str),
        ("status", Int),
        ("detail", Str),
        ("instance", Str),
        ("parameters", Obj),
        ("timestamp", Str),
    ]);
    let errors = ("application/problem+json", problem);
    Front {
        tag: "ica",
        prefixes: &["/ica/rest"],
        api,
        security: &["apiKey", "basic", "bearer"],
        errors,
        error_schemas: vec![],
    }
}

/// ICA's `Token`.
#[derive(Debug, Serialize)]
pub struct TokenAnswer<'a> {
    pub token: &'a str,
}

/// ICA's `Problem`: RFC 7807 plus ICA's members (`parameters` is a string map, empty here).
#[derive(Debug, Serialize)]
pub struct Problem<'a> {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub instance: &'a str,
    pub parameters: std::collections::BTreeMap<String, String>,
    pub timestamp: String,
}

#[derive(Deserialize, Default)]
pub struct TenantParam {
    tenant: Option<String>,
}

pub(crate) fn problem(e: &Error, instance: &str, now: i64) -> Response {
    let status = crate::status::sign_in_status(e.kind, true);
    let title = status.canonical_reason().unwrap_or("Error");
    let body = Problem {
        id: tessera_core::secret::random_b64(&tessera_core::clock::SystemRng, 16),
        kind: "about:blank",
        title,
        status: status.as_u16(),
        detail: format!("{}: {}", e.kind.code(), e.description),
        instance,
        parameters: Default::default(),
        timestamp: rfc3339_z(now),
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    if let Some(v) = crate::extract::retry_after(e) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

fn token_reply(token: &str) -> Response {
    let mut res = (StatusCode::OK, axum::Json(TokenAnswer { token })).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    res
}

fn session(provenance: Provenance) -> Session {
    Session { audience: Some(AUDIENCE.to_owned()), ttl: None, scope: None, extra: Map::new(), provenance }
}

/// The tenant named explicitly (`?tenant=`), else by Host, else none.
fn named_tenant(state: &AppState, q: &TenantParam, headers: &HeaderMap) -> Option<String> {
    q.tenant
        .clone()
        .filter(|t| !t.is_empty())
        .or_else(|| header_text(headers, "host").and_then(|h| state.auth.tenant_for_host(h)))
}

/// Who is asking, and how they authenticated: an API key (whose tenant is its own), a
/// password in the named tenant (else the default one: a username is never looked up in
/// other tenants, so that no answer tells whether an account exists), or a user's access
/// token of the tenant's default audience standing for the IdP token (PsTokenAuth), from
/// which the new token inherits its authentication facts, session and expiry.
async fn sign_in(
    state: &AppState,
    q: &TenantParam,
    headers: &HeaderMap,
    origin: Option<IpAddr>,
) -> Result<(User, Provenance), Error> {
    let named = named_tenant(state, q, headers);
    if let Some(key) = header_text(headers, "x-api-key") {
        if let Some(t) = &named {
            state.auth.tenant(t).map_err(|_| Error::invalid_token("unknown tenant"))?;
        }
        return state.auth.api_key_sign_in(named.as_deref(), key, origin).await;
    }
    if let Some((username, password)) = basic_credentials(headers)? {
        let tenant = named.unwrap_or_else(|| tessera_core::DEFAULT_TENANT.to_owned());
        let otp = header_text(headers, "x-tessera-otp").map(Secret::new);
        return state.auth.sign_in(&tenant, &username, password, otp.as_ref(), origin).await;
    }
    if let Some(raw) = bearer_token(headers) {
        let tenant = bearer_tenant(state, q, headers, raw)?;
        return state.auth.bearer_sign_in(&tenant, raw, &[Audience::Issuer]).await;
    }
    Err(Error::invalid_token("authenticate with X-API-Key, HTTP Basic or a Bearer token"))
}

/// The tenant to verify a bearer token at: the one the request names, else the one the token
/// says it belongs to. The core verifies it with that tenant's keys only, so a token of
/// another tenant than the one named is refused there.
fn bearer_tenant(state: &AppState, q: &TenantParam, headers: &HeaderMap, raw: &str) -> Result<String, Error> {
    if let Some(t) = named_tenant(state, q, headers) {
        return Ok(t);
    }
    tessera_core::token::parse(raw)
        .ok()
        .and_then(|p| p.claims.get("tenant").and_then(|t| t.as_str()).map(str::to_owned))
        .ok_or_else(|| Error::invalid_token("not a token of this server"))
}

async fn tokens_post(
    State(state): State<AppState>,
    q: Result<Query<TenantParam>, QueryRejection>,
    OriginalUri(uri): OriginalUri,
    Origin(origin): Origin,
    headers: HeaderMap,
) -> Response {
    let q = match crate::extract::query(q) {
        Ok(q) => q,
        Err(e) => return problem(&e, uri.path(), state.auth.now()),
    };
    let issued = match sign_in(&state, &q, &headers, origin).await {
        Ok((user, provenance)) => state.auth.issue_session(&user, session(provenance)),
        Err(e) => Err(e),
    };
    match issued {
        Ok(t) => {
            crate::metrics_layer::tokens_issued("ica").increment(1);
            token_reply(&t.access_token)
        }
        Err(e) => problem(&e, uri.path(), state.auth.now()),
    }
}

async fn refresh_post(
    State(state): State<AppState>,
    q: Result<Query<TenantParam>, QueryRejection>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let refreshed = match crate::extract::query(q) {
        Ok(q) => refresh(&state, &q, &headers).await,
        Err(e) => Err(e),
    };
    match refreshed {
        Ok(token) => token_reply(&token),
        Err(e) => problem(&e, uri.path(), state.auth.now()),
    }
}

async fn refresh(state: &AppState, q: &TenantParam, headers: &HeaderMap) -> Result<String, Error> {
    let raw = bearer_token(headers).ok_or_else(|| Error::invalid_token("a Bearer JWT is required"))?;
    let tenant = bearer_tenant(state, q, headers, raw)?;
    Ok(state.auth.renew_session(&tenant, raw, AUDIENCE, session(Provenance::default())).await?.access_token)
}
