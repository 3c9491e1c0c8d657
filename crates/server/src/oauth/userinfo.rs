//! `GET/POST /oauth2/userinfo` (OpenID Connect Core section 5.3), with the access token as a
//! bearer token (RFC 6750 section 2.1).

use super::OAuthError;
use crate::AppState;
use crate::extract::{Tenant, bearer_token};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use tessera_core::{Error, ErrorKind};

pub async fn userinfo(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> Response {
    let answer = match bearer_token(&headers) {
        Some(token) => state.auth.userinfo(&tenant, token).await,
        None => Err(Error::invalid_token("a bearer access token is required")),
    };
    match answer {
        Ok(info) => super::token::no_store(axum::Json(info).into_response()),
        Err(e) => {
            // RFC 6750 section 3: the challenge names the error.
            let challenge = match e.kind {
                ErrorKind::InvalidToken => Some("Bearer error=\"invalid_token\""),
                ErrorKind::Forbidden => Some("Bearer error=\"insufficient_scope\", scope=\"openid\""),
                _ => None,
            };
            let mut res = OAuthError(e).into_response();
            if let Some(c) = challenge {
                res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
            }
            res
        }
    }
}
