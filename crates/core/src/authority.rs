//! The engine: authenticates clients and users, decides grants, mints, rotates, introspects
//! and revokes. Fronts translate their wire formats into calls here.

use crate::clock::{Clock, Rng};
use crate::error::{Error, ErrorKind, Result};
use crate::grant::{ClientAuth, Grant, IssuedTokens, TokenRequest};
use crate::keys::{Alg, KeyRing, KeyStatus, MasterKey, SigningKey};
use crate::principal::{Client, GrantType, User, parse_scope, validate_username};
use crate::secret::{self, PasswordHasher, Secret, prefix};
use crate::store::{Change, NewRefresh, RefreshRecord, Revocation, Rotation, Store};
use crate::tenant::{Tenant, validate_tenant_name};
use crate::token::{self, AccessClaims};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
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
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            public_url: "http://127.0.0.1:8080".into(),
            access_ttl: 3600,
            refresh_ttl: 30 * 24 * 3600,
            refresh_grace: 0,
            key_prepublish: 0,
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
    pub client_id: &'a str,
    pub scope: Option<String>,
    /// Defaults to the tenant's issuer.
    pub audience: Option<&'a str>,
    /// Claims a front's clients expect (e.g. Tapis' `tapis/...`).
    pub extra: Map<String, Value>,
    pub jti: String,
}

/// The answer of introspection for an active token (RFC 7662 members).
pub type Introspection = Map<String, Value>;

/// Who presented a bearer token, once verified.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: AccessClaims,
}

pub struct Authority {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rng: Arc<dyn Rng>,
    hasher: Arc<dyn PasswordHasher>,
    master: MasterKey,
    settings: Settings,
    tenants: RwLock<HashMap<String, Arc<TenantState>>>,
    clients: RwLock<HashMap<(String, String), Arc<Client>>>,
    /// jti -> expiry of revoked access tokens that have not expired yet.
    revoked: RwLock<HashMap<String, i64>>,
    /// Last applied (change, revocation) sequence numbers.
    cursor: Mutex<(i64, i64)>,
    /// A real Argon2id hash to verify against when the user does not exist, so that
    /// an unknown username costs the same time as a wrong password.
    dummy_hash: String,
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
        let auth = Authority {
            store,
            clock,
            rng,
            hasher,
            master,
            settings,
            tenants: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            revoked: RwLock::new(HashMap::new()),
            cursor: Mutex::new((0, 0)),
            dummy_hash,
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

    /// On an empty store: create the default tenant and an `admin` user with a random
    /// one-time password, returned so that the caller can show it once.
    pub async fn bootstrap(&self) -> Result<Option<Secret>> {
        if !self.store.tenant_list().await?.is_empty() {
            return Ok(None);
        }
        self.create_tenant(DEFAULT_TENANT, Alg::EdDSA, None, None, None).await?;
        let password = Secret::new(secret::random_b64(self.rng.as_ref(), 18));
        self.create_user(DEFAULT_TENANT, "admin", password.clone(), vec!["admin".into()]).await?;
        Ok(Some(password))
    }

    // ----- tenants and keys -------------------------------------------------------------

    fn issuer_for(&self, t: &Tenant) -> String {
        match &t.issuer {
            Some(i) => i.clone(),
            None if t.name == DEFAULT_TENANT => self.settings.public_url.trim_end_matches('/').to_owned(),
            None => format!("{}/t/{}", self.settings.public_url.trim_end_matches('/'), t.name),
        }
    }

    async fn load_tenant(&self, name: &str) -> Result<()> {
        let Some(t) = self.store.tenant_get(name).await? else {
            self.tenants.write().map_err(lock_poisoned)?.remove(name);
            return Ok(());
        };
        let mut keys = Vec::new();
        for r in self.store.key_list(Some(name)).await? {
            keys.push(Arc::new(SigningKey::from_record(&self.master, &r)?));
        }
        let state = TenantState {
            issuer: self.issuer_for(&t),
            ring: KeyRing::new(keys),
            access_ttl: t.access_ttl.unwrap_or(self.settings.access_ttl),
            refresh_ttl: t.refresh_ttl.unwrap_or(self.settings.refresh_ttl),
            tenant: t,
        };
        self.tenants.write().map_err(lock_poisoned)?.insert(name.to_owned(), Arc::new(state));
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

    pub async fn create_tenant(
        &self,
        name: &str,
        alg: Alg,
        issuer: Option<String>,
        access_ttl: Option<i64>,
        refresh_ttl: Option<i64>,
    ) -> Result<Tenant> {
        validate_tenant_name(name)?;
        if let Some(i) = &issuer
            && !(i.starts_with("https://") || i.starts_with("http://"))
        {
            return Err(Error::invalid_request("issuer must be an http(s) URL"));
        }
        for ttl in [access_ttl, refresh_ttl].into_iter().flatten() {
            if ttl <= 0 {
                return Err(Error::invalid_request("token lifetimes must be positive"));
            }
        }
        let now = self.now();
        let t = Tenant { name: name.to_owned(), alg, issuer, access_ttl, refresh_ttl, hosts: vec![], created_at: now };
        let (_, record) = SigningKey::generate(self.rng.as_ref(), &self.master, name, alg, now, now)?;
        self.store.tenant_insert(&t, &record).await.map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => Error::conflict(format!("tenant `{name}` already exists")),
            e => e.into(),
        })?;
        self.load_tenant(name).await?;
        Ok(t)
    }

    pub async fn list_tenants(&self) -> Result<Vec<(Tenant, String)>> {
        Ok(self
            .store
            .tenant_list()
            .await?
            .into_iter()
            .map(|t| {
                let issuer = self.issuer_for(&t);
                (t, issuer)
            })
            .collect())
    }

    /// Add a new signing key; it is published at once and signs after the
    /// pre-publication delay.
    pub async fn rotate_key(&self, tenant: &str) -> Result<KeyInfo> {
        let ts = self.tenant(tenant)?;
        let now = self.now();
        let activates = now + self.settings.key_prepublish;
        let (key, record) =
            SigningKey::generate(self.rng.as_ref(), &self.master, tenant, ts.tenant.alg, now, activates)?;
        self.store.key_insert(&record).await?;
        self.load_tenant(tenant).await?;
        Ok(KeyInfo {
            kid: key.kid.clone(),
            alg: key.alg.to_string(),
            status: if activates > now { KeyStatus::Pending.as_str() } else { KeyStatus::Active.as_str() },
            created_at: now,
            activates_at: activates,
        })
    }

    pub fn list_keys(&self, tenant: &str) -> Result<Vec<KeyInfo>> {
        let ts = self.tenant(tenant)?;
        let now = self.now();
        Ok(ts
            .ring
            .keys()
            .iter()
            .enumerate()
            .map(|(i, k)| KeyInfo {
                kid: k.kid.clone(),
                alg: k.alg.to_string(),
                status: ts.ring.status(i, now, ts.access_ttl).as_str(),
                created_at: k.created_at,
                activates_at: k.activates_at,
            })
            .collect())
    }

    /// The tenant's JWK Set: every key that is pending, active, or retiring.
    pub fn jwks(&self, tenant: &str) -> Result<Value> {
        let ts = self.tenant(tenant)?;
        let keys: Vec<&Value> = ts.ring.published(self.now(), ts.access_ttl).map(|k| k.jwk()).collect();
        Ok(json!({ "keys": keys }))
    }

    // ----- users and clients ------------------------------------------------------------

    pub async fn create_user(
        &self,
        tenant: &str,
        username: &str,
        password: Secret,
        roles: Vec<String>,
    ) -> Result<User> {
        self.tenant(tenant)?;
        validate_username(username)?;
        secret::check_password_policy(password.expose())?;
        if self.store.user_get(tenant, username).await?.is_some() {
            return Err(Error::conflict(format!("user `{username}` already exists in tenant `{tenant}`")));
        }
        let user = User {
            tenant: tenant.to_owned(),
            username: username.to_owned(),
            password_hash: self.hasher.hash(password).await?,
            roles,
            disabled: false,
            created_at: self.now(),
        };
        self.store.user_insert(&user).await.map_err(|e| match e {
            crate::store::StoreError::Conflict(_) => {
                Error::conflict(format!("user `{username}` already exists in tenant `{tenant}`"))
            }
            e => e.into(),
        })?;
        Ok(user)
    }

    pub async fn list_users(&self, tenant: &str) -> Result<Vec<User>> {
        self.tenant(tenant)?;
        Ok(self.store.user_list(tenant).await?)
    }

    pub async fn set_user_disabled(&self, tenant: &str, username: &str, disabled: bool) -> Result<()> {
        self.tenant(tenant)?;
        if self.store.user_set_disabled(tenant, username, disabled).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("user `{username}` not found in tenant `{tenant}`")))
        }
    }

    /// Register a client. A confidential client gets a secret, returned once.
    pub async fn create_client(
        &self,
        tenant: &str,
        name: &str,
        grants: Vec<GrantType>,
        scopes: Vec<String>,
        public: bool,
        owner: Option<String>,
    ) -> Result<(Client, Option<Secret>)> {
        self.tenant(tenant)?;
        if name.trim().is_empty() || name.len() > 200 {
            return Err(Error::invalid_request("client name must be 1-200 characters"));
        }
        if grants.is_empty() {
            return Err(Error::invalid_request("a client needs at least one grant type"));
        }
        if let Some(g) = grants.iter().find(|g| !GrantType::SUPPORTED.contains(g)) {
            return Err(Error::invalid_request(format!("grant type `{g}` is not supported yet")));
        }
        if public && grants.contains(&GrantType::ClientCredentials) {
            return Err(Error::invalid_request("a public client cannot use client_credentials"));
        }
        let scopes = parse_scope(&scopes.join(" ")).map_err(|e| Error::invalid_request(e.description))?;
        let secret = (!public).then(|| secret::generate_secret(self.rng.as_ref(), prefix::CLIENT_SECRET));
        let client = Client {
            tenant: tenant.to_owned(),
            client_id: secret::random_b64(self.rng.as_ref(), 16),
            name: name.to_owned(),
            secret_hash: secret.as_ref().map(|s| secret::sha256_b64(s.expose())),
            grants,
            scopes,
            owner,
            created_at: self.now(),
        };
        self.store.client_insert(&client).await?;
        Ok((client, secret))
    }

    pub async fn list_clients(&self, tenant: &str) -> Result<Vec<Client>> {
        self.tenant(tenant)?;
        Ok(self.store.client_list(tenant).await?)
    }

    pub async fn delete_client(&self, tenant: &str, client_id: &str) -> Result<()> {
        self.tenant(tenant)?;
        let found = self.store.client_delete(tenant, client_id, self.now()).await?;
        self.clients.write().map_err(lock_poisoned)?.remove(&(tenant.to_owned(), client_id.to_owned()));
        if found {
            Ok(())
        } else {
            Err(Error::not_found(format!("client `{client_id}` not found in tenant `{tenant}`")))
        }
    }

    /// A client from the cache, else from the store (then cached).
    async fn client(&self, tenant: &str, client_id: &str) -> Result<Option<Arc<Client>>> {
        let key = (tenant.to_owned(), client_id.to_owned());
        if let Some(c) = self.clients.read().map_err(lock_poisoned)?.get(&key) {
            return Ok(Some(c.clone()));
        }
        if client_id.is_empty() || client_id.len() > 128 {
            return Ok(None);
        }
        let Some(c) = self.store.client_get(tenant, client_id).await? else {
            return Ok(None);
        };
        let c = Arc::new(c);
        self.clients.write().map_err(lock_poisoned)?.insert(key, c.clone());
        Ok(Some(c))
    }

    /// Authenticate the calling client (RFC 6749 section 2.3).
    pub async fn authenticate_client(&self, tenant: &str, auth: &ClientAuth) -> Result<Arc<Client>> {
        let Some(id) = auth.client_id() else {
            return Err(Error::invalid_client("client authentication is required"));
        };
        let bad = || Error::invalid_client("unknown client or invalid client credentials");
        let client = self.client(tenant, id).await?;
        match (auth, client) {
            (ClientAuth::Basic { secret, .. } | ClientAuth::Post { secret, .. }, Some(c)) => match &c.secret_hash {
                Some(h) if secret::verify_sha256(secret.expose(), h) => Ok(c),
                _ => Err(bad()),
            },
            (ClientAuth::None { .. }, Some(c)) if c.is_public() => Ok(c),
            (ClientAuth::None { .. }, Some(_)) => Err(Error::invalid_client("client authentication is required")),
            (ClientAuth::Basic { secret, .. } | ClientAuth::Post { secret, .. }, None) => {
                // Same work as a real check, so that unknown ids do not answer faster.
                let _ = secret::verify_sha256(secret.expose(), "");
                Err(bad())
            }
            (ClientAuth::Absent, _) | (ClientAuth::None { .. }, None) => Err(bad()),
        }
    }

    // ----- the token endpoint -----------------------------------------------------------

    fn grant_scope(allowed: &[String], requested: Option<&str>) -> Result<Option<String>> {
        let scopes = match requested {
            None => allowed.to_vec(),
            Some(s) => {
                let req = parse_scope(s)?;
                if let Some(bad) = req.iter().find(|r| !allowed.contains(r)) {
                    return Err(Error::invalid_scope(format!("scope `{bad}` is not allowed for this client")));
                }
                req
            }
        };
        Ok((!scopes.is_empty()).then(|| scopes.join(" ")))
    }

    /// Mint an access token, signed by the tenant's current key.
    pub fn mint_access(&self, ts: &TenantState, m: Mint<'_>, now: i64) -> Result<(String, AccessClaims)> {
        let key = ts.ring.signing_key(now).ok_or_else(|| Error::unavailable("the tenant has no active signing key"))?;
        let claims = AccessClaims {
            iss: ts.issuer.clone(),
            sub: m.sub.to_owned(),
            aud: m.audience.unwrap_or(&ts.issuer).to_owned(),
            exp: now + ts.access_ttl,
            iat: now,
            jti: m.jti,
            client_id: m.client_id.to_owned(),
            scope: m.scope,
            tenant: ts.tenant.name.clone(),
            extra: m.extra,
        };
        Ok((token::mint(key, &claims)?, claims))
    }

    /// The token endpoint: authenticate the client, then run the grant.
    pub async fn token(&self, tenant: &str, auth: &ClientAuth, req: TokenRequest) -> Result<IssuedTokens> {
        let ts = self.tenant(tenant)?;
        let client = self.authenticate_client(tenant, auth).await?;
        let grant_type = match &req.grant {
            Grant::ClientCredentials => GrantType::ClientCredentials,
            Grant::Password { .. } => GrantType::Password,
            Grant::RefreshToken { .. } => GrantType::RefreshToken,
        };
        if !client.allows(grant_type) {
            return Err(Error::unauthorized_client(format!(
                "this client is not allowed to use the {grant_type} grant"
            )));
        }
        if let Some(r) = &req.resource
            && !(r.starts_with("https://") || r.starts_with("http://"))
        {
            return Err(Error::new(ErrorKind::InvalidTarget, "resource must be an absolute URI"));
        }
        let now = self.now();
        match req.grant {
            Grant::ClientCredentials => {
                let scope = Self::grant_scope(&client.scopes, req.scope.as_deref())?;
                let jti = secret::random_b64(self.rng.as_ref(), 16);
                let mint = Mint {
                    sub: &client.client_id,
                    client_id: &client.client_id,
                    scope,
                    audience: req.resource.as_deref(),
                    extra: Map::new(),
                    jti,
                };
                let (access, claims) = self.mint_access(&ts, mint, now)?;
                Ok(IssuedTokens {
                    access_token: access,
                    expires_in: ts.access_ttl,
                    expires_at: claims.exp,
                    issued_at: now,
                    jti: claims.jti,
                    scope: claims.scope,
                    refresh_token: None,
                    refresh_expires_in: None,
                })
            }
            Grant::Password { username, password } => {
                let scope = Self::grant_scope(&client.scopes, req.scope.as_deref())?;
                let user = self.check_password(tenant, &username, password).await?;
                self.issue_for_user(&ts, &client, &user.username, scope, req.resource.as_deref(), now).await
            }
            Grant::RefreshToken { refresh_token } => {
                self.refresh(&ts, &client, refresh_token, req.scope.as_deref(), now).await
            }
        }
    }

    /// Check a user's password; unknown user, wrong password and disabled account are all
    /// `invalid_grant`, and take the same time.
    pub async fn check_password(&self, tenant: &str, username: &str, password: Secret) -> Result<User> {
        let user = if username.is_empty() || username.len() > 128 {
            None
        } else {
            self.store.user_get(tenant, username).await?
        };
        let phc = user.as_ref().map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let ok = self.hasher.verify(phc, password).await;
        match user {
            Some(u) if ok && !u.disabled => Ok(u),
            Some(u) if ok && u.disabled => Err(Error::invalid_grant("the user account is disabled")),
            _ => Err(Error::invalid_grant("invalid username or password")),
        }
    }

    async fn issue_for_user(
        &self,
        ts: &TenantState,
        client: &Client,
        username: &str,
        scope: Option<String>,
        audience: Option<&str>,
        now: i64,
    ) -> Result<IssuedTokens> {
        let jti = secret::random_b64(self.rng.as_ref(), 16);
        let refresh = if client.allows(GrantType::RefreshToken) {
            let rt = secret::generate_secret(self.rng.as_ref(), prefix::REFRESH_TOKEN);
            let record = RefreshRecord {
                token_hash: secret::sha256_b64(rt.expose()),
                family_id: secret::random_b64(self.rng.as_ref(), 16),
                tenant: ts.tenant.name.clone(),
                client_id: client.client_id.clone(),
                subject: username.to_owned(),
                username: Some(username.to_owned()),
                scope: scope.clone(),
                audience: audience.unwrap_or(&ts.issuer).to_owned(),
                issued_at: now,
                expires_at: now + ts.refresh_ttl,
                used_at: None,
                family_revoked: false,
                access_jti: jti.clone(),
                access_exp: now + ts.access_ttl,
            };
            self.store.refresh_insert(&record).await?;
            Some(rt)
        } else {
            None
        };
        let mint = Mint { sub: username, client_id: &client.client_id, scope, audience, extra: Map::new(), jti };
        let (access, claims) = self.mint_access(ts, mint, now)?;
        Ok(IssuedTokens {
            access_token: access,
            expires_in: ts.access_ttl,
            expires_at: claims.exp,
            issued_at: now,
            jti: claims.jti,
            scope: claims.scope,
            refresh_expires_in: refresh.as_ref().map(|_| ts.refresh_ttl),
            refresh_token: refresh,
        })
    }

    async fn refresh(
        &self,
        ts: &TenantState,
        client: &Client,
        presented: Secret,
        requested_scope: Option<&str>,
        now: i64,
    ) -> Result<IssuedTokens> {
        let invalid = || Error::invalid_grant("the refresh token is invalid, expired or revoked");
        let hash = secret::sha256_b64(presented.expose());
        let Some(rec) = self.store.refresh_get(&hash).await? else {
            return Err(invalid());
        };
        if rec.tenant != ts.tenant.name || rec.client_id != client.client_id {
            return Err(invalid());
        }
        if rec.family_revoked || rec.expires_at <= now {
            return Err(invalid());
        }
        // A narrower scope may be asked for the access token; the family keeps its scope.
        let granted: Vec<String> = rec.scope.as_deref().map(parse_scope).transpose()?.unwrap_or_default();
        let scope = Self::grant_scope(&granted, requested_scope)?;
        if let Some(u) = &rec.username {
            match self.store.user_get(&ts.tenant.name, u).await? {
                Some(user) if !user.disabled => {}
                _ => {
                    let revoked = self.store.refresh_revoke_family(&rec.family_id, now).await?;
                    self.remember_revoked(revoked)?;
                    return Err(Error::invalid_grant("the user account is disabled or gone"));
                }
            }
        }
        let rt = secret::generate_secret(self.rng.as_ref(), prefix::REFRESH_TOKEN);
        let jti = secret::random_b64(self.rng.as_ref(), 16);
        let next = NewRefresh {
            token_hash: secret::sha256_b64(rt.expose()),
            issued_at: now,
            expires_at: now + ts.refresh_ttl,
            access_jti: jti.clone(),
            access_exp: now + ts.access_ttl,
        };
        match self.store.refresh_rotate(&hash, &client.client_id, now, self.settings.refresh_grace, &next).await? {
            Rotation::Rotated | Rotation::WithinGrace => {}
            Rotation::Reused { revoked } => {
                self.remember_revoked(revoked)?;
                return Err(Error::invalid_grant(
                    "the refresh token was already used; its whole session has been revoked",
                ));
            }
            Rotation::Invalid => return Err(invalid()),
        }
        let mint = Mint {
            sub: &rec.subject,
            client_id: &client.client_id,
            scope,
            audience: Some(&rec.audience),
            extra: Map::new(),
            jti,
        };
        let (access, claims) = self.mint_access(ts, mint, now)?;
        Ok(IssuedTokens {
            access_token: access,
            expires_in: ts.access_ttl,
            expires_at: claims.exp,
            issued_at: now,
            jti: claims.jti,
            scope: claims.scope,
            refresh_token: Some(rt),
            refresh_expires_in: Some(ts.refresh_ttl),
        })
    }

    // ----- verification, introspection, revocation --------------------------------------

    fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.read().map(|r| r.contains_key(jti)).unwrap_or(true)
    }

    fn remember_revoked(&self, list: Vec<Revocation>) -> Result<()> {
        let mut set = self.revoked.write().map_err(lock_poisoned)?;
        for r in list {
            set.insert(r.jti, r.expires_at);
        }
        Ok(())
    }

    /// Verify an access token issued by `tenant`: signature with the key named by `kid`
    /// and that key's algorithm only, issuer, tenant, expiry and revocation.
    pub fn verify_access(&self, tenant: &str, token: &str) -> Result<AccessClaims, token::Invalid> {
        let ts = self.tenant(tenant).map_err(|_| token::Invalid::WrongTenant)?;
        let claims = token::verify(token, &ts.ring, &ts.issuer, &ts.tenant.name, self.now(), ts.access_ttl)?;
        if self.is_revoked(&claims.jti) {
            return Err(token::Invalid::Revoked);
        }
        Ok(claims)
    }

    /// RFC 7662: `None` means `{"active": false}`.
    pub async fn introspect(
        &self,
        tenant: &str,
        auth: &ClientAuth,
        token: &str,
        _hint: Option<&str>,
    ) -> Result<Option<Introspection>> {
        let ts = self.tenant(tenant)?;
        let caller = self.authenticate_client(tenant, auth).await?;
        if caller.is_public() {
            return Err(Error::invalid_client("introspection requires a confidential client"));
        }
        if token.starts_with(prefix::REFRESH_TOKEN) {
            return self.introspect_refresh(&ts, token).await;
        }
        let Ok(c) = self.verify_access(tenant, token) else {
            return Ok(None);
        };
        let mut out = Map::new();
        out.insert("active".into(), true.into());
        if let Some(s) = &c.scope {
            out.insert("scope".into(), s.clone().into());
        }
        if c.sub != c.client_id {
            out.insert("username".into(), c.sub.clone().into());
        }
        out.insert("client_id".into(), c.client_id.into());
        out.insert("token_type".into(), "Bearer".into());
        out.insert("exp".into(), c.exp.into());
        out.insert("iat".into(), c.iat.into());
        out.insert("sub".into(), c.sub.into());
        out.insert("aud".into(), c.aud.into());
        out.insert("iss".into(), c.iss.into());
        out.insert("jti".into(), c.jti.into());
        out.insert("tenant".into(), c.tenant.into());
        for (k, v) in c.extra {
            out.entry(k).or_insert(v);
        }
        Ok(Some(out))
    }

    async fn introspect_refresh(&self, ts: &TenantState, token: &str) -> Result<Option<Introspection>> {
        let now = self.now();
        let Some(r) = self.store.refresh_get(&secret::sha256_b64(token)).await? else {
            return Ok(None);
        };
        if r.tenant != ts.tenant.name || r.family_revoked || r.used_at.is_some() || r.expires_at <= now {
            return Ok(None);
        }
        let mut out = Map::new();
        out.insert("active".into(), true.into());
        if let Some(s) = r.scope {
            out.insert("scope".into(), s.into());
        }
        out.insert("client_id".into(), r.client_id.into());
        if let Some(u) = r.username {
            out.insert("username".into(), u.into());
        }
        out.insert("token_type".into(), "refresh_token".into());
        out.insert("exp".into(), r.expires_at.into());
        out.insert("iat".into(), r.issued_at.into());
        out.insert("sub".into(), r.subject.into());
        out.insert("iss".into(), ts.issuer.clone().into());
        out.insert("tenant".into(), r.tenant.into());
        Ok(Some(out))
    }

    /// RFC 7009: revoke a token issued to the calling client. Unknown, foreign or invalid
    /// tokens are answered with success and change nothing (section 2.2).
    pub async fn revoke(&self, tenant: &str, auth: &ClientAuth, token: &str, _hint: Option<&str>) -> Result<()> {
        let ts = self.tenant(tenant)?;
        let caller = self.authenticate_client(tenant, auth).await?;
        let now = self.now();
        if token.starts_with(prefix::REFRESH_TOKEN) {
            if let Some(r) = self.store.refresh_get(&secret::sha256_b64(token)).await?
                && r.tenant == ts.tenant.name
                && r.client_id == caller.client_id
            {
                let revoked = self.store.refresh_revoke_family(&r.family_id, now).await?;
                self.remember_revoked(revoked)?;
            }
            return Ok(());
        }
        if let Ok(c) = self.verify_access(tenant, token)
            && c.client_id == caller.client_id
        {
            self.revoke_access(&c).await?;
        }
        Ok(())
    }

    /// Put an access token on the revocation list; returns once that is durable.
    pub async fn revoke_access(&self, claims: &AccessClaims) -> Result<()> {
        let r = Revocation { tenant: claims.tenant.clone(), jti: claims.jti.clone(), expires_at: claims.exp };
        self.store.revocation_insert(&r).await?;
        self.remember_revoked(vec![r])
    }

    /// Verify a token against whichever tenant holds its `kid` (for `token decode`).
    pub fn decode_any(&self, token: &str) -> Result<(token::Header, Value, bool)> {
        let parsed = token::parse(token).map_err(|_| Error::invalid_request("not a compact JWS"))?;
        let tenants = self.tenants.read().map_err(lock_poisoned)?;
        let valid = parsed.header.kid.as_deref().is_some_and(|kid| {
            tenants.values().any(|ts| ts.ring.find(kid).is_some_and(|k| parsed.verify_with(k).is_ok()))
        });
        Ok((parsed.header.clone(), parsed.claims.clone(), valid))
    }

    // ----- keeping in step with the store -------------------------------------------------

    async fn sync_revocations(&self) -> Result<()> {
        let after = self.cursor.lock().map_err(lock_poisoned)?.1;
        let rows = self.store.revocations_since(after).await?;
        let Some(last) = rows.last().map(|(s, _)| *s) else {
            return Ok(());
        };
        let now = self.now();
        self.remember_revoked(rows.into_iter().map(|(_, r)| r).filter(|r| r.expires_at > now).collect())?;
        self.cursor.lock().map_err(lock_poisoned)?.1 = last;
        Ok(())
    }

    /// Apply what changed in the store since the last call: tenants, keys and clients
    /// changed by admin commands or other nodes, and new revocations.
    pub async fn sync(&self) -> Result<()> {
        let after = self.cursor.lock().map_err(lock_poisoned)?.0;
        let changes = self.store.changes_since(after).await?;
        if let Some(last) = changes.last().map(|(s, _)| *s) {
            for (_, c) in changes {
                match c {
                    Change::Tenant { tenant } | Change::Key { tenant } => self.load_tenant(&tenant).await?,
                    Change::Client { tenant, client_id } => {
                        self.clients.write().map_err(lock_poisoned)?.remove(&(tenant, client_id));
                    }
                    Change::User { .. } => {}
                }
            }
            self.cursor.lock().map_err(lock_poisoned)?.0 = last;
        }
        self.sync_revocations().await
    }

    /// Forget revocations of tokens that have expired anyway (memory and store).
    pub async fn purge_expired(&self) -> Result<u64> {
        let now = self.now();
        self.revoked.write().map_err(lock_poisoned)?.retain(|_, exp| *exp > now);
        Ok(self.store.purge_expired(now).await?)
    }

    pub fn revoked_count(&self) -> usize {
        self.revoked.read().map(|r| r.len()).unwrap_or(0)
    }

    /// Is the store answering?
    pub async fn ready(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }
}
