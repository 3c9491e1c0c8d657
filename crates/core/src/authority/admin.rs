//! Administration: tenants and their policy, signing keys, users, clients.

use super::access::{Action, Actor};
use super::manage::ClientUpdate;
use super::{Authority, DEFAULT_TENANT, KeyInfo, TenantState, lock_poisoned};
use crate::audit::EventKind;
use crate::error::{Error, Result};
use crate::keys::{Alg, KeyStatus, SigningKey};
use crate::name::{ClientId, RedirectUri, TenantName, Username};
use crate::principal::{Client, GrantType, Profile, User, parse_scope};
use crate::secret::{self, Secret, prefix};
use crate::store::StoreError;
use crate::tenant::{Tenant, normalize_host};
use serde_json::{Value, json};
use std::sync::Arc;

/// Changes to a tenant's policy; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TenantPolicy {
    pub access_ttl: Option<i64>,
    pub refresh_ttl: Option<i64>,
    pub allowed_grants: Option<Vec<GrantType>>,
    /// How many clients a user who is not an administrator may own ([`Tenant::max_user_clients`]).
    pub max_user_clients: Option<i64>,
    /// The host names that select the tenant (replacing the list).
    pub hosts: Option<Vec<String>>,
    /// A new signing algorithm: a key of it is added at once ([`Authority::rotate_key`]).
    pub alg: Option<Alg>,
    /// Whether every user must sign in with a second factor ([`Tenant::totp_required`]).
    pub totp_required: Option<bool>,
}

/// A client to register.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub tenant: String,
    pub name: String,
    pub grants: Vec<GrantType>,
    pub scopes: Vec<String>,
    pub public: bool,
    pub owner: Option<Username>,
    /// Chosen by the caller where an API allows it; generated otherwise.
    pub client_id: Option<String>,
    /// Chosen by the caller where an API allows it (at least 24 characters); generated otherwise.
    /// A chosen secret may be weak, so it is stored as an Argon2id hash (salted, slow); a
    /// generated one has 256 bits of entropy and is stored as SHA-256 (fast to check).
    pub secret: Option<Secret>,
    pub callback_url: Option<String>,
    /// Exact redirect URIs for the authorization code flow (besides the callback URL).
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    /// The deployment's own application: people are not asked for consent.
    pub first_party: bool,
    pub description: Option<String>,
}

impl NewClient {
    pub fn new(tenant: &str, name: &str, grants: Vec<GrantType>) -> Self {
        NewClient {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            grants,
            scopes: vec![],
            public: false,
            owner: None,
            client_id: None,
            secret: None,
            callback_url: None,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            first_party: false,
            description: None,
        }
    }
}

fn conflict_as(what: String) -> impl FnOnce(StoreError) -> Error {
    move |e| match e {
        StoreError::Conflict(_) => Error::conflict(what),
        e => e.into(),
    }
}

fn check_ttl(v: Option<i64>) -> Result<()> {
    match v {
        Some(t) if t <= 0 || t > 10 * 365 * 86400 => Err(Error::invalid_request("token lifetimes must be positive")),
        _ => Ok(()),
    }
}

/// Redirect URIs as registered: each an exact URI without a fragment (RFC 6749 section 3.1.2).
pub(super) fn redirect_uri_list(uris: &[String]) -> Result<Vec<RedirectUri>> {
    let mut out: Vec<RedirectUri> = Vec::new();
    for u in uris {
        let uri = RedirectUri::parse(u)?;
        if u.contains('#') {
            return Err(Error::invalid_request(format!("redirect URI `{u}` must not have a fragment")));
        }
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

fn check_url(name: &str, v: &Option<String>) -> Result<()> {
    match v {
        Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) || u.len() > 2000 => {
            Err(Error::invalid_request(format!("{name} must be an http(s) URL")))
        }
        _ => Ok(()),
    }
}

impl Authority {
    /// Host names for tenant `tenant`, normalised; none may belong to another tenant.
    fn check_hosts(&self, tenant: &str, hosts: &[String]) -> Result<Vec<String>> {
        let hosts: Vec<String> = hosts.iter().map(|h| normalize_host(h)).collect();
        for h in &hosts {
            if h.is_empty() || h.contains('/') {
                return Err(Error::invalid_request(format!("invalid host name `{h}`")).at("hosts"));
            }
            if let Some(other) = self.tenant_for_host(h).filter(|o| o != tenant) {
                return Err(Error::conflict(format!("host `{h}` already belongs to tenant `{other}`")));
            }
        }
        Ok(hosts)
    }

    /// On an empty store: create the default tenant and an `admin` user with a random
    /// one-time password, returned so that the caller can show it once.
    pub async fn bootstrap(&self) -> Result<Option<Secret>> {
        if !self.store.tenant_list().await?.is_empty() {
            return Ok(None);
        }
        match self.create_tenant(&Actor::Operator, DEFAULT_TENANT, Alg::EdDSA, None, None, None, vec![]).await {
            Ok(_) => {}
            // Another node bootstrapped the same database a moment ago: take its state.
            Err(e) if e.kind == crate::ErrorKind::Conflict => {
                self.sync().await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
        let password = Secret::new(secret::random_b64(self.rng.as_ref(), 18));
        let admin = vec!["admin".into()];
        self.create_user(&Actor::Operator, DEFAULT_TENANT, "admin", password.clone(), admin, Profile::default())
            .await?;
        Ok(Some(password))
    }

    // ----- tenants and keys -------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub async fn create_tenant(
        &self,
        actor: &Actor<'_>,
        name: &str,
        alg: Alg,
        issuer: Option<String>,
        access_ttl: Option<i64>,
        refresh_ttl: Option<i64>,
        hosts: Vec<String>,
    ) -> Result<Tenant> {
        let done = async {
            self.authorize(actor, name, Action::ManageTenants).await?;
            let tenant_name = TenantName::parse(name)?;
            check_url("issuer", &issuer)?;
            check_ttl(access_ttl)?;
            check_ttl(refresh_ttl)?;
            let hosts = self.check_hosts(name, &hosts)?;
            let now = self.now();
            let t = Tenant {
                name: tenant_name,
                alg,
                issuer,
                access_ttl,
                refresh_ttl,
                hosts,
                allowed_grants: None,
                created_at: now,
                max_user_clients: None,
                longest_access_ttl: None,
                totp_required: false,
            };
            let (_, record) = SigningKey::generate(self.rng.as_ref(), &self.master, name, alg, now, now)?;
            self.store
                .tenant_insert(&t, &record)
                .await
                .map_err(conflict_as(format!("tenant `{name}` already exists")))?;
            self.load_tenant(&t.name).await?;
            Ok(t)
        }
        .await;
        self.record_change(actor, name, EventKind::TenantCreate, name, &done);
        done
    }

    pub async fn list_tenants(&self, actor: &Actor<'_>) -> Result<Vec<(Tenant, String)>> {
        self.authorize(actor, DEFAULT_TENANT, Action::ManageTenants).await?;
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

    /// A tenant's settings, for an actor who may read them.
    pub async fn tenant_settings(&self, actor: &Actor<'_>, tenant: &str) -> Result<Arc<TenantState>> {
        self.authorize(actor, tenant, Action::ReadTenant).await?;
        self.tenant(tenant)
    }

    /// Change a tenant's token lifetimes, allowed grants and client policy. The longest
    /// access lifetime the tenant has had is kept, for key retirement ([`TenantState::key_ttl`]).
    pub async fn update_tenant_policy(&self, actor: &Actor<'_>, tenant: &str, policy: TenantPolicy) -> Result<Tenant> {
        let done = async {
            self.authorize(actor, tenant, Action::ConfigureTenant).await?;
            let ts = self.tenant(tenant)?;
            // From the store, not the cache: a change just made on another node (or by the
            // CLI) is kept rather than overwritten by this node's older copy.
            let mut t = self
                .store
                .tenant_get(&ts.tenant.name)
                .await?
                .ok_or_else(|| Error::not_found(format!("tenant `{tenant}` not found")))?;
            check_ttl(policy.access_ttl).map_err(|e| e.at("access_ttl"))?;
            check_ttl(policy.refresh_ttl).map_err(|e| e.at("refresh_ttl"))?;
            if let Some(a) = policy.access_ttl {
                t.access_ttl = Some(a);
                // Tokens issued under the lifetime in force until now outlive a lowered one.
                t.longest_access_ttl = Some(ts.key_ttl.max(a));
            }
            if let Some(n) = policy.max_user_clients {
                if !(0..=10_000).contains(&n) {
                    return Err(Error::invalid_request("max_user_clients must be 0-10000").at("max_user_clients"));
                }
                t.max_user_clients = Some(n);
            }
            if let Some(r) = policy.refresh_ttl {
                t.refresh_ttl = Some(r);
            }
            if let Some(g) = policy.allowed_grants {
                t.allowed_grants = Some(g);
            }
            if let Some(r) = policy.totp_required {
                t.totp_required = r;
            }
            if let Some(h) = policy.hosts {
                t.hosts = self.check_hosts(tenant, &h)?;
            }
            let new_alg = policy.alg.filter(|a| *a != t.alg);
            if let Some(a) = new_alg {
                t.alg = a;
            }
            self.store.tenant_update(&t).await?;
            self.load_tenant(&t.name).await?;
            if new_alg.is_some() {
                self.rotate_key(actor, tenant).await?;
            }
            Ok(t)
        }
        .await;
        self.record_change(actor, tenant, EventKind::TenantUpdate, tenant, &done);
        done
    }

    /// Add a new signing key; it is published at once and signs after the
    /// pre-publication delay.
    pub async fn rotate_key(&self, actor: &Actor<'_>, tenant: &str) -> Result<KeyInfo> {
        let done = self.add_key(actor, tenant).await;
        let e = self.by(actor, tenant, EventKind::KeyRotate).subject(tenant);
        self.record(match &done {
            Ok(k) => e.detail(format!("kid={} alg={}", k.kid, k.alg)),
            Err(err) => e.failed(err),
        });
        done
    }

    async fn add_key(&self, actor: &Actor<'_>, tenant: &str) -> Result<KeyInfo> {
        self.authorize(actor, tenant, Action::ConfigureTenant).await?;
        let ts = self.tenant(tenant)?;
        let now = self.now();
        let activates = now + self.settings.key_prepublish;
        let (key, record) =
            SigningKey::generate(self.rng.as_ref(), &self.master, tenant, ts.tenant.alg, now, activates)?;
        self.store.key_insert(&record).await?;
        self.load_tenant(&ts.tenant.name).await?;
        Ok(KeyInfo {
            kid: key.kid.clone(),
            alg: key.alg.to_string(),
            status: if activates > now { KeyStatus::Pending.as_str() } else { KeyStatus::Active.as_str() },
            created_at: now,
            activates_at: activates,
        })
    }

    /// Retire a key before its time (it leaked, say): it leaves the JWK Set, its private part
    /// is deleted, and tokens it signed no longer verify, at every node. The key that signs
    /// now cannot be retired: rotate first, and retire it once the new key signs.
    pub async fn retire_key(&self, actor: &Actor<'_>, tenant: &str, kid: &str) -> Result<KeyInfo> {
        let done = async {
            let keys = self.list_keys(actor, tenant).await?;
            let Some(info) = keys.into_iter().find(|k| k.kid == kid) else {
                return Err(Error::not_found(format!("no key `{kid}` in tenant `{tenant}`")));
            };
            if info.status == KeyStatus::Active.as_str() {
                return Err(Error::conflict(format!(
                    "key `{kid}` signs the tenant's tokens now: rotate first, then retire it once the new key signs \
                     (after the pre-publication delay of {} s)",
                    self.settings.key_prepublish
                )));
            }
            self.authorize(actor, tenant, Action::ConfigureTenant).await?;
            let ts = self.tenant(tenant)?;
            if !self.store.key_delete(&ts.tenant.name, kid).await? {
                return Err(Error::not_found(format!("no key `{kid}` in tenant `{tenant}`")));
            }
            self.load_tenant(&ts.tenant.name).await?;
            Ok(info)
        }
        .await;
        let e = self.by(actor, tenant, EventKind::KeyRetire).subject(tenant);
        self.record(e.detail(format!("kid={kid}")).outcome_of(&done));
        done
    }

    pub async fn list_keys(&self, actor: &Actor<'_>, tenant: &str) -> Result<Vec<KeyInfo>> {
        self.authorize(actor, tenant, Action::ReadTenant).await?;
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
                status: ts.ring.status(i, now, ts.key_ttl).as_str(),
                created_at: k.created_at,
                activates_at: k.activates_at,
            })
            .collect())
    }

    /// The tenant's JWK Set: every key that is pending, active, or retiring.
    pub fn jwks(&self, tenant: &str) -> Result<Value> {
        let ts = self.tenant(tenant)?;
        Ok(jwk_set(&ts, self.now()).1)
    }

    /// The JWK Set of [`Authority::jwks`], serialized: made once per tenant and key change,
    /// not per request.
    pub fn jwks_json(&self, tenant: &str) -> Result<Arc<[u8]>> {
        let ts = self.tenant(tenant)?;
        let now = self.now();
        let published = ts.ring.published(now, ts.key_ttl).count();
        if let Some((n, doc)) = ts.jwks.read().map_err(lock_poisoned)?.as_ref()
            && *n == published
        {
            return Ok(doc.clone());
        }
        let (n, set) = jwk_set(&ts, now);
        let doc: Arc<[u8]> =
            serde_json::to_vec(&set).map_err(|e| Error::internal(format!("JWKS serialization: {e}")))?.into();
        *ts.jwks.write().map_err(lock_poisoned)? = Some((n, doc.clone()));
        Ok(doc)
    }

    // ----- users ------------------------------------------------------------------------

    pub async fn create_user(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        password: Secret,
        roles: Vec<String>,
        profile: Profile,
    ) -> Result<User> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageUsers).await?;
            let ts = self.tenant(tenant)?;
            let username = &Username::parse(username).map_err(|e| e.at("username"))?;
            secret::check_password_policy(password.expose()).map_err(|e| e.at("password"))?;
            self.may_grant_roles(actor, tenant, &roles).await?;
            let exists = || Error::conflict(format!("user `{username}` already exists in tenant `{tenant}`"));
            if self.store.user_get(&ts.tenant.name, username).await?.is_some() {
                return Err(exists());
            }
            let user = User {
                tenant: ts.tenant.name.clone(),
                username: username.clone(),
                password_hash: self.hasher.hash(password).await?,
                roles,
                disabled: false,
                created_at: self.now(),
                profile,
                totp: Default::default(),
            };
            self.store.user_insert(&user).await.map_err(conflict_as(exists().description))?;
            Ok(user)
        }
        .await;
        self.record_change(actor, tenant, EventKind::UserCreate, username, &done);
        done
    }

    /// A user's record, for an actor who may read users.
    pub async fn get_user(&self, actor: &Actor<'_>, tenant: &str, username: &str) -> Result<User> {
        self.authorize(actor, tenant, Action::ReadUsers).await?;
        self.user_named(tenant, username).await
    }

    /// A user of the tenant, or `not_found` (no access decision: for the engine itself).
    pub(super) async fn user_named(&self, tenant: &str, username: &str) -> Result<User> {
        let ts = self.tenant(tenant)?;
        let not_found = || Error::not_found(format!("user `{username}` not found"));
        // A name that breaks the rules names nobody.
        let Ok(username) = Username::parse(username) else {
            return Err(not_found());
        };
        self.store.user_get(&ts.tenant.name, &username).await?.ok_or_else(not_found)
    }

    /// The stored user named `username` in `tenant`, if both names keep the rules (a name
    /// that does not names nobody: the caller answers as for an unknown user).
    pub(super) async fn find_user(&self, tenant: &str, username: &str) -> Result<Option<User>> {
        match (TenantName::parse(tenant), Username::parse(username)) {
            (Ok(tenant), Ok(username)) => Ok(self.store.user_get(&tenant, &username).await?),
            _ => Ok(None),
        }
    }

    pub async fn list_users(&self, actor: &Actor<'_>, tenant: &str) -> Result<Vec<User>> {
        self.authorize(actor, tenant, Action::ReadUsers).await?;
        let ts = self.tenant(tenant)?;
        Ok(self.store.user_list(&ts.tenant.name).await?)
    }

    pub async fn set_user_disabled(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        disabled: bool,
    ) -> Result<()> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageUsers).await?;
            let ts = self.tenant(tenant)?;
            let found = match Username::parse(username) {
                Ok(name) => self.store.user_set_disabled(&ts.tenant.name, &name, disabled).await?,
                Err(_) => false,
            };
            if found {
                Ok(())
            } else {
                Err(Error::not_found(format!("user `{username}` not found in tenant `{tenant}`")))
            }
        }
        .await;
        let event = if disabled { EventKind::UserDisable } else { EventKind::UserEnable };
        self.record_change(actor, tenant, event, username, &done);
        done
    }

    // ----- clients ----------------------------------------------------------------------

    /// Register a client. A confidential client gets a secret, returned once. A user who
    /// asks (through a front's client API) owns it; a tenant administrator may always, another
    /// user only while they own fewer clients than the tenant allows
    /// ([`Tenant::max_user_clients`], default none).
    pub async fn create_client(&self, actor: &Actor<'_>, spec: NewClient) -> Result<(Client, Option<Secret>)> {
        let tenant = spec.tenant.clone();
        let named = spec.client_id.clone();
        let done = self.add_client(actor, spec).await;
        let e = self.by(actor, &tenant, EventKind::ClientCreate);
        self.record(match &done {
            Ok((c, _)) => e
                .subject(c.client_id.as_str())
                .client(Some(&c.client_id))
                .detail(format!("grants={}", c.grants.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(","))),
            Err(err) => match named {
                Some(id) => e.subject(id).failed(err),
                None => e.failed(err),
            },
        });
        done
    }

    async fn add_client(&self, actor: &Actor<'_>, mut spec: NewClient) -> Result<(Client, Option<Secret>)> {
        self.authorize(actor, &spec.tenant, Action::CreateClient).await?;
        if let Actor::User(u) = actor {
            spec.owner = Some(u.username.clone());
        }
        let tenant = spec.tenant.as_str();
        let ts = self.tenant(tenant)?;
        if spec.name.trim().is_empty() || spec.name.len() > 200 {
            return Err(Error::invalid_request("client name must be 1-200 characters"));
        }
        if spec.grants.is_empty() {
            return Err(Error::invalid_request("a client needs at least one grant type"));
        }
        if spec.public && spec.grants.contains(&GrantType::ClientCredentials) {
            return Err(Error::invalid_request("a public client cannot use client_credentials"));
        }
        let callback_url = spec.callback_url.as_deref().map(RedirectUri::parse).transpose()?;
        let redirect_uris = redirect_uri_list(&spec.redirect_uris).map_err(|e| e.at("redirect_uris"))?;
        let post_logout_redirect_uris =
            redirect_uri_list(&spec.post_logout_redirect_uris).map_err(|e| e.at("post_logout_redirect_uris"))?;
        let client_id = spec.client_id.as_deref().map(ClientId::parse).transpose()?;
        let (secret, secret_hash) = match (spec.public, spec.secret) {
            (true, _) => (None, None),
            (false, Some(s)) if s.expose().chars().count() < 24 => {
                return Err(Error::invalid_request("a chosen client secret must be at least 24 characters"));
            }
            (false, Some(s)) => {
                secret::check_password_policy(s.expose())?;
                let hash = self.hasher.hash(s.clone()).await?;
                (Some(s), Some(hash))
            }
            (false, None) => {
                let s = secret::generate_secret(self.rng.as_ref(), prefix::CLIENT_SECRET);
                let hash = secret::sha256_b64(s.expose());
                (Some(s), Some(hash))
            }
        };
        let scopes = parse_scope(&spec.scopes.join(" ")).map_err(|e| Error::invalid_request(e.description))?;
        let now = self.now();
        let client = Client {
            tenant: ts.tenant.name.clone(),
            client_id: match client_id {
                Some(id) => id,
                // 16 random bytes in base64url: always a valid client id.
                None => ClientId::parse(&secret::random_b64(self.rng.as_ref(), 16))?,
            },
            name: spec.name,
            secret_hash,
            grants: spec.grants,
            scopes,
            owner: spec.owner,
            callback_url,
            redirect_uris,
            post_logout_redirect_uris,
            first_party: spec.first_party,
            description: spec.description,
            created_at: now,
            updated_at: now,
            previous_secret: None,
        };
        self.store
            .client_insert(&client)
            .await
            .map_err(conflict_as(format!("client `{}` already exists", client.client_id)))?;
        Ok((client, secret))
    }

    /// The clients `actor` may manage: all of them for an administrator, a user's own else.
    pub async fn list_clients(&self, actor: &Actor<'_>, tenant: &str) -> Result<Vec<Client>> {
        let ts = self.tenant(tenant)?;
        let mut mine = Vec::new();
        for c in self.store.client_list(&ts.tenant.name).await? {
            match self.authorize(actor, tenant, Action::ManageClient(&c)).await {
                Ok(()) => mine.push(c),
                Err(e) if e.kind == crate::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(mine)
    }

    /// A client `actor` may manage; someone else's is `not_found`, like a missing one.
    pub async fn get_client(&self, actor: &Actor<'_>, tenant: &str, client_id: &str) -> Result<Client> {
        let ts = self.tenant(tenant)?;
        let not_found = || Error::not_found(format!("client `{client_id}` not found"));
        // An id that breaks the rules names no client.
        let Ok(id) = ClientId::parse(client_id) else {
            return Err(not_found());
        };
        let c = self.store.client_get(&ts.tenant.name, &id).await?.ok_or_else(not_found)?;
        self.authorize(actor, tenant, Action::ManageClient(&c)).await?;
        Ok(c)
    }

    /// Change a client's display name, callback URL, description, grants or scopes.
    pub async fn update_client(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        client_id: &str,
        update: ClientUpdate,
    ) -> Result<Client> {
        let done = async {
            let mut c = self.get_client(actor, tenant, client_id).await?;
            Self::apply_client_update(&mut c, update)?;
            c.updated_at = self.now();
            self.save_client(&c).await?;
            Ok(c)
        }
        .await;
        self.record_change(actor, tenant, EventKind::ClientUpdate, client_id, &done);
        done
    }

    /// Delete a client (its refresh families die with it); returns what was deleted.
    pub async fn delete_client(&self, actor: &Actor<'_>, tenant: &str, client_id: &str) -> Result<Client> {
        let done = async {
            let c = self.get_client(actor, tenant, client_id).await?;
            let found = self.store.client_delete(&c.tenant, &c.client_id, self.now()).await?;
            self.forget_client(tenant, client_id)?;
            if found {
                Ok(c)
            } else {
                Err(Error::not_found(format!("client `{client_id}` not found in tenant `{tenant}`")))
            }
        }
        .await;
        self.record_change(actor, tenant, EventKind::ClientDelete, client_id, &done);
        done
    }

    /// A client from the cache, else from the store (then cached).
    pub(super) async fn client(&self, tenant: &str, client_id: &str) -> Result<Option<Arc<Client>>> {
        if let Some(c) = self.clients.read().map_err(lock_poisoned)?.get(tenant).and_then(|m| m.get(client_id)) {
            return Ok(Some(c.clone()));
        }
        // A name that breaks the rules names nothing (like an unknown one).
        let (Ok(tenant_name), Ok(id)) = (TenantName::parse(tenant), ClientId::parse(client_id)) else {
            return Ok(None);
        };
        let Some(c) = self.store.client_get(&tenant_name, &id).await? else {
            return Ok(None);
        };
        let c = Arc::new(c);
        self.clients
            .write()
            .map_err(lock_poisoned)?
            .entry(tenant.to_owned())
            .or_default()
            .insert(client_id.to_owned(), c.clone());
        Ok(Some(c))
    }
}

/// The tenant's published keys as a JWK Set, and how many it lists.
fn jwk_set(ts: &TenantState, now: i64) -> (usize, Value) {
    let keys: Vec<&Value> = ts.ring.published(now, ts.key_ttl).map(|k| k.jwk()).collect();
    (keys.len(), json!({ "keys": keys }))
}
