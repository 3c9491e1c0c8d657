//! `POST /oauth2/device_authorization` (RFC 8628 section 3.1).

use super::OAuthError;
use super::token::{client_auth, no_store};
use crate::AppState;
use crate::extract::{Origin, Posted, Tenant, parse_form};
use crate::urls::verification_uri;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::token::ClaimSet;

/// RFC 8628 section 3.2.
#[derive(Debug, Serialize)]
pub struct DeviceAuthorizationAnswer<'a> {
    pub device_code: &'a str,
    pub user_code: &'a str,
    pub verification_uri: &'a str,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

pub async fn device_authorization_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    Posted { headers, body }: Posted,
) -> Result<Response, OAuthError> {
    let mut form = parse_form(&headers, &body)?;
    let auth = client_auth(&headers, &mut form)?;
    let scope = form.remove("scope");
    let d = state.auth.device_authorize(&tenant, &auth, scope.as_deref(), ClaimSet::Standard, origin).await?;
    let uri = verification_uri(&state, &tenant);
    let answer = DeviceAuthorizationAnswer {
        device_code: d.device_code.expose(),
        user_code: &d.user_code,
        verification_uri: &uri,
        verification_uri_complete: format!("{uri}?user_code={}", d.user_code),
        expires_in: d.expires_in,
        interval: d.interval,
    };
    Ok(no_store(axum::Json(answer).into_response()))
}
