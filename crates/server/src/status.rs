//! One table from the core's error kinds to HTTP statuses, shared by every front. Each front
//! keeps its own body format, and the one rule where its API differs.

use axum::http::StatusCode;
use tessera_core::ErrorKind;

/// The standard table (RFC 6749 section 5.2 for the OAuth kinds).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidClient | ErrorKind::InvalidToken => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// For the sign-in APIs (SFTPGo, ICA, DocSpace): every client error is `401` but `403` and
/// `429` (a malformed request stays `400` where `bad_request` says the API has one); server
/// errors as in [`status_of`].
pub fn sign_in_status(kind: ErrorKind, bad_request: bool) -> StatusCode {
    match status_of(kind) {
        s if s.is_server_error() || s == StatusCode::FORBIDDEN || s == StatusCode::TOO_MANY_REQUESTS => s,
        _ if bad_request && kind == ErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNAUTHORIZED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_apis_answer_401_for_client_errors() {
        assert_eq!(sign_in_status(ErrorKind::InvalidGrant, true), StatusCode::UNAUTHORIZED);
        assert_eq!(sign_in_status(ErrorKind::NotFound, true), StatusCode::UNAUTHORIZED);
        assert_eq!(sign_in_status(ErrorKind::InvalidRequest, true), StatusCode::BAD_REQUEST);
        assert_eq!(sign_in_status(ErrorKind::InvalidRequest, false), StatusCode::UNAUTHORIZED);
        assert_eq!(sign_in_status(ErrorKind::MfaRequired, true), StatusCode::UNAUTHORIZED);
        for k in [ErrorKind::Forbidden, ErrorKind::RateLimited, ErrorKind::Unavailable, ErrorKind::Internal] {
            assert_eq!(sign_in_status(k, true), status_of(k));
        }
    }
}
