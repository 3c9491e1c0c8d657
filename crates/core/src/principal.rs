//! Principals: users (people) and clients (applications).

use crate::error::{Error, Result};
use crate::name::{ClientId, RedirectUri, TenantName, Username};
use std::fmt;
use std::str::FromStr;

pub const ROLE_ADMIN: &str = "admin";
/// Held in the default tenant: administers every tenant, and creates and deletes tenants.
pub const ROLE_SUPERADMIN: &str = "superadmin";

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub tenant: TenantName,
    pub username: Username,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub profile: Profile,
    pub totp: TotpState,
}

/// The password hash (which an attacker could attack offline) and the second factor are
/// left out.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("tenant", &self.tenant)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .field("totp_enabled", &self.totp.enabled)
            .finish_non_exhaustive()
    }
}

/// A user's second factor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TotpState {
    /// The TOTP secret sealed with the master key; present from enrolment on.
    pub sealed_secret: Option<Vec<u8>>,
    /// Confirmed with a first code: from then on every password login needs a code.
    pub enabled: bool,
    /// The last time step accepted (replay protection: a step is accepted at most once).
    pub last_step: Option<i64>,
    /// An administrator requires this user to have it (see also [`Tenant::totp_required`]):
    /// a password alone then signs them in only to set it up.
    ///
    /// [`Tenant::totp_required`]: crate::tenant::Tenant::totp_required
    pub required: bool,
}

/// An API key as stored (the key itself only as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public identifier, for listing and revoking.
    pub id: String,
    pub tenant: TenantName,
    pub username: Username,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

/// What a person tells about themselves (all optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub last_name: Option<String>,
}

impl User {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ROLE_ADMIN)
    }

    /// A superadmin of the deployment: the role counts in the default tenant only.
    pub fn is_superadmin(&self) -> bool {
        self.tenant == crate::authority::DEFAULT_TENANT && self.roles.iter().any(|r| r == ROLE_SUPERADMIN)
    }
}

/// Check a username by the rules of [`Username`].
pub fn validate_username(u: &str) -> Result<()> {
    Username::parse(u).map(drop)
}

/// The grant types a client may be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
    AuthorizationCode,
    DeviceCode,
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 6] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
        GrantType::DeviceCode,
        GrantType::TokenExchange,
    ];
    /// The grant types this server can run.
    pub const SUPPORTED: [GrantType; 6] = GrantType::ALL;

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            GrantType::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
        }
    }

    /// The short name: as refresh records store the grant that started a family, and as the
    /// Tapis claim `tapis/grant_type` carries it.
    pub fn short_name(self) -> &'static str {
        match self {
            GrantType::DeviceCode => "device_code",
            GrantType::TokenExchange => "token_exchange",
            g => g.as_str(),
        }
    }

    /// The inverse of [`Self::short_name`] (also accepts the full names).
    pub fn from_short_name(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GrantType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .or(match s {
                "device_code" => Some(GrantType::DeviceCode),
                "token_exchange" | "token-exchange" => Some(GrantType::TokenExchange),
                _ => None,
            })
            .ok_or_else(|| Error::unsupported_grant_type(format!("unsupported grant type `{s}`")))
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub tenant: TenantName,
    pub client_id: ClientId,
    pub name: String,
    /// SHA-256 (base64url) of the secret; `None` for a public client.
    pub secret_hash: Option<String>,
    pub grants: Vec<GrantType>,
    /// Scopes the client may request; an empty list means no scopes.
    pub scopes: Vec<String>,
    /// The user who owns the client (for self-service APIs), if any.
    pub owner: Option<Username>,
    pub callback_url: Option<RedirectUri>,
    /// Where the authorization endpoint may send people back (exact URIs, RFC 6749 section
    /// 3.1.2); the callback URL is one more.
    pub redirect_uris: Vec<RedirectUri>,
    /// Where the logout endpoint may send people afterwards (OpenID Connect RP-initiated logout).
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    /// The deployment's own application: people are not asked for consent.
    pub first_party: bool,
    pub description: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// After a secret rotation: the replaced secret's hash, and until when it still works.
    pub previous_secret: Option<(String, i64)>,
}

/// The secret's hash is left out.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("public", &self.secret_hash.is_none())
            .field("grants", &self.grants)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none()
    }
    pub fn allows(&self, g: GrantType) -> bool {
        self.grants.contains(&g)
    }
    /// Every redirect URI the client registered: the callback URL, then the others.
    pub fn all_redirect_uris(&self) -> impl Iterator<Item = &RedirectUri> {
        self.callback_url.iter().chain(self.redirect_uris.iter().filter(|u| self.callback_url.as_ref() != Some(*u)))
    }
}

/// Split a space-delimited scope string (RFC 6749 section 3.3) and validate its tokens.
pub fn parse_scope(s: &str) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::new();
    for tok in s.split(' ').filter(|t| !t.is_empty()) {
        if !tok.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
            return Err(Error::invalid_scope(format!("invalid scope token `{tok}`")));
        }
        if !out.iter().any(|t| t == tok) {
            out.push(tok.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn scope_parsing() {
        assert_eq!(parse_scope("a  b a").unwrap(), vec!["a", "b"]);
        assert!(parse_scope("a\"b").is_err());
        assert!(parse_scope("").unwrap().is_empty());
    }
    #[test]
    fn grant_names_roundtrip() {
        for g in GrantType::ALL {
            assert_eq!(g.as_str().parse::<GrantType>().unwrap(), g);
        }
        assert!("implicit".parse::<GrantType>().is_err());
        for g in GrantType::ALL {
            assert_eq!(GrantType::from_short_name(g.short_name()), Some(g));
        }
        assert_eq!(GrantType::DeviceCode.short_name(), "device_code");
        assert_eq!(GrantType::TokenExchange.short_name(), "token_exchange");
        assert_eq!(GrantType::ClientCredentials.short_name(), "client_credentials");
    }
    #[test]
    fn tapis_grant_claim_is_the_short_name() {
        use crate::token::{ClaimSet, Subject, shape};
        for (g, name) in [(GrantType::DeviceCode, "device_code"), (GrantType::TokenExchange, "token_exchange")] {
            let s = Subject { tenant: "t", username: Some("u"), client_id: None, grant_type: g, refresh_count: 0 };
            assert_eq!(shape(ClaimSet::Tapis, &s).1["tapis/grant_type"], name);
        }
    }
}
