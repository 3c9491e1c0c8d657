//! RFC 9457 problem details: one stable `type` URI per core error kind, field-level details
//! for validation errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::{Error, ErrorKind};

/// The `type` of a problem of `kind`: a URN, stable across deployments and versions.
pub fn problem_type(kind: ErrorKind) -> String {
    format!("urn:tessera:problem:{}", kind.code())
}

/// One input field at fault.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

/// An `application/problem+json` body (RFC 9457 section 3), with the core's error code and,
/// for validation errors, the fields at fault.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    /// The core error code (`invalid_request`, `forbidden`, ...).
    pub code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// A core error as the admin and self-service APIs answer it, with the input field at fault
/// where the body parser named one (the core names its own in [`Error::field`]).
#[derive(Debug)]
pub struct ApiError {
    pub error: Error,
    pub field: Option<String>,
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError { error, field: None }
    }
}

impl ApiError {
    /// A malformed request body, blamed on `field` where the parser named one.
    pub fn body(detail: String, field: Option<String>) -> Self {
        ApiError { error: Error::invalid_request(detail), field }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.error;
        let status = crate::status::status_of(e.kind);
        if e.kind == ErrorKind::Internal {
            tracing::error!(error = %e.description, "admin API internal error");
        }
        let field = e.field.map(str::to_owned).or(self.field);
        let errors = match field {
            Some(field) if status == StatusCode::BAD_REQUEST => {
                vec![FieldError { field, detail: e.description.clone() }]
            }
            _ => vec![],
        };
        let body = Problem {
            kind: problem_type(e.kind),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: if e.kind == ErrorKind::Internal { "internal error".to_owned() } else { e.description.clone() },
            code: e.kind.code(),
            errors,
        };
        let mut res = (status, axum::Json(body)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
        }
        if let Some(v) = crate::extract::retry_after(&e) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}
