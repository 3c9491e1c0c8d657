//! The port: what the engine needs from storage. Backends live in tessera-store.

use crate::audit::{AuditEvent, AuditFilter, AuditRecord};
use crate::error::Error;
use crate::keys::KeyRecord;
use crate::name::{ClientId, TenantName, Username};
use crate::principal::{ApiKey, Client, GrantType, User};
use crate::tenant::Tenant;
use crate::throttle::Counter;
use crate::token::ClaimSet;

/// Storage failures, as the engine sees them.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or timed out: retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    /// A stored row could not be decoded.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database was written by a newer version of Tessera (its schema is ahead of this
    /// binary's migrations): refuse it rather than misread it.
    #[error("{0}")]
    Newer(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            // The detail goes to the log at the call site, never to the caller.
            StoreError::Unavailable(_) => Error::unavailable("the service is temporarily unavailable"),
            StoreError::Conflict(what) => Error::conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => Error::not_found(format!("{what} not found")),
            StoreError::Corrupt(_) => Error::internal("stored data could not be read"),
            StoreError::Newer(_) => Error::unavailable("the database was written by a newer version"),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A refresh token as stored (the token itself only as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub family_id: String,
    pub tenant: TenantName,
    pub client_id: ClientId,
    pub subject: String,
    /// The user behind the token, for user grants.
    pub username: Option<Username>,
    pub scope: Option<String>,
    pub audience: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// When it was exchanged for a successor (rotation); `None` while unused.
    pub used_at: Option<i64>,
    pub family_revoked: bool,
    /// The access token issued alongside, so that killing the family kills it too.
    pub access_jti: String,
    pub access_exp: i64,
    pub claim_set: ClaimSet,
    /// How many rotations led to this token (0 for the first of a family).
    pub refresh_count: i64,
    /// The grant that started the family (stored by its short name).
    pub grant_type: GrantType,
    /// When and how the user authenticated when the family began (kept by every rotation).
    pub auth_time: Option<i64>,
    pub amr: Vec<String>,
    /// As read: the token's user is disabled or gone (always false for a client's own
    /// tokens; ignored when a record is inserted).
    pub user_barred: bool,
}

/// The successor minted on rotation; it inherits everything else from its parent.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub token_hash: String,
    pub issued_at: i64,
    pub expires_at: i64,
    pub access_jti: String,
    pub access_exp: i64,
}

/// A live refresh family of a user, as administrators and the user see it (no token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyInfo {
    pub family_id: String,
    pub client_id: String,
    pub created_at: i64,
    /// When the user authenticated to start it.
    pub auth_time: Option<i64>,
    /// When its newest refresh token expires.
    pub expires_at: i64,
    /// When its newest refresh token was issued (the last rotation).
    pub last_used_at: i64,
}

/// A revoked access token id, kept until the token would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub tenant: TenantName,
    pub jti: String,
    pub expires_at: i64,
}

/// The result of presenting a refresh token for rotation, decided atomically by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was unused: it is now used and the successor is stored.
    Rotated,
    /// Already used, but within the grace window: a sibling successor is stored.
    WithinGrace,
    /// Already used outside the grace window: the whole family is now revoked, with
    /// these access tokens.
    Reused { revoked: Vec<Revocation> },
    /// Unknown, expired, or of a revoked family.
    Invalid,
    /// Refused by the engine's check ([`Store::refresh_rotate`]'s `accept`): nothing written.
    Declined,
}

/// Where a device authorization stands (RFC 8628).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceStatus {
    Pending,
    Approved,
    Denied,
    /// Approved and exchanged for tokens: never again.
    Consumed,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceStatus::Pending => "pending",
            DeviceStatus::Approved => "approved",
            DeviceStatus::Denied => "denied",
            DeviceStatus::Consumed => "consumed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [DeviceStatus::Pending, DeviceStatus::Approved, DeviceStatus::Denied, DeviceStatus::Consumed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub device_code_hash: String,
    /// Normalised: the 8 characters without separator.
    pub user_code: String,
    pub tenant: TenantName,
    pub client_id: ClientId,
    pub scope: Option<String>,
    pub claim_set: ClaimSet,
    pub created_at: i64,
    pub expires_at: i64,
    pub interval: i64,
    pub last_poll_at: Option<i64>,
    pub status: DeviceStatus,
    /// Who approved (or denied) it.
    pub username: Option<Username>,
}

/// The answer to one poll, decided atomically by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    Pending,
    /// Polled sooner than the interval; the interval has grown by 5 s.
    SlowDown,
    Denied,
    Expired,
    /// Approved: now consumed, here is what was approved.
    Approved(DeviceRecord),
    /// Unknown, of another client, or already exchanged.
    Invalid,
}

/// An opaque bearer token for legacy clients (made by token exchange).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyRecord {
    pub token_hash: String,
    pub jti: String,
    pub tenant: TenantName,
    pub subject: String,
    pub username: Option<Username>,
    pub client_id: Option<ClientId>,
    pub scope: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The session and API key ids whose revocation ends this token too.
    pub chain: Vec<String>,
}

/// An authorization code as stored (RFC 6749 section 4.1; the code only as its SHA-256):
/// bound to the client, the redirect URI, the PKCE challenge and the nonce of its request,
/// and to the sign-in it was issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeRecord {
    pub code_hash: String,
    pub tenant: String,
    pub client_id: String,
    pub redirect_uri: String,
    /// RFC 7636 S256 challenge (base64url SHA-256 of the verifier).
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub scope: Option<String>,
    pub username: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    /// The browser session the code was issued in.
    pub sid: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// When it was redeemed; `None` while unused.
    pub used_at: Option<i64>,
    /// The session (refresh family) of the tokens the redemption issued.
    pub family_id: Option<String>,
}

/// A person signed in at the login page (the cookie's secret only as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserSession {
    pub token_hash: String,
    /// The session's public id (OpenID Connect `sid`).
    pub sid: String,
    pub tenant: String,
    pub username: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The absolute end of the session, however active it stays.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// Space-separated words as stored (amr values, chains), or none.
pub fn join_words(words: &[String]) -> Option<String> {
    (!words.is_empty()).then(|| words.join(" "))
}

/// The inverse of [`join_words`].
pub fn split_words(s: Option<String>) -> Vec<String> {
    s.map(|s| s.split_ascii_whitespace().map(str::to_owned).collect()).unwrap_or_default()
}

/// A change to cached state, published so that every node (and a server whose data dir an
/// admin command changed) drops or reloads what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Tenant { tenant: TenantName },
    Key { tenant: TenantName },
    Client { tenant: TenantName, client_id: ClientId },
    User { tenant: TenantName, username: Username },
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;

    /// Insert a tenant together with its first signing key.
    async fn tenant_insert(&self, tenant: &Tenant, first_key: &KeyRecord) -> StoreResult<()>;
    async fn tenant_get(&self, name: &TenantName) -> StoreResult<Option<Tenant>>;
    async fn tenant_list(&self) -> StoreResult<Vec<Tenant>>;
    /// Update a tenant's policy (issuer, lifetimes, hosts, allowed grants).
    async fn tenant_update(&self, tenant: &Tenant) -> StoreResult<()>;

    async fn key_insert(&self, key: &KeyRecord) -> StoreResult<()>;
    /// Delete a tenant's key (retired early: its private part is gone, and tokens it signed
    /// no longer verify); false if there was none. Every node reloads the tenant's keys.
    async fn key_delete(&self, tenant: &TenantName, kid: &str) -> StoreResult<bool>;
    /// Keys of one tenant, or of all tenants.
    async fn key_list(&self, tenant: Option<&TenantName>) -> StoreResult<Vec<KeyRecord>>;

    async fn user_insert(&self, user: &User) -> StoreResult<()>;
    async fn user_get(&self, tenant: &TenantName, username: &Username) -> StoreResult<Option<User>>;
    async fn user_list(&self, tenant: &TenantName) -> StoreResult<Vec<User>>;
    /// Set (or clear) the sealed TOTP secret and whether it is enforced; resets the last
    /// accepted step. Returns false when there is no such user.
    async fn user_totp_set(
        &self,
        tenant: &TenantName,
        username: &Username,
        sealed: Option<&[u8]>,
        enabled: bool,
    ) -> StoreResult<bool>;
    /// Accept TOTP time step `step` for the user if it is later than the last accepted one
    /// (atomically: of two concurrent uses of one code, one wins).
    async fn user_totp_accept_step(&self, tenant: &TenantName, username: &Username, step: i64) -> StoreResult<bool>;
    /// Replace the user's recovery codes (SHA-256 hashes).
    async fn recovery_codes_set(&self, tenant: &TenantName, username: &Username, hashes: &[String]) -> StoreResult<()>;
    /// Use a recovery code once: true if it existed unused and is now used.
    async fn recovery_code_use(
        &self,
        tenant: &TenantName,
        username: &Username,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool>;

    async fn api_key_insert(&self, key: &ApiKey, key_hash: &str) -> StoreResult<()>;
    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>>;
    /// A tenant's keys, or one user's.
    async fn api_key_list(&self, tenant: &TenantName, username: Option<&Username>) -> StoreResult<Vec<ApiKey>>;
    /// Returns false when there is no such live key.
    async fn api_key_revoke(&self, tenant: &TenantName, id: &str, now: i64) -> StoreResult<bool>;
    async fn api_key_touch(&self, id: &str, now: i64) -> StoreResult<()>;

    /// Returns false when there is no such user.
    async fn user_set_disabled(&self, tenant: &TenantName, username: &Username, disabled: bool) -> StoreResult<bool>;

    async fn client_insert(&self, client: &Client) -> StoreResult<()>;
    async fn client_get(&self, tenant: &TenantName, client_id: &ClientId) -> StoreResult<Option<Client>>;
    async fn client_list(&self, tenant: &TenantName) -> StoreResult<Vec<Client>>;
    /// Update name, callback URL, description, grants, scopes and secrets (current and
    /// previous). Returns false when there is no such client.
    async fn client_update(&self, client: &Client) -> StoreResult<bool>;
    /// Returns false when there is no such client. Its refresh families are revoked.
    async fn client_delete(&self, tenant: &TenantName, client_id: &ClientId, now: i64) -> StoreResult<bool>;

    /// Store the first token of a new family.
    async fn refresh_insert(&self, record: &RefreshRecord) -> StoreResult<()>;
    async fn refresh_get(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>>;
    /// Atomically exchange the token `token_hash` for `next` (see [`Rotation`]), in one
    /// transaction: the token is read (with its family held), `accept` judges it (the engine's
    /// checks: client, tenant, scope, user), and only then is it marked used and its successor
    /// stored. Returns the token as read, if it exists. Two concurrent presentations of one
    /// unused token: exactly one sees `Rotated`.
    async fn refresh_rotate(
        &self,
        token_hash: &str,
        now: i64,
        grace_secs: i64,
        next: &NewRefresh,
        accept: &(dyn for<'r> Fn(&'r RefreshRecord) -> bool + Send + Sync),
    ) -> StoreResult<(Rotation, Option<RefreshRecord>)>;
    /// Revoke a whole family and the live access tokens issued from it (returned).
    async fn refresh_revoke_family(&self, family_id: &str, now: i64) -> StoreResult<Vec<Revocation>>;

    /// Durably record a revocation (returns once it is durable).
    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()>;
    /// Revocations with a sequence number above `after`, with their numbers, ascending: at
    /// most `limit` of them.
    async fn revocations_since(&self, after: i64, limit: i64) -> StoreResult<Vec<(i64, Revocation)>>;
    /// Drop revocations (and dead refresh tokens) whose tokens have expired anyway.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    async fn device_insert(&self, d: &DeviceRecord) -> StoreResult<()>;
    async fn device_get_by_user_code(&self, tenant: &TenantName, user_code: &str) -> StoreResult<Option<DeviceRecord>>;
    /// Approve (with the user) or deny a pending, unexpired authorization. False if it was not
    /// pending or has expired.
    async fn device_decide(
        &self,
        tenant: &TenantName,
        user_code: &str,
        username: &Username,
        approve: bool,
        now: i64,
    ) -> StoreResult<bool>;
    /// One poll by `client_id` (see [`DevicePoll`]).
    async fn device_poll(&self, device_code_hash: &str, client_id: &ClientId, now: i64) -> StoreResult<DevicePoll>;

    async fn code_insert(&self, c: &CodeRecord) -> StoreResult<()>;
    async fn code_get(&self, code_hash: &str) -> StoreResult<Option<CodeRecord>>;
    /// Redeem an unused, unexpired code once, recording the session (`family_id`) of the
    /// tokens it is exchanged for. Of two concurrent redemptions (at any node), one gets true.
    async fn code_redeem(&self, code_hash: &str, now: i64, family_id: &str) -> StoreResult<bool>;

    async fn browser_session_insert(&self, s: &BrowserSession) -> StoreResult<()>;
    async fn browser_session_get(&self, token_hash: &str) -> StoreResult<Option<BrowserSession>>;
    /// Record activity (the idle timeout counts from the last).
    async fn browser_session_touch(&self, token_hash: &str, now: i64) -> StoreResult<()>;
    /// End the session with public id `sid`; false if it was not live.
    async fn browser_session_revoke(&self, tenant: &TenantName, sid: &str, now: i64) -> StoreResult<bool>;
    /// A user's browser sessions that are neither revoked nor past their absolute end, newest
    /// first.
    async fn browser_sessions_of(
        &self,
        tenant: &TenantName,
        username: &Username,
        now: i64,
    ) -> StoreResult<Vec<BrowserSession>>;
    /// End every browser session of a user: how many were live.
    async fn browser_sessions_end(&self, tenant: &TenantName, username: &Username, now: i64) -> StoreResult<u64>;

    /// The scopes a person allowed a client, if they were asked before.
    async fn consent_get(
        &self,
        tenant: &TenantName,
        username: &Username,
        client_id: &ClientId,
    ) -> StoreResult<Option<Vec<String>>>;
    /// Remember (replacing) the scopes a person allowed a client.
    async fn consent_put(
        &self,
        tenant: &TenantName,
        username: &Username,
        client_id: &ClientId,
        scopes: &[String],
        now: i64,
    ) -> StoreResult<()>;

    async fn legacy_insert(&self, r: &LegacyRecord) -> StoreResult<()>;
    async fn legacy_get(&self, token_hash: &str) -> StoreResult<Option<LegacyRecord>>;

    /// Brute-force counters (see [`crate::throttle`]), shared by every node: reserve one
    /// attempt against every counter at once, before the attempt is checked. Atomically (of
    /// concurrent reservations at any node, no more than a counter's cap get through in one
    /// window): each counter's count in its current window (a new window of `window` seconds
    /// from `now` if the old one is over) goes up by one, unless a counter is already at its
    /// cap; then nothing is counted and the answer is the seconds until the last such window
    /// ends. `None`: reserved.
    async fn attempt_reserve(&self, counters: &[Counter], now: i64, window: i64) -> StoreResult<Option<i64>>;
    /// Settle attempts reserved at `reserved_at` that did not fail: give one back to each key
    /// of `release` (unless its window has ended since: a new window owes nothing), and forget
    /// every attempt of each key of `clear` (a successful sign-in clears the user's).
    async fn attempt_release(&self, release: &[&str], clear: &[&str], reserved_at: i64) -> StoreResult<()>;

    /// Delete a tenant and everything of it (users, clients, keys, tokens). Returns false when
    /// there is no such tenant.
    async fn tenant_delete(&self, name: &TenantName) -> StoreResult<bool>;
    /// Write a user's password hash, roles and profile. Returns false when there is no such user.
    async fn user_update(&self, user: &User) -> StoreResult<bool>;
    /// A user's refresh families that are not revoked and hold an unexpired token at `now`.
    async fn user_families(&self, tenant: &TenantName, username: &Username, now: i64) -> StoreResult<Vec<FamilyInfo>>;

    /// Changes with a sequence number above `after`, ascending.
    async fn changes_since(&self, after: i64) -> StoreResult<Vec<(i64, Change)>>;
    /// The newest change and revocation sequence numbers.
    async fn heads(&self) -> StoreResult<(i64, i64)>;

    /// A setting of the whole deployment (see `setting_claim`); `None` if never recorded.
    async fn setting_get(&self, name: &str) -> StoreResult<Option<String>>;
    /// Record `value` for `name` unless a value is recorded already (by another node starting
    /// at the same moment, say): the recorded value either way.
    async fn setting_claim(&self, name: &str, value: &str) -> StoreResult<String>;
    /// Record `value` for `name`, replacing any.
    async fn setting_set(&self, name: &str, value: &str) -> StoreResult<()>;
    /// Append audit events (one batch, one transaction).
    async fn audit_insert(&self, events: &[AuditEvent]) -> StoreResult<()>;
    /// Events of `tenant` matching `filter` with an id below `before` (all, without it),
    /// newest first, at most `limit`.
    async fn audit_list(
        &self,
        tenant: &TenantName,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>>;
    /// Delete events older than `before` (Unix seconds): how many.
    async fn audit_purge(&self, before: i64) -> StoreResult<u64>;
}
