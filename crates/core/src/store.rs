//! The port: what the engine needs from storage. Backends live in tessera-store.

use crate::error::Error;
use crate::keys::KeyRecord;
use crate::principal::{Client, User};
use crate::tenant::Tenant;

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
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            // The detail goes to the log at the call site, never to the caller.
            StoreError::Unavailable(_) => Error::unavailable("the service is temporarily unavailable"),
            StoreError::Conflict(what) => Error::conflict(format!("{what} already exists")),
            StoreError::NotFound(what) => Error::not_found(format!("{what} not found")),
            StoreError::Corrupt(_) => Error::internal("stored data could not be read"),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A refresh token as stored (the token itself only as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub family_id: String,
    pub tenant: String,
    pub client_id: String,
    pub subject: String,
    /// The user behind the token, for user grants.
    pub username: Option<String>,
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

/// A revoked access token id, kept until the token would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub tenant: String,
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
    /// Unknown, expired, of another client, or of a revoked family.
    Invalid,
}

/// A change to cached state, published so that every node (and a server whose data dir an
/// admin command changed) drops or reloads what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Tenant { tenant: String },
    Key { tenant: String },
    Client { tenant: String, client_id: String },
    User { tenant: String, username: String },
}

#[async_trait::async_trait]
pub trait Store: Send + Sync {
    async fn ping(&self) -> StoreResult<()>;

    /// Insert a tenant together with its first signing key.
    async fn tenant_insert(&self, tenant: &Tenant, first_key: &KeyRecord) -> StoreResult<()>;
    async fn tenant_get(&self, name: &str) -> StoreResult<Option<Tenant>>;
    async fn tenant_list(&self) -> StoreResult<Vec<Tenant>>;

    async fn key_insert(&self, key: &KeyRecord) -> StoreResult<()>;
    /// Keys of one tenant, or of all tenants.
    async fn key_list(&self, tenant: Option<&str>) -> StoreResult<Vec<KeyRecord>>;

    async fn user_insert(&self, user: &User) -> StoreResult<()>;
    async fn user_get(&self, tenant: &str, username: &str) -> StoreResult<Option<User>>;
    async fn user_list(&self, tenant: &str) -> StoreResult<Vec<User>>;
    /// Returns false when there is no such user.
    async fn user_set_disabled(&self, tenant: &str, username: &str, disabled: bool) -> StoreResult<bool>;

    async fn client_insert(&self, client: &Client) -> StoreResult<()>;
    async fn client_get(&self, tenant: &str, client_id: &str) -> StoreResult<Option<Client>>;
    async fn client_list(&self, tenant: &str) -> StoreResult<Vec<Client>>;
    /// Returns false when there is no such client. Its refresh families are revoked.
    async fn client_delete(&self, tenant: &str, client_id: &str, now: i64) -> StoreResult<bool>;

    /// Store the first token of a new family.
    async fn refresh_insert(&self, record: &RefreshRecord) -> StoreResult<()>;
    async fn refresh_get(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>>;
    /// Atomically exchange the token `token_hash` of `client_id` for `next` (see [`Rotation`]).
    /// Two concurrent presentations of one unused token: exactly one sees `Rotated`.
    async fn refresh_rotate(
        &self,
        token_hash: &str,
        client_id: &str,
        now: i64,
        grace_secs: i64,
        next: &NewRefresh,
    ) -> StoreResult<Rotation>;
    /// Revoke a whole family and the live access tokens issued from it (returned).
    async fn refresh_revoke_family(&self, family_id: &str, now: i64) -> StoreResult<Vec<Revocation>>;

    /// Durably record a revocation (returns once it is durable).
    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()>;
    /// Revocations with a sequence number above `after`, with their numbers, ascending.
    async fn revocations_since(&self, after: i64) -> StoreResult<Vec<(i64, Revocation)>>;
    /// Drop revocations (and dead refresh tokens) whose tokens have expired anyway.
    async fn purge_expired(&self, now: i64) -> StoreResult<u64>;

    /// Changes with a sequence number above `after`, ascending.
    async fn changes_since(&self, after: i64) -> StoreResult<Vec<(i64, Change)>>;
    /// The newest change and revocation sequence numbers.
    async fn heads(&self) -> StoreResult<(i64, i64)>;
}
