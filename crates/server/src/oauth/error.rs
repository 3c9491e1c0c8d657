//! RFC 6749 section 5.2 error bodies: the only error renderer of the standard front.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::{Error, ErrorKind};

/// RFC 6749 section 5.2.
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: &'static str,
    pub error_description: &'a str,
}

#[derive(Debug)]
pub struct OAuthError(pub Error);

impl From<Error> for OAuthError {
    fn from(e: Error) -> Self {
        OAuthError(e)
    }
}

pub use crate::status::status_of;

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let retry = crate::extract::retry_after(&self.0);
        let Error { kind, description, .. } = self.0;
        let status = status_of(kind);
        if kind == ErrorKind::Internal {
            tracing::error!(%description, "internal error");
        }
        let body = ErrorBody { error: kind.code(), error_description: &description };
        let mut res = (status, axum::Json(body)).into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if kind == ErrorKind::InvalidClient {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"tessera\""));
        }
        if let Some(v) = retry {
            h.insert(header::RETRY_AFTER, v);
        }
        res
    }
}
