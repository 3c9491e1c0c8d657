//! `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke`.

use super::OAuthError;
use crate::AppState;
use crate::extract::{Origin, TenantName, basic_credentials, parse_form};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use tessera_core::Error;
use tessera_core::grant::{ClientAuth, Grant, TokenRequest};
use tessera_core::secret::Secret;

/// Client authentication from the Authorization header or the body; using both is an error
/// (RFC 6749 section 2.3: one method per request).
pub(super) fn client_auth(headers: &HeaderMap, form: &mut HashMap<String, String>) -> Result<ClientAuth, Error> {
    let basic = basic_credentials(headers)?;
    let post_secret = form.remove("client_secret");
    let post_id = form.remove("client_id");
    match (basic, post_secret, post_id) {
        (Some(_), Some(_), _) => Err(Error::invalid_request("use one client authentication method, not two")),
        (Some((id, secret)), None, body_id) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(Error::invalid_request("client_id in the body differs from the authenticated client"));
            }
            Ok(ClientAuth::Basic { client_id: id, secret })
        }
        (None, Some(secret), Some(id)) => Ok(ClientAuth::Post { client_id: id, secret: Secret::new(secret) }),
        (None, Some(_), None) => Err(Error::invalid_request("client_secret given without client_id")),
        (None, None, Some(id)) => Ok(ClientAuth::None { client_id: id }),
        (None, None, None) => Ok(ClientAuth::Absent),
    }
}

pub(super) fn required(form: &mut HashMap<String, String>, name: &str) -> Result<String, Error> {
    form.remove(name).ok_or_else(|| Error::invalid_request(format!("missing parameter `{name}`")))
}

pub(super) fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub async fn token_post(
    State(state): State<AppState>,
    TenantName(tenant): TenantName,
    Origin(origin): Origin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let mut form = parse_form(&headers, &body)?;
    let auth = client_auth(&headers, &mut form)?;
    let grant_type = required(&mut form, "grant_type")?;
    let grant = match grant_type.as_str() {
        "client_credentials" => Grant::ClientCredentials,
        "password" => Grant::Password {
            username: required(&mut form, "username")?,
            password: Secret::new(required(&mut form, "password")?),
            otp: form.remove("otp").map(Secret::new),
        },
        "refresh_token" => Grant::RefreshToken { refresh_token: Secret::new(required(&mut form, "refresh_token")?) },
        "urn:ietf:params:oauth:grant-type:device_code" => {
            Grant::DeviceCode { device_code: Secret::new(required(&mut form, "device_code")?) }
        }
        "urn:ietf:params:oauth:grant-type:token-exchange" => Grant::TokenExchange {
            subject_token: Secret::new(required(&mut form, "subject_token")?),
            subject_token_type: required(&mut form, "subject_token_type")?,
            requested_token_type: form.remove("requested_token_type"),
        },
        other => {
            return Err(Error::new(
                tessera_core::ErrorKind::UnsupportedGrantType,
                format!("grant type `{other}` is not supported"),
            )
            .into());
        }
    };
    let mut req = TokenRequest::new(grant);
    req.origin = origin;
    req.scope = form.remove("scope");
    req.resource = form.remove("resource").or_else(|| form.remove("audience"));
    let issued = state.auth.token(&tenant, &auth, req).await?;
    metrics::counter!("tessera_tokens_issued_total", "grant" => grant_label(&grant_type)).increment(1);
    let body = TokenBody {
        access_token: &issued.access_token,
        token_type: "Bearer",
        expires_in: issued.expires_in,
        refresh_token: issued.refresh_token.as_ref().map(|r| r.expose()),
        scope: issued.scope.as_deref(),
        issued_token_type: issued.issued_token_type,
    };
    Ok(no_store(json_response(&body)))
}

/// RFC 6749 section 5.1, serialised straight from borrowed fields (the hot path).
#[derive(serde::Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

fn json_response<T: serde::Serialize>(body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], bytes).into_response(),
        Err(_) => OAuthError(Error::internal("response encoding")).into_response(),
    }
}

fn grant_label(g: &str) -> &'static str {
    match g {
        "client_credentials" => "client_credentials",
        "password" => "password",
        "refresh_token" => "refresh_token",
        "urn:ietf:params:oauth:grant-type:device_code" => "device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange" => "token_exchange",
        _ => "other",
    }
}

pub async fn introspect_post(
    State(state): State<AppState>,
    TenantName(tenant): TenantName,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let mut form = parse_form(&headers, &body)?;
    let auth = client_auth(&headers, &mut form)?;
    let token = required(&mut form, "token")?;
    let hint = form.remove("token_type_hint");
    let body = match state.auth.introspect(&tenant, &auth, &token, hint.as_deref()).await? {
        Some(map) => Value::Object(map),
        None => json!({ "active": false }),
    };
    Ok(no_store(axum::Json(body).into_response()))
}

pub async fn revoke_post(
    State(state): State<AppState>,
    TenantName(tenant): TenantName,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let mut form = parse_form(&headers, &body)?;
    let auth = client_auth(&headers, &mut form)?;
    let token = required(&mut form, "token")?;
    let hint = form.remove("token_type_hint");
    state.auth.revoke(&tenant, &auth, &token, hint.as_deref()).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}
