//! The one error taxonomy: every front maps these kinds to its own wire format.

use std::fmt;

/// What went wrong, independent of any wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedTokenType,
    InvalidScope,
    InvalidTarget,
    /// The authorization endpoint does not do this `response_type` (RFC 6749 section 4.1.2.1).
    UnsupportedResponseType,
    /// OpenID Connect `prompt=none`: the person would have to sign in, or to consent.
    LoginRequired,
    ConsentRequired,
    /// A bearer token presented to an API is missing, malformed, expired or revoked (RFC 6750).
    InvalidToken,
    AccessDenied,
    AuthorizationPending,
    SlowDown,
    ExpiredToken,
    MfaRequired,
    RateLimited,
    /// The store (or another dependency) cannot answer now; retry later.
    Unavailable,
    NotFound,
    Conflict,
    Forbidden,
    Internal,
}

impl ErrorKind {
    /// The RFC 6749 / RFC 8628 style code for this kind.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::InvalidClient => "invalid_client",
            ErrorKind::InvalidGrant => "invalid_grant",
            ErrorKind::UnauthorizedClient => "unauthorized_client",
            ErrorKind::UnsupportedGrantType => "unsupported_grant_type",
            ErrorKind::UnsupportedTokenType => "unsupported_token_type",
            ErrorKind::InvalidScope => "invalid_scope",
            ErrorKind::InvalidTarget => "invalid_target",
            ErrorKind::UnsupportedResponseType => "unsupported_response_type",
            ErrorKind::LoginRequired => "login_required",
            ErrorKind::ConsentRequired => "consent_required",
            ErrorKind::InvalidToken => "invalid_token",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::AuthorizationPending => "authorization_pending",
            ErrorKind::SlowDown => "slow_down",
            ErrorKind::ExpiredToken => "expired_token",
            ErrorKind::MfaRequired => "mfa_required",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Internal => "server_error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error with a description that is safe to show to the caller (never a secret,
/// never an internal detail such as SQL text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {description}")]
pub struct Error {
    pub kind: ErrorKind,
    pub description: String,
    /// For `rate_limited` and `unavailable`: when to try again, in seconds.
    pub retry_after: Option<i64>,
    /// For `invalid_request`: the input field at fault, where the operation knows it (an
    /// admin API reports it as a field-level detail).
    pub field: Option<&'static str>,
}

macro_rules! ctor {
    ($($name:ident => $kind:ident),* $(,)?) => {
        $(pub fn $name(description: impl Into<String>) -> Self {
            Error { kind: ErrorKind::$kind, description: description.into(), retry_after: None, field: None }
        })*
    };
}

impl Error {
    pub fn new(kind: ErrorKind, description: impl Into<String>) -> Self {
        Error { kind, description: description.into(), retry_after: None, field: None }
    }

    /// `rate_limited`, retry after `secs`.
    pub fn rate_limited(secs: i64) -> Self {
        Error {
            kind: ErrorKind::RateLimited,
            description: format!("too many failed attempts; try again in {secs} s"),
            retry_after: Some(secs.max(1)),
            field: None,
        }
    }

    /// The same error, blamed on input field `field`.
    pub fn at(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
    ctor! {
        invalid_request => InvalidRequest,
        invalid_client => InvalidClient,
        invalid_grant => InvalidGrant,
        unauthorized_client => UnauthorizedClient,
        unsupported_grant_type => UnsupportedGrantType,
        invalid_scope => InvalidScope,
        invalid_token => InvalidToken,
        access_denied => AccessDenied,
        unavailable => Unavailable,
        not_found => NotFound,
        conflict => Conflict,
        forbidden => Forbidden,
        internal => Internal,
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
