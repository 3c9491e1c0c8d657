//! Discovery (RFC 8414, OpenID Connect Discovery) and the JWK Set.

use super::OAuthError;
use crate::AppState;
use crate::extract::Tenant;
use crate::urls::endpoint_base;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::authority::browser::{ACR_MFA, ACR_PASSWORD, OIDC_SCOPES};

/// Authorization server metadata (RFC 8414 section 2; OpenID Connect Discovery 1.0 section 3).
#[derive(Debug, Serialize)]
pub struct Discovery<'a> {
    pub issuer: &'a str,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub revocation_endpoint: String,
    pub jwks_uri: String,
    pub device_authorization_endpoint: String,
    pub authorization_endpoint: String,
    pub userinfo_endpoint: String,
    pub end_session_endpoint: String,
    pub grant_types_supported: &'static [&'static str],
    pub response_types_supported: &'static [&'static str],
    pub response_modes_supported: &'static [&'static str],
    pub code_challenge_methods_supported: &'static [&'static str],
    pub scopes_supported: &'static [&'static str],
    pub claims_supported: &'static [&'static str],
    pub prompt_values_supported: &'static [&'static str],
    pub acr_values_supported: &'static [&'static str],
    /// RFC 9207: the authorization response carries `iss`.
    pub authorization_response_iss_parameter_supported: bool,
    pub token_endpoint_auth_methods_supported: &'static [&'static str],
    pub introspection_endpoint_auth_methods_supported: &'static [&'static str],
    pub revocation_endpoint_auth_methods_supported: &'static [&'static str],
    pub subject_types_supported: &'static [&'static str],
    pub id_token_signing_alg_values_supported: [&'static str; 1],
    pub access_token_signing_alg_values_supported: [&'static str; 1],
}

/// [`Discovery`] in the OpenAPI document.
pub fn discovery_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    use crate::openapi::Field::{Bool, Str, Strs};
    crate::openapi::object(&[
        ("issuer", Str),
        ("token_endpoint", Str),
        ("introspection_endpoint", Str),
        ("revocation_endpoint", Str),
        ("jwks_uri", Str),
        ("device_authorization_endpoint", Str),
        ("authorization_endpoint", Str),
        ("userinfo_endpoint", Str),
        ("end_session_endpoint", Str),
        ("grant_types_supported", Strs),
        ("response_types_supported", Strs),
        ("response_modes_supported", Strs),
        ("code_challenge_methods_supported", Strs),
        ("scopes_supported", Strs),
        ("claims_supported", Strs),
        ("prompt_values_supported", Strs),
        ("acr_values_supported", Strs),
        ("authorization_response_iss_parameter_supported", Bool),
        ("token_endpoint_auth_methods_supported", Strs),
        ("introspection_endpoint_auth_methods_supported", Strs),
        ("revocation_endpoint_auth_methods_supported", Strs),
        ("subject_types_supported", Strs),
        ("id_token_signing_alg_values_supported", Strs),
        ("access_token_signing_alg_values_supported", Strs),
    ])
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
        authorization_endpoint: format!("{base}/oauth2/authorize"),
        userinfo_endpoint: format!("{base}/oauth2/userinfo"),
        end_session_endpoint: format!("{base}/oauth2/logout"),
        grant_types_supported: &[
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ],
        response_types_supported: &["code"],
        response_modes_supported: &["query"],
        code_challenge_methods_supported: &["S256"],
        scopes_supported: &OIDC_SCOPES,
        claims_supported: &[
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "acr",
            "amr",
            "at_hash",
            "sid",
            "azp",
            "preferred_username",
            "name",
            "given_name",
            "family_name",
            "email",
        ],
        prompt_values_supported: &["none", "login", "consent"],
        acr_values_supported: &[ACR_PASSWORD, ACR_MFA],
        authorization_response_iss_parameter_supported: true,
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
