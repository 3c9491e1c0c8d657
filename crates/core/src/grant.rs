//! What a caller presents: client credentials and a grant.

use crate::secret::Secret;
use crate::token::ClaimSet;

/// RFC 8693 token type identifiers.
pub mod token_type {
    pub const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
    pub const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
    /// Tessera's opaque bearer token for legacy (Tapis v2) clients.
    pub const LEGACY: &str = "urn:tessera:params:oauth:token-type:legacy";
}

/// How the client authenticated at the endpoint (the front extracts this from the wire).
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic { client_id: String, secret: Secret },
    /// In the request body (`client_secret_post`).
    Post { client_id: String, secret: Secret },
    /// A client naming itself without a secret (`none`): accepted for public clients only,
    /// whatever the grant (a confidential client always authenticates, device flow included).
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
}

/// The grant being exercised at the token endpoint.
#[derive(Debug, Clone)]
pub enum Grant {
    ClientCredentials,
    /// `otp`: a TOTP or recovery code, required when the user has two-factor authentication.
    Password {
        username: String,
        password: Secret,
        otp: Option<Secret>,
    },
    RefreshToken {
        refresh_token: Secret,
    },
    /// RFC 6749 section 4.1.3, with the RFC 7636 verifier.
    AuthorizationCode {
        code: Secret,
        redirect_uri: Option<String>,
        code_verifier: Option<Secret>,
    },
    /// RFC 8628 polling.
    DeviceCode {
        device_code: Secret,
    },
    /// RFC 8693.
    TokenExchange {
        subject_token: Secret,
        subject_token_type: String,
        requested_token_type: Option<String>,
    },
}

/// A token request in core terms.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub grant: Grant,
    /// Requested scope (space-delimited); `None` means the default.
    pub scope: Option<String>,
    /// RFC 8707 resource indicator: becomes the audience.
    pub resource: Option<String>,
    /// The claims the new tokens carry (refresh and device grants keep their own).
    pub claim_set: ClaimSet,
    /// The caller's address, for brute-force limits.
    pub origin: Option<std::net::IpAddr>,
}

impl TokenRequest {
    pub fn new(grant: Grant) -> Self {
        TokenRequest { grant, scope: None, resource: None, claim_set: ClaimSet::Standard, origin: None }
    }
}

/// A successful token response in core terms (the front renders it).
#[derive(Clone)]
pub struct IssuedTokens {
    pub access_token: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub issued_at: i64,
    pub jti: String,
    pub scope: Option<String>,
    pub refresh_token: Option<Secret>,
    pub refresh_expires_in: Option<i64>,
    /// RFC 8693 `issued_token_type`, for token exchange.
    pub issued_token_type: Option<&'static str>,
    /// OpenID Connect ID token, for the authorization code grant with `openid` in scope.
    pub id_token: Option<String>,
}

/// The tokens themselves are left out: a bearer token in a log is a credential.
impl std::fmt::Debug for IssuedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedTokens")
            .field("access_token", &"***")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("refresh_token", &self.refresh_token)
            .finish_non_exhaustive()
    }
}

impl IssuedTokens {
    /// An access token alone (no refresh token).
    pub fn access(token: String, jti: String, scope: Option<String>, exp: i64, now: i64) -> Self {
        IssuedTokens {
            access_token: token,
            expires_in: exp - now,
            expires_at: exp,
            issued_at: now,
            jti,
            scope,
            refresh_token: None,
            refresh_expires_in: None,
            issued_token_type: None,
            id_token: None,
        }
    }

    /// With a refresh token of lifetime `ttl`, if any.
    pub fn with_refresh(mut self, refresh: Option<Secret>, ttl: i64) -> Self {
        self.refresh_expires_in = refresh.as_ref().map(|_| ttl);
        self.refresh_token = refresh;
        self
    }

    /// RFC 8693 `issued_token_type`.
    pub fn of_type(mut self, t: &'static str) -> Self {
        self.issued_token_type = Some(t);
        self
    }
}

/// RFC 8628 device authorization response, in core terms.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub device_code: Secret,
    /// As shown to people: `XXXX-XXXX`.
    pub user_code: String,
    pub client_id: String,
    pub expires_in: i64,
    pub expires_at: i64,
    pub interval: i64,
}
