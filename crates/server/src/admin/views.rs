//! The answers of the admin and self-service APIs: what each resource shows (never a
//! secret's hash; a new secret only in the answer that made it).

use serde::Serialize;
use tessera_core::audit::AuditRecord;
use tessera_core::page::Page;
use tessera_core::principal::{ApiKey, Client, User};
use tessera_core::store::{BrowserSession, FamilyInfo};
use tessera_core::tenant::Tenant;
use utoipa::ToSchema;

/// One page of a list, and the cursor of the next one (absent on the last page).
#[derive(Debug, Serialize, ToSchema)]
pub struct PageView<T> {
    pub items: Vec<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> PageView<T> {
    pub fn of<U>(page: Page<U>, f: impl FnMut(U) -> T) -> Self {
        let next_cursor = page.next.clone();
        PageView { items: page.items.into_iter().map(f).collect(), next_cursor }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub name: String,
    pub alg: &'static str,
    pub issuer: String,
    pub access_ttl: Option<i64>,
    pub refresh_ttl: Option<i64>,
    pub hosts: Vec<String>,
    pub allowed_grants: Option<Vec<&'static str>>,
    pub max_user_clients: Option<i64>,
    /// Every user must sign in with a second factor.
    pub totp_required: bool,
    pub created_at: i64,
}

impl TenantView {
    pub fn new(t: &Tenant, issuer: String) -> Self {
        TenantView {
            name: t.name.to_string(),
            alg: t.alg.as_str(),
            issuer,
            access_ttl: t.access_ttl,
            refresh_ttl: t.refresh_ttl,
            hosts: t.hosts.clone(),
            allowed_grants: t.allowed_grants.as_ref().map(|g| g.iter().map(|g| g.as_str()).collect()),
            max_user_clients: t.max_user_clients,
            totp_required: t.totp_required,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub username: String,
    pub tenant: String,
    pub roles: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub last_name: Option<String>,
    /// Whether a second factor (TOTP) is required at sign-in.
    pub totp_enabled: bool,
    /// Whether an administrator requires the user to have one.
    pub totp_required: bool,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            username: u.username.to_string(),
            tenant: u.tenant.to_string(),
            roles: u.roles,
            disabled: u.disabled,
            created_at: u.created_at,
            email: u.profile.email,
            given_name: u.profile.given_name,
            last_name: u.profile.last_name,
            totp_enabled: u.totp.enabled,
            totp_required: u.totp.required,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    pub grants: Vec<&'static str>,
    pub scopes: Vec<String>,
    pub owner: Option<String>,
    pub callback_url: Option<String>,
    pub description: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub first_party: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Until when the secret replaced by the last rotation still works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_expires_at: Option<i64>,
    /// Only in the answer that made it (creation, rotation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl ClientView {
    pub fn new(c: Client, secret: Option<String>) -> Self {
        ClientView {
            public: c.is_public(),
            client_id: c.client_id.to_string(),
            name: c.name,
            grants: c.grants.iter().map(|g| g.as_str()).collect(),
            scopes: c.scopes,
            owner: c.owner.map(|o| o.to_string()),
            callback_url: c.callback_url.map(|u| u.to_string()),
            description: c.description,
            redirect_uris: c.redirect_uris.iter().map(|u| u.to_string()).collect(),
            post_logout_redirect_uris: c.post_logout_redirect_uris.iter().map(|u| u.to_string()).collect(),
            first_party: c.first_party,
            created_at: c.created_at,
            updated_at: c.updated_at,
            previous_secret_expires_at: c.previous_secret.map(|p| p.1),
            client_secret: secret,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: String,
    pub username: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// Only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl ApiKeyView {
    pub fn new(k: ApiKey, key: Option<String>) -> Self {
        ApiKeyView {
            id: k.id,
            username: k.username.to_string(),
            name: k.name,
            scopes: k.scopes,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
            key,
        }
    }
}

/// A refresh family: one signed-in application session of a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    pub id: String,
    pub client_id: String,
    pub created_at: i64,
    pub auth_time: Option<i64>,
    pub expires_at: i64,
    pub last_used_at: i64,
}

impl From<FamilyInfo> for SessionView {
    fn from(f: FamilyInfo) -> Self {
        SessionView {
            id: f.family_id,
            client_id: f.client_id,
            created_at: f.created_at,
            auth_time: f.auth_time,
            expires_at: f.expires_at,
            last_used_at: f.last_used_at,
        }
    }
}

/// How many things an operation ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Count {
    pub revoked: usize,
}

/// TOTP enrolment, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolmentView {
    pub otpauth_uri: String,
    pub secret: String,
}

/// Recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// A signing key and where it is in its life.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    /// `pending` (published, not signing yet), `active`, `retiring` or `retired`.
    pub status: &'static str,
    pub created_at: i64,
    pub activates_at: i64,
}

impl From<tessera_core::authority::KeyInfo> for KeyView {
    fn from(k: tessera_core::authority::KeyInfo) -> Self {
        KeyView { kid: k.kid, alg: k.alg, status: k.status, created_at: k.created_at, activates_at: k.activates_at }
    }
}

/// One audit event: who did what to whom, from where, and how it ended (never a secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Its place in the trail (higher is newer).
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub tenant: String,
    pub event: &'static str,
    /// `success` or `failure`.
    pub outcome: &'static str,
    /// `operator`, `user`, `client`, `api_key` or `anonymous`.
    pub actor: &'static str,
    pub actor_name: Option<String>,
    pub subject: Option<String>,
    pub client_id: Option<String>,
    pub address: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(r: AuditRecord) -> Self {
        let e = r.event;
        AuditView {
            id: r.id,
            at: e.at,
            tenant: e.tenant,
            event: e.event.as_str(),
            outcome: e.outcome.as_str(),
            actor: e.actor.as_str(),
            actor_name: e.actor_name,
            subject: e.subject,
            client_id: e.client_id,
            address: e.address,
            request_id: e.request_id,
            detail: e.detail,
        }
    }
}

/// A browser session: a person signed in at the login page, in one browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct BrowserSessionView {
    /// The session's id (OpenID Connect `sid`).
    pub sid: String,
    pub created_at: i64,
    pub auth_time: i64,
    /// How the person signed in (`pwd`, `otp`).
    pub amr: Vec<String>,
    pub last_seen_at: i64,
    /// The absolute end, however active it stays.
    pub expires_at: i64,
}

impl From<BrowserSession> for BrowserSessionView {
    fn from(s: BrowserSession) -> Self {
        BrowserSessionView {
            sid: s.sid,
            created_at: s.created_at,
            auth_time: s.auth_time,
            amr: s.amr,
            last_seen_at: s.last_seen_at,
            expires_at: s.expires_at,
        }
    }
}
