//! The engine: authenticates clients and users, decides grants, mints, rotates, introspects
//! and revokes. Fronts translate their wire formats into calls here.
//!
//! Split by concern: `admin` (tenants, keys, users, clients), `grants` (the token endpoint
//! and the device flow), `inspect` (verification, introspection, revocation).

mod access;
mod admin;
mod audit;
pub mod browser;
mod grants;
mod inspect;
mod manage;
mod mfa;

pub use access::{Action, Actor, Caller};
pub use admin::{NewClient, TenantPolicy};
pub use audit::MAX_PAGE as AUDIT_MAX_PAGE;
pub use browser::{Authorization, AuthorizeError, AuthorizeRequest, Prompt, SignInStep, UserInfo};
pub use manage::{ClientUpdate, MAX_SECRET_GRACE, UserFilter, UserUpdate};
pub use mfa::{MAX_API_KEY_LIFETIME, Session, TotpEnrolment};

use crate::clock::{Clock, Rng};
use crate::error::{Error, Result};
use crate::keys::{KeyRing, MasterKey, SigningKey};
use crate::name::TenantName;
use crate::principal::Client;
use crate::secret::{self, PasswordHasher, Secret};
use crate::store::{Change, Revocation, Store};
use crate::tenant::Tenant;
use crate::token::{AccessClaims, Provenance};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The maps read on every request (tenants, clients, verified tokens): foldhash instead of
/// SipHash, a third of the cost per lookup. Their keys are made by administrators or are
/// SHA-256 digests, so a caller cannot fill them with colliding keys.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
use std::sync::{Arc, Mutex, RwLock};

/// Deployment-wide settings the engine needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of this deployment; the default tenant's issuer, and `/t/{name}` below it
    /// for the others (unless a tenant names its own issuer).
    pub public_url: String,
    /// Default access token lifetime (seconds).
    pub access_ttl: i64,
    /// Default refresh token lifetime (seconds).
    pub refresh_ttl: i64,
    /// How long after rotation a refresh token may still be presented once more without
    /// counting as reuse (two tabs refreshing at once). 0 disables it.
    pub refresh_grace: i64,
    /// How long a new key is published before it signs.
    pub key_prepublish: i64,
    /// Lifetime of a device authorization (RFC 8628), seconds.
    pub device_ttl: i64,
    /// Minimum polling interval of the device flow, seconds.
    pub device_interval: i64,
    /// Brute-force limits on failed credential checks.
    pub limits: crate::throttle::Limits,
    /// How long audit events are kept, in days; 0 keeps them for ever.
    pub audit_retention_days: i64,
    /// How many audit events may wait in memory to be written; more are dropped (and
    /// counted) rather than slow a request down.
    pub audit_queue: usize,
    /// A browser session ends after this many seconds without use...
    pub session_idle: i64,
    /// ...and this many after the sign-in, however active.
    pub session_ttl: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            public_url: "http://127.0.0.1:8080".into(),
            access_ttl: 3600,
            refresh_ttl: 30 * 24 * 3600,
            refresh_grace: 0,
            key_prepublish: 0,
            device_ttl: 600,
            device_interval: 5,
            limits: crate::throttle::Limits::default(),
            audit_retention_days: 90,
            audit_queue: 65_536,
            session_idle: 30 * 60,
            session_ttl: 12 * 3600,
        }
    }
}

pub const DEFAULT_TENANT: &str = "default";

/// A tenant as held in memory: its settings, issuer and keys.
#[derive(Debug)]
pub struct TenantState {
    pub tenant: Tenant,
    pub issuer: String,
    pub ring: KeyRing,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    /// How long a replaced key stays published and verifies, after its successor starts
    /// signing: the longest access lifetime the tenant has had (no token lives longer: the
    /// fronts' own lifetimes are capped by the access lifetime).
    pub key_ttl: i64,
    /// The JWK Set as served, and how many keys it lists. A tenant whose keys change gets a
    /// new state; within one, time only retires keys, so the published sets are nested and
    /// the count says whether the cached document is still the right one.
    jwks: RwLock<Option<(usize, Arc<[u8]>)>>,
}

/// A key as shown to administrators.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub status: &'static str,
    pub created_at: i64,
    pub activates_at: i64,
}

/// What goes into an access token besides the tenant's own claims.
#[derive(Debug, Clone)]
pub struct Mint<'a> {
    pub sub: &'a str,
    pub username: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub scope: Option<String>,
    /// Defaults to the tenant's issuer.
    pub audience: Option<&'a str>,
    /// Claims a front's clients expect (e.g. Tapis' `tapis/...`).
    pub extra: Map<String, Value>,
    pub jti: String,
    /// Expiry; defaults to now + the tenant's access lifetime.
    pub exp: Option<i64>,
    /// How the user authenticated, for a user's token (absent on machine tokens).
    pub provenance: Option<Provenance>,
}

/// The tokens an API accepts: those minted for its own audience, or for the tenant's
/// default audience (its issuer) where the API is defined that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience<'a> {
    /// The tenant's issuer: tokens of the standard endpoints and of APIs that name no
    /// audience of their own.
    Issuer,
    /// A front's own audience (SFTPGo's `API`, ICA's `ica`, ...).
    Named(&'a str),
}

/// The answer of introspection (RFC 7662 section 2.2): `{"active": false}` alone, or an active
/// token's members, then the claims a front added (Tapis' `tapis/...`, ...).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for access and legacy tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Introspection {
    /// `{"active": false}`: unknown, expired, revoked, foreign or invalid, alike.
    pub fn inactive() -> Self {
        Introspection::default()
    }
}

pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    hasher: Arc<dyn PasswordHasher>,
    master: MasterKey,
    settings: Settings,
    tenants: RwLock<FastMap<String, Arc<TenantState>>>,
    /// tenant -> client id -> client (nested so that lookups borrow, not allocate).
    clients: RwLock<FastMap<String, FastMap<String, Arc<Client>>>>,
    /// Host name -> tenant, from the tenants' host lists.
    hosts: RwLock<HashMap<String, String>>,
    /// Whether `hosts` has any entry.
    any_hosts: std::sync::atomic::AtomicBool,
    /// Tokens whose signature has been verified, by SHA-256 of tenant and token.
    verified: RwLock<FastMap<[u8; 32], Arc<AccessClaims>>>,
    /// Revoked token ids that have not expired yet.
    revoked: RwLock<crate::revocation::RevocationSet>,
    /// Last applied (change, revocation) sequence numbers.
    cursor: Mutex<(i64, i64)>,
    /// A real Argon2id hash to verify against when the user does not exist, so that
    /// an unknown username costs the same time as a wrong password.
    dummy_hash: String,
    limits: crate::throttle::Limits,
    /// Brute-force counters this node found past their limit, until when: server-made
    /// secrets are refused by them before being checked (see `throttle`).
    locked: RwLock<FastMap<String, i64>>,
    /// Whether `locked` has any entry (read on every client authentication, lock-free).
    any_locked: std::sync::atomic::AtomicBool,
    /// Audit events waiting for the writer (`write_audit`).
    audit: crate::audit::Queue,
    /// Where the request being served came from (installed by the server).
    origin_of: Option<fn() -> crate::audit::Origin>,
}

fn lock_poisoned<T>(_: T) -> Error {
    Error::internal("internal state lock poisoned")
}

impl Authority {
    /// Load the engine's state from the store. Fails if the master key cannot open the
    /// stored signing keys (another deployment's database, or the wrong key).
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        rng: Arc<dyn Rng>,
        hasher: Arc<dyn PasswordHasher>,
        master: MasterKey,
        settings: Settings,
    ) -> Result<Self> {
        let dummy_hash = hasher.hash(Secret::new(secret::random_b64(rng.as_ref(), 16))).await?;
        let settings_limits = settings.limits;
        let audit = crate::audit::Queue::new(settings.audit_queue);
        let started = clock.now();
        let auth = Authority {
            store,
            clock,
            rng,
            hasher,
            master,
            settings,
            tenants: RwLock::default(),
            clients: RwLock::default(),
            hosts: RwLock::new(HashMap::new()),
            any_hosts: std::sync::atomic::AtomicBool::new(false),
            verified: RwLock::default(),
            revoked: RwLock::new(crate::revocation::RevocationSet::new(started)),
            cursor: Mutex::new((0, 0)),
            dummy_hash,
            limits: settings_limits,
            locked: RwLock::default(),
            any_locked: std::sync::atomic::AtomicBool::new(false),
            audit,
            origin_of: None,
        };
        let heads = auth.store.heads().await?;
        for t in auth.store.tenant_list().await? {
            auth.load_tenant(&t.name).await?;
        }
        *auth.cursor.lock().map_err(lock_poisoned)? = (heads.0, 0);
        auth.sync_revocations().await?;
        Ok(auth)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    fn issuer_for(&self, t: &Tenant) -> String {
        match &t.issuer {
            Some(i) => i.clone(),
            None if t.name == DEFAULT_TENANT => self.settings.public_url.trim_end_matches('/').to_owned(),
            None => format!("{}/t/{}", self.settings.public_url.trim_end_matches('/'), t.name),
        }
    }

    async fn load_tenant(&self, name: &TenantName) -> Result<()> {
        let Some(t) = self.store.tenant_get(name).await? else {
            let mut tenants = self.tenants.write().map_err(lock_poisoned)?;
            tenants.remove(name.as_str());
            return self.index_hosts(&tenants);
        };
        let mut keys = Vec::new();
        for r in self.store.key_list(Some(name)).await? {
            keys.push(Arc::new(SigningKey::from_record(&self.master, &r)?));
        }
        let access_ttl = t.access_ttl.unwrap_or(self.settings.access_ttl);
        let state = TenantState {
            issuer: self.issuer_for(&t),
            ring: KeyRing::new(keys),
            key_ttl: access_ttl.max(t.longest_access_ttl.unwrap_or(0)),
            access_ttl,
            refresh_ttl: t.refresh_ttl.unwrap_or(self.settings.refresh_ttl),
            tenant: t,
            jwks: RwLock::default(),
        };
        // Tokens checked under the tenant's former keys and issuer are checked again: a key
        // retired early must take its tokens with it.
        self.verified.write().map_err(lock_poisoned)?.retain(|_, c| c.tenant != name.as_str());
        let mut tenants = self.tenants.write().map_err(lock_poisoned)?;
        tenants.insert(name.to_string(), Arc::new(state));
        self.index_hosts(&tenants)
    }

    /// Rebuild the host name index from the tenants (called with the tenants locked).
    fn index_hosts(&self, tenants: &FastMap<String, Arc<TenantState>>) -> Result<()> {
        let map: HashMap<String, String> = tenants
            .values()
            .flat_map(|ts| ts.tenant.hosts.iter().map(|h| (h.clone(), ts.tenant.name.to_string())))
            .collect();
        self.any_hosts.store(!map.is_empty(), std::sync::atomic::Ordering::Release);
        *self.hosts.write().map_err(lock_poisoned)? = map;
        Ok(())
    }

    /// The tenant's in-memory state, or `not_found`.
    pub fn tenant(&self, name: &str) -> Result<Arc<TenantState>> {
        self.tenants
            .read()
            .map_err(lock_poisoned)?
            .get(name)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("tenant `{name}` not found")))
    }

    /// The tenant that lists `host` (port ignored) among its host names.
    pub fn tenant_for_host(&self, host: &str) -> Option<String> {
        // Asked on every request: without host names (the usual case) no lock is taken.
        if !self.any_hosts.load(std::sync::atomic::Ordering::Acquire) {
            return None;
        }
        self.hosts.read().ok()?.get(&crate::tenant::normalize_host(host)).cloned()
    }

    fn forget_client(&self, tenant: &str, client_id: &str) -> Result<()> {
        if let Some(m) = self.clients.write().map_err(lock_poisoned)?.get_mut(tenant) {
            m.remove(client_id);
        }
        Ok(())
    }

    // ----- keeping in step with the store -------------------------------------------------

    fn remember_revoked(&self, list: Vec<Revocation>) -> Result<()> {
        let mut set = self.revoked.write().map_err(lock_poisoned)?;
        for r in list {
            set.insert(&r.jti, r.expires_at);
        }
        Ok(())
    }

    /// Take the revocations made since the last call, a page at a time: a node that starts
    /// beside a million live revocations never holds more than a page of rows on the way in.
    async fn sync_revocations(&self) -> Result<()> {
        const PAGE: i64 = 10_000;
        loop {
            let after = self.cursor.lock().map_err(lock_poisoned)?.1;
            let rows = self.store.revocations_since(after, PAGE).await?;
            let Some(last) = rows.last().map(|(s, _)| *s) else {
                return Ok(());
            };
            let full = rows.len() as i64 == PAGE;
            let now = self.now();
            self.remember_revoked(rows.into_iter().map(|(_, r)| r).filter(|r| r.expires_at > now).collect())?;
            self.cursor.lock().map_err(lock_poisoned)?.1 = last;
            if !full {
                return Ok(());
            }
        }
    }

    /// Apply what changed in the store since the last call: tenants, keys and clients
    /// changed by admin commands or other nodes, and new revocations.
    pub async fn sync(&self) -> Result<()> {
        let after = self.cursor.lock().map_err(lock_poisoned)?.0;
        let changes = self.store.changes_since(after).await?;
        if let Some(last) = changes.last().map(|(s, _)| *s) {
            for (_, c) in changes {
                match c {
                    Change::Tenant { tenant } | Change::Key { tenant } => {
                        // Stored names keep the rules; one that does not names no tenant.
                        if let Ok(name) = TenantName::parse(&tenant) {
                            self.load_tenant(&name).await?
                        }
                    }
                    Change::Client { tenant, client_id } => {
                        self.forget_client(&tenant, &client_id)?;
                    }
                    Change::User { .. } => {}
                }
            }
            self.cursor.lock().map_err(lock_poisoned)?.0 = last;
        }
        self.sync_revocations().await
    }

    /// Forget revocations of tokens that have expired anyway (memory and store), and audit
    /// events older than the retention.
    pub async fn purge_expired(&self) -> Result<u64> {
        let now = self.now();
        self.revoked.write().map_err(lock_poisoned)?.purge(now);
        // Verified tokens that expired: the cache holds the live ones, not its maximum.
        self.verified.write().map_err(lock_poisoned)?.retain(|_, c| c.exp > now);
        let purged = self.store.purge_expired(now).await?;
        if self.settings.audit_retention_days > 0 {
            self.store.audit_purge(now - self.settings.audit_retention_days * 86_400).await?;
        }
        Ok(purged)
    }

    pub fn revoked_count(&self) -> usize {
        self.revoked.read().map(|r| r.len()).unwrap_or(0)
    }

    /// Is the store answering?
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}

impl AccessClaims {
    /// The user a token speaks for, if it is a user's token.
    pub fn user(&self) -> Option<&str> {
        self.username.as_deref()
    }
}
