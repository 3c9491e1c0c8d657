//! What a caller presents: client credentials and a grant.

use crate::secret::Secret;

/// How the client authenticated at the endpoint (the front extracts this from the wire).
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic { client_id: String, secret: Secret },
    /// In the request body (`client_secret_post`).
    Post { client_id: String, secret: Secret },
    /// A public client naming itself (`none`).
    None { client_id: String },
    /// No client identification at all.
    Absent,
}

impl ClientAuth {
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ClientAuth::Basic { client_id, .. }
            | ClientAuth::Post { client_id, .. }
            | ClientAuth::None { client_id } => Some(client_id),
            ClientAuth::Absent => None,
        }
    }
    pub fn is_basic(&self) -> bool {
        matches!(self, ClientAuth::Basic { .. })
    }
}

/// The grant being exercised at the token endpoint.
#[derive(Debug, Clone)]
pub enum Grant {
    ClientCredentials,
    Password { username: String, password: Secret },
    RefreshToken { refresh_token: Secret },
}

/// A token request in core terms.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant: Grant,
    /// Requested scope (space-delimited); `None` means the default.
    pub scope: Option<String>,
    /// RFC 8707 resource indicator: becomes the audience.
    pub resource: Option<String>,
}

/// A successful token response in core terms (the front renders it).
#[derive(Debug, Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub issued_at: i64,
    pub jti: String,
    pub scope: Option<String>,
    pub refresh_token: Option<Secret>,
    pub refresh_expires_in: Option<i64>,
}
