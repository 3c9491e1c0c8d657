//! Discovery (RFC 8414, OpenID Connect Discovery) and the JWK Set.

use super::OAuthError;
use crate::AppState;
use crate::extract::Tenant;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Authorization server metadata (RFC 8414 section 2; OpenID Connect Discovery 1.0 section 3).
#[derive(Debug, Serialize)]
pub struct Discovery<'a> {
    pub issuer: &'a str,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub jwks_uri: String,
    pub device_authorization_endpoint: String,
    pub grant_types_supported: &'static [&'static str],
    pub response_types_supported: &'static [&'static str],
    pub token_endpoint_auth_methods_supported: &'static [&'static str],
    pub introspection_endpoint_auth_methods_supported: &'static [&'static str],
    pub revocation_endpoint_auth_methods_supported: &'static [&'static str],
    pub subject_types_supported: &'static [&'static str],
    pub id_token_signing_alg_values_supported: [&'static str; 1],
    pub access_token_signing_alg_values_supported: [&'static str; 1],
}

/// The URL prefix under which a tenant's endpoints are served.
pub fn endpoint_base(public_url: &str, tenant: &str) -> String {
    let base = public_url.trim_end_matches('/');
    if tenant == tessera_core::DEFAULT_TENANT { base.to_owned() } else { format!("{base}/t/{tenant}") }
}

pub async fn discovery_get(State(state): State<AppState>, Tenant(tenant): Tenant) -> Result<Response, OAuthError> {
    let ts = state.auth.tenant(&tenant)?;
    let base = endpoint_base(&state.auth.settings().public_url, &tenant);
    const CONFIDENTIAL: &[&str] = &["client_secret_basic", "client_secret_post"];
    let doc = Discovery {
        issuer: &ts.issuer,
        token_endpoint: format!("{base}/oauth2/token"),
        introspection_endpoint: format!("{base}/oauth2/introspect"),
        revocation_endpoint: format!("{base}/oauth2/revoke"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        device_authorization_endpoint: format!("{base}/oauth2/device_authorization"),
        grant_types_supported: &[
            "client_credentials",
            "password",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        response_types_supported: &[],
        token_endpoint_auth_methods_supported: &["client_secret_basic", "client_secret_post", "none"],
        introspection_endpoint_auth_methods_supported: CONFIDENTIAL,
        revocation_endpoint_auth_methods_supported: CONFIDENTIAL,
        subject_types_supported: &["public"],
        id_token_signing_alg_values_supported: [ts.tenant.alg.as_str()],
        access_token_signing_alg_values_supported: [ts.tenant.alg.as_str()],
    };
    Ok(Json(doc).into_response())
}

pub async fn jwks_get(State(state): State<AppState>, Tenant(tenant): Tenant) -> Result<Response, OAuthError> {
    let doc = state.auth.jwks_json(&tenant)?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
            // Short, so that a rotated-in key reaches verifiers quickly.
            (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60")),
        ],
        axum::body::Bytes::copy_from_slice(&doc),
    )
        .into_response())
}
