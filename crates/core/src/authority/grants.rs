//! The token endpoint's grants, client authentication, and the device flow (RFC 8628).

use super::{Audience, Authority, Mint, TenantState};
use crate::audit::{ActorKind, AuditEvent, EventKind};
use crate::device;
use crate::error::{Error, ErrorKind, Result};
use crate::grant::{ClientAuth, DeviceAuthorization, Grant, IssuedTokens, TokenRequest, token_type};
use crate::name::{ClientId, Username};
use crate::principal::{Client, GrantType, User, parse_scope};
use crate::secret::{self, Secret, prefix};
use crate::store::{DevicePoll, DeviceRecord, DeviceStatus, LegacyRecord, NewRefresh, RefreshRecord, Rotation};
use crate::throttle;
use crate::token::{self, AccessClaims, ClaimSet, NewClaims, Provenance, Subject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::net::IpAddr;
use std::sync::Arc;

/// What a token exchange (RFC 8693) asks for.
pub(super) struct Exchange<'a> {
    subject_token_type: &'a str,
    requested: Option<&'a str>,
    scope: Option<&'a str>,
    /// RFC 8707 `resource`: the new token's audience (the tenant's issuer without it).
    audience: Option<&'a str>,
}

/// Who a token is for, and how it came to be.
pub(super) struct Holder<'a> {
    client: Option<&'a Client>,
    username: &'a Username,
    scope: Option<String>,
    audience: Option<&'a str>,
    claim_set: ClaimSet,
    grant_type: GrantType,
    provenance: Provenance,
    /// The session (refresh family) id, when the grant chose it beforehand.
    family_id: Option<String>,
}

impl<'a> Holder<'a> {
    pub(super) fn new(client: &'a Client, username: &'a Username, scope: Option<String>, claim_set: ClaimSet) -> Self {
        Holder {
            client: Some(client),
            username,
            scope,
            audience: None,
            claim_set,
            grant_type: GrantType::AuthorizationCode,
            provenance: Provenance::default(),
            family_id: None,
        }
    }

    /// The session the tokens belong to, chosen beforehand (revoked as a whole later).
    pub(super) fn in_session(mut self, family_id: String, provenance: Provenance) -> Self {
        self.provenance = Provenance { sid: Some(family_id.clone()), ..provenance };
        self.family_id = Some(family_id);
        self
    }
}

impl Authority {
    /// Authenticate the calling client (RFC 6749 section 2.3): a confidential client by its
    /// secret, on every call and for every grant (the device flow included); a public client
    /// by naming itself. Wrong secrets count against the brute-force limits like passwords,
    /// per client and per address `origin` (see `throttle`): a secret the client's maker chose
    /// is counted before it is checked, a generated one only when it fails.
    pub async fn authenticate_client(
        &self,
        tenant: &str,
        auth: &ClientAuth,
        origin: Option<IpAddr>,
    ) -> Result<Arc<Client>> {
        let done = self.check_client(tenant, auth, origin).await;
        if let Err(e) = &done {
            let claimed = auth.client_id();
            let e =
                AuditEvent::new(tenant, EventKind::ClientAuth, ActorKind::Anonymous, None).client(claimed).failed(e);
            self.record(match claimed {
                Some(id) => e.subject(id),
                None => e,
            });
        }
        done
    }

    async fn check_client(&self, tenant: &str, auth: &ClientAuth, origin: Option<IpAddr>) -> Result<Arc<Client>> {
        let Some(id) = auth.client_id() else {
            return Err(Error::invalid_client("client authentication is required"));
        };
        let bad = || Error::invalid_client("unknown client or invalid client credentials");
        let secret = match auth {
            ClientAuth::Basic { secret, .. } | ClientAuth::Post { secret, .. } => secret,
            ClientAuth::None { .. } => {
                return match self.client(tenant, id).await? {
                    Some(c) if c.is_public() => Ok(c),
                    Some(_) => Err(Error::invalid_client("client authentication is required")),
                    None => Err(bad()),
                };
            }
            ClientAuth::Absent => return Err(bad()),
        };
        // Made only when needed: client authentication is on the hot paths.
        let counters = || self.limits.client(tenant, id, origin);
        self.refuse_if_locked(counters)?;
        let client = self.client(tenant, id).await?;
        let Some(c) = client else {
            // Same work as a real check, so that unknown ids do not answer faster.
            let _ = secret::verify_sha256(secret.expose(), "");
            self.count_failure(&counters()).await?;
            return Err(bad());
        };
        // After a rotation, the replaced secret works until its grace period ends.
        let now = self.now();
        let previous = c.previous_secret.as_ref().filter(|(_, until)| *until > now).map(|(h, _)| h.as_str());
        let hashes = [c.secret_hash.as_deref(), previous];
        let hashes = || hashes.iter().flatten();
        // A secret the client's maker chose (Argon2id, see `NewClient::secret`) may be weak:
        // counted before it is checked, like a password.
        if hashes().any(|h| h.starts_with("$argon2")) {
            let counters = counters();
            let reserved_at = self.reserve_attempt(&counters).await?;
            let mut ok = false;
            for h in hashes() {
                if self.secret_matches(h, secret).await {
                    ok = true;
                    break;
                }
            }
            self.settle_attempt(&counters, reserved_at, !ok, ok).await?;
            return if ok { Ok(c) } else { Err(bad()) };
        }
        if hashes().any(|h| secret::verify_sha256(secret.expose(), h)) {
            return Ok(c);
        }
        self.count_failure(&counters()).await?;
        Err(bad())
    }

    /// Refuse, before any check, a credential whose `counters` this node has found past a
    /// limit (until that window ends). Lock-free, and the counters are not made, while
    /// nothing is locked.
    pub(super) fn refuse_if_locked(&self, counters: impl FnOnce() -> Vec<throttle::Counter>) -> Result<()> {
        if !self.any_locked.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let now = self.now();
        let counters = counters();
        let locked = self.locked.read().map_err(super::lock_poisoned)?;
        match counters.iter().filter_map(|c| locked.get(&c.key)).filter(|until| **until > now).max() {
            Some(until) => Err(Error::rate_limited(until - now)),
            None => Ok(()),
        }
    }

    /// Count a failed check of a server-made secret against each of `counters`; one past its
    /// limit is remembered as locked (see [`Self::refuse_if_locked`]) and the answer is
    /// `rate_limited`.
    pub(super) async fn count_failure(&self, counters: &[throttle::Counter]) -> Result<()> {
        let now = self.now();
        let mut wait = None;
        for c in counters {
            let Some(w) = self.store.attempt_reserve(std::slice::from_ref(c), now, self.limits.window).await? else {
                continue;
            };
            let mut locked = self.locked.write().map_err(super::lock_poisoned)?;
            locked.retain(|_, until| *until > now);
            locked.insert(c.key.clone(), now + w);
            self.any_locked.store(true, std::sync::atomic::Ordering::Release);
            wait = wait.max(Some(w));
        }
        wait.map_or(Ok(()), |w| Err(Error::rate_limited(w)))
    }

    /// Does `secret` match a client secret's stored hash? A secret the client's maker chose is
    /// Argon2id (see `NewClient::secret`), a generated one SHA-256.
    async fn secret_matches(&self, hash: &str, secret: &Secret) -> bool {
        if hash.starts_with("$argon2") {
            self.hasher.verify(hash.to_owned(), secret.clone()).await
        } else {
            secret::verify_sha256(secret.expose(), hash)
        }
    }

    pub(super) fn grant_scope(allowed: &[String], requested: Option<&str>) -> Result<Option<String>> {
        let Some(s) = requested else {
            return Ok((!allowed.is_empty()).then(|| allowed.join(" ")));
        };
        let req = parse_scope(s)?;
        if let Some(bad) = req.iter().find(|r| !allowed.contains(r)) {
            return Err(Error::invalid_scope(format!("scope `{bad}` is not allowed for this client")));
        }
        Ok((!req.is_empty()).then(|| req.join(" ")))
    }

    /// Mint an access token, signed by the tenant's current key.
    pub fn mint_access(&self, ts: &TenantState, m: Mint<'_>, now: i64) -> Result<IssuedTokens> {
        let key = ts.ring.signing_key(now).ok_or_else(|| Error::unavailable("the tenant has no active signing key"))?;
        let exp = m.exp.unwrap_or(now + ts.access_ttl);
        let claims = NewClaims {
            iss: &ts.issuer,
            sub: m.sub,
            aud: m.audience.unwrap_or(&ts.issuer),
            exp,
            iat: now,
            jti: &m.jti,
            client_id: m.client_id,
            scope: m.scope.as_deref(),
            tenant: &ts.tenant.name,
            username: m.username,
            provenance: m.provenance.as_ref(),
            extra: &m.extra,
        };
        let token = token::mint(key, &claims)?;
        Ok(IssuedTokens::access(token, m.jti, m.scope, exp, now))
    }

    pub(super) fn check_tenant_allows(ts: &TenantState, g: GrantType) -> Result<()> {
        if ts.tenant.allows(g) {
            Ok(())
        } else {
            Err(Error::unsupported_grant_type(format!("the {g} grant is not enabled for this tenant")))
        }
    }

    /// The token endpoint: authenticate the client, then run the grant. Failures are
    /// audited here, unless they are recorded where they happen (client authentication,
    /// sign-in) or are the device flow's normal answers while the user decides.
    pub async fn token(&self, tenant: &str, auth: &ClientAuth, req: TokenRequest) -> Result<IssuedTokens> {
        let grant_type = match &req.grant {
            Grant::ClientCredentials => GrantType::ClientCredentials,
            Grant::Password { .. } => GrantType::Password,
            Grant::RefreshToken { .. } => GrantType::RefreshToken,
            Grant::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Grant::DeviceCode { .. } => GrantType::DeviceCode,
            Grant::TokenExchange { .. } => GrantType::TokenExchange,
        };
        let done = self.grant(tenant, auth, req, grant_type).await;
        if let Err(e) = &done {
            let recorded = match e.kind {
                ErrorKind::InvalidClient | ErrorKind::AuthorizationPending | ErrorKind::SlowDown => true,
                ErrorKind::InvalidGrant | ErrorKind::MfaRequired | ErrorKind::RateLimited => {
                    grant_type == GrantType::Password
                }
                _ => false,
            };
            if !recorded {
                let event =
                    if grant_type == GrantType::RefreshToken { EventKind::TokenRefresh } else { EventKind::TokenIssue };
                let e = AuditEvent::new(tenant, event, ActorKind::Client, auth.client_id())
                    .client(auth.client_id())
                    .detail(format!("grant={grant_type}"))
                    .failed(e);
                self.record(e);
            }
        }
        done
    }

    async fn grant(
        &self,
        tenant: &str,
        auth: &ClientAuth,
        req: TokenRequest,
        grant_type: GrantType,
    ) -> Result<IssuedTokens> {
        let ts = self.tenant(tenant)?;
        Self::check_tenant_allows(&ts, grant_type)?;
        let client = self.authenticate_client(tenant, auth, req.origin).await?;
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
                let (sub, extra) = token::shape(
                    req.claim_set,
                    &Subject {
                        tenant,
                        username: None,
                        client_id: Some(&client.client_id),
                        grant_type: GrantType::ClientCredentials,
                        refresh_count: 0,
                    },
                );
                let mint = Mint {
                    sub: &sub,
                    username: None,
                    client_id: Some(&client.client_id),
                    scope,
                    audience: req.resource.as_deref(),
                    extra,
                    jti: secret::random_b64(self.rng.as_ref(), 16),
                    exp: None,
                    provenance: None,
                };
                let issued = self.mint_access(&ts, mint, now)?;
                let id = Some(client.client_id.as_str());
                let e = AuditEvent::new(tenant, EventKind::TokenIssue, ActorKind::Client, id)
                    .subject(client.client_id.as_str())
                    .client(id)
                    .detail(format!("grant=client_credentials jti={}", issued.jti));
                self.record(e);
                Ok(issued)
            }
            Grant::Password { username, password, otp } => {
                let scope = Self::grant_scope(&client.scopes, req.scope.as_deref())?;
                // The other grants' futures are boxed: client_credentials, the hot path, then
                // carries (and moves into the server's box) only its own small state.
                let (user, provenance) =
                    Box::pin(self.sign_in(tenant, &username, password, otp.as_ref(), req.origin)).await?;
                let holder = Holder {
                    client: Some(&client),
                    username: &user.username,
                    scope,
                    audience: req.resource.as_deref(),
                    claim_set: req.claim_set,
                    grant_type: GrantType::Password,
                    provenance,
                    family_id: None,
                };
                Box::pin(self.issue_for_user(&ts, holder, now)).await
            }
            Grant::RefreshToken { refresh_token } => {
                Box::pin(self.refresh(&ts, &client, refresh_token, req.scope.as_deref(), now)).await
            }
            Grant::DeviceCode { device_code } => Box::pin(self.device_poll(&ts, &client, device_code, now)).await,
            Grant::AuthorizationCode { code, redirect_uri, code_verifier } => {
                let presented = super::browser::PresentedCode { code, redirect_uri, code_verifier };
                Box::pin(self.redeem_code(&ts, &client, presented, req.claim_set, now)).await
            }
            Grant::TokenExchange { subject_token, subject_token_type, requested_token_type } => {
                let wanted = Exchange {
                    subject_token_type: &subject_token_type,
                    requested: requested_token_type.as_deref(),
                    scope: req.scope.as_deref(),
                    audience: req.resource.as_deref(),
                };
                Box::pin(self.exchange(&ts, Some(&client), subject_token.expose(), wanted, now)).await
            }
        }
    }

    /// The password grant without any client, where a front's API allows it (Tapis). No
    /// refresh token is issued.
    pub async fn password_without_client(
        &self,
        tenant: &str,
        username: &str,
        password: Secret,
        claim_set: ClaimSet,
        origin: Option<IpAddr>,
    ) -> Result<IssuedTokens> {
        let ts = self.tenant(tenant)?;
        Self::check_tenant_allows(&ts, GrantType::Password)?;
        let (user, provenance) = self.sign_in(tenant, username, password, None, origin).await?;
        let now = self.now();
        let holder = Holder {
            client: None,
            username: &user.username,
            scope: None,
            audience: None,
            claim_set,
            grant_type: GrantType::Password,
            provenance,
            family_id: None,
        };
        self.issue_for_user(&ts, holder, now).await
    }

    /// The user, if `password` is theirs and their account is active. Unknown user, wrong
    /// password and disabled account are all the same `invalid_grant`, by the same path and
    /// after the same work (one Argon2id verification). Not counted: callers go through
    /// [`Self::sign_in`], which reserves the attempt first.
    pub(super) async fn password_matches(&self, tenant: &str, username: &str, password: Secret) -> Result<User> {
        // A name that breaks the rules is an unknown user (same answer, same work).
        let user = self.find_user(tenant, username).await?;
        let phc = user.as_ref().map_or_else(|| self.dummy_hash.clone(), |u| u.password_hash.clone());
        let ok = self.hasher.verify(phc, password).await;
        match user {
            Some(u) if ok && !u.disabled => Ok(u),
            _ => Err(Error::invalid_grant("invalid username or password")),
        }
    }

    /// Count one attempt against `counters` in the store before it is checked (so that
    /// concurrent attempts, at any node, cannot all pass a limit); `rate_limited` past one.
    /// Returns when it was reserved, for [`Self::settle_attempt`].
    pub(super) async fn reserve_attempt(&self, counters: &[throttle::Counter]) -> Result<i64> {
        let now = self.now();
        match self.store.attempt_reserve(counters, now, self.limits.window).await? {
            None => Ok(now),
            Some(wait) => Err(Error::rate_limited(wait)),
        }
    }

    /// Settle a reserved attempt by its outcome: a failure (`failed`) stays counted; anything
    /// else gives its reservation back, and a success (`clear_first`) also forgets the first
    /// counter's earlier failures.
    pub(super) async fn settle_attempt(
        &self,
        counters: &[throttle::Counter],
        reserved_at: i64,
        failed: bool,
        clear_first: bool,
    ) -> Result<()> {
        if failed {
            return Ok(());
        }
        let keys: Vec<&str> = counters.iter().map(|c| c.key.as_str()).collect();
        let (clear, release) = if clear_first { keys.split_at(1) } else { keys.split_at(0) };
        Ok(self.store.attempt_release(release, clear, reserved_at).await?)
    }

    pub(super) async fn issue_for_user(&self, ts: &TenantState, mut h: Holder<'_>, now: i64) -> Result<IssuedTokens> {
        let jti = secret::random_b64(self.rng.as_ref(), 16);
        let client_id = h.client.map(|c| c.client_id.as_str());
        let refresh = match h.client {
            Some(c) if c.allows(GrantType::RefreshToken) && ts.tenant.allows(GrantType::RefreshToken) => {
                let rt = secret::generate_secret(self.rng.as_ref(), prefix::REFRESH_TOKEN);
                // The family is the session of every access token it mints.
                let family_id = h.family_id.take().unwrap_or_else(|| secret::random_b64(self.rng.as_ref(), 16));
                h.provenance.sid = Some(family_id.clone());
                let record = RefreshRecord {
                    token_hash: secret::sha256_b64(rt.expose()),
                    family_id,
                    tenant: ts.tenant.name.clone(),
                    client_id: c.client_id.clone(),
                    subject: h.username.to_string(),
                    username: Some(h.username.clone()),
                    scope: h.scope.clone(),
                    audience: h.audience.unwrap_or(&ts.issuer).to_owned(),
                    issued_at: now,
                    expires_at: now + ts.refresh_ttl,
                    used_at: None,
                    family_revoked: false,
                    access_jti: jti.clone(),
                    access_exp: now + ts.access_ttl,
                    claim_set: h.claim_set,
                    refresh_count: 0,
                    grant_type: h.grant_type,
                    auth_time: h.provenance.auth_time,
                    amr: h.provenance.amr.clone(),
                    user_barred: false,
                };
                self.store.refresh_insert(&record).await?;
                Some(rt)
            }
            _ => None,
        };
        let subject = Subject {
            tenant: &ts.tenant.name,
            username: Some(h.username.as_str()),
            client_id,
            grant_type: h.grant_type,
            refresh_count: 0,
        };
        let (sub, extra) = token::shape(h.claim_set, &subject);
        let mint = Mint {
            sub: &sub,
            username: Some(h.username.as_str()),
            client_id,
            scope: h.scope,
            audience: h.audience,
            extra,
            jti,
            exp: None,
            provenance: Some(h.provenance),
        };
        let issued = self.mint_access(ts, mint, now)?.with_refresh(refresh, ts.refresh_ttl);
        let e = AuditEvent::new(&ts.tenant.name, EventKind::TokenIssue, ActorKind::User, Some(h.username.as_str()))
            .subject(h.username.as_str())
            .client(client_id)
            .detail(format!("grant={} jti={}", h.grant_type, issued.jti));
        self.record(e);
        Ok(issued)
    }

    /// Whether a refresh token read in the rotation's transaction may be rotated by `client`
    /// for `requested_scope`: the scope of the access token if so; if not, the error, and
    /// whether the token's whole family must end (its session ended, or its user is barred).
    fn refresh_check(
        &self,
        ts: &TenantState,
        client: &Client,
        rec: &RefreshRecord,
        requested_scope: Option<&str>,
        now: i64,
    ) -> std::result::Result<Option<String>, (Error, bool)> {
        let invalid = || Error::invalid_grant("the refresh token is invalid, expired or revoked");
        if rec.tenant != ts.tenant.name || rec.client_id != client.client_id {
            return Err((invalid(), false));
        }
        if rec.family_revoked || rec.expires_at <= now {
            return Err((invalid(), false));
        }
        // A session ended before its family was stored (a code redeemed twice at once).
        if self.any_revoked([rec.family_id.as_str()]) {
            return Err((invalid(), true));
        }
        if rec.user_barred {
            return Err((Error::invalid_grant("the user account is disabled or gone"), true));
        }
        // A narrower scope may be asked for the access token; the family keeps its scope.
        let granted: Vec<String> =
            rec.scope.as_deref().map(parse_scope).transpose().map_err(|e| (e, false))?.unwrap_or_default();
        Self::grant_scope(&granted, requested_scope).map_err(|e| (e, false))
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
        let rt = secret::generate_secret(self.rng.as_ref(), prefix::REFRESH_TOKEN);
        let jti = secret::random_b64(self.rng.as_ref(), 16);
        let next = NewRefresh {
            token_hash: secret::sha256_b64(rt.expose()),
            issued_at: now,
            expires_at: now + ts.refresh_ttl,
            access_jti: jti.clone(),
            access_exp: now + ts.access_ttl,
        };
        // One transaction: read the token, check it, rotate it (see `Store::refresh_rotate`).
        let accept = |rec: &RefreshRecord| self.refresh_check(ts, client, rec, requested_scope, now).is_ok();
        let grace = self.settings.refresh_grace;
        let (rotation, rec) = self.store.refresh_rotate(&hash, now, grace, &next, &accept).await?;
        let Some(rec) = rec else {
            return Err(invalid());
        };
        let scope = match rotation {
            Rotation::Rotated | Rotation::WithinGrace => {
                self.refresh_check(ts, client, &rec, requested_scope, now).map_err(|(e, _)| e)?
            }
            Rotation::Declined => {
                return Err(match self.refresh_check(ts, client, &rec, requested_scope, now) {
                    Err((e, true)) => {
                        self.revoke_family(ts, &rec.family_id, now).await?;
                        e
                    }
                    Err((e, false)) => e,
                    // Judged differently a moment ago (a session ended meanwhile): refuse anyway.
                    Ok(_) => invalid(),
                });
            }
            Rotation::Reused { revoked } => {
                let id = Some(client.client_id.as_str());
                let e = AuditEvent::new(&ts.tenant.name, EventKind::TokenReuse, ActorKind::Client, id)
                    .subject(rec.subject.as_str())
                    .client(id)
                    .detail(format!("family={}", rec.family_id))
                    .failed(&Error::invalid_grant("reused"));
                self.record(e);
                self.end_family(ts, &rec.family_id, revoked, now).await?;
                return Err(Error::invalid_grant(
                    "the refresh token was already used; its whole session has been revoked",
                ));
            }
            Rotation::Invalid => return Err(invalid()),
        };
        let subject = Subject {
            tenant: &ts.tenant.name,
            username: rec.username.as_deref(),
            client_id: Some(&client.client_id),
            grant_type: GrantType::RefreshToken,
            refresh_count: rec.refresh_count + 1,
        };
        let (sub, extra) = token::shape(rec.claim_set, &subject);
        let mint = Mint {
            sub: &sub,
            username: rec.username.as_deref(),
            client_id: Some(&client.client_id),
            scope,
            audience: Some(&rec.audience),
            extra,
            jti,
            exp: None,
            provenance: Some(Provenance {
                auth_time: rec.auth_time,
                amr: rec.amr.clone(),
                sid: Some(rec.family_id.clone()),
                ..Provenance::default()
            }),
        };
        let issued = self.mint_access(ts, mint, now)?.with_refresh(Some(rt), ts.refresh_ttl);
        let id = Some(client.client_id.as_str());
        let e = AuditEvent::new(&ts.tenant.name, EventKind::TokenRefresh, ActorKind::Client, id)
            .subject(rec.subject.as_str())
            .client(id)
            .detail(format!("family={} jti={}", rec.family_id, issued.jti));
        self.record(e);
        Ok(issued)
    }

    // ----- device flow (RFC 8628) -------------------------------------------------------

    /// Start a device authorization for a client allowed the device_code grant.
    pub async fn device_authorize(
        &self,
        tenant: &str,
        auth: &ClientAuth,
        scope: Option<&str>,
        claim_set: ClaimSet,
        origin: Option<IpAddr>,
    ) -> Result<DeviceAuthorization> {
        let ts = self.tenant(tenant)?;
        Self::check_tenant_allows(&ts, GrantType::DeviceCode)?;
        let client = self.authenticate_client(tenant, auth, origin).await?;
        if !client.allows(GrantType::DeviceCode) {
            return Err(Error::unauthorized_client("this client is not allowed to use the device flow"));
        }
        let scope = Self::grant_scope(&client.scopes, scope)?;
        let now = self.now();
        let device_code = secret::generate_secret(self.rng.as_ref(), prefix::DEVICE_CODE);
        let mut record = DeviceRecord {
            device_code_hash: secret::sha256_b64(device_code.expose()),
            user_code: String::new(),
            tenant: ts.tenant.name.clone(),
            client_id: client.client_id.clone(),
            scope,
            claim_set,
            created_at: now,
            expires_at: now + self.settings.device_ttl,
            interval: self.settings.device_interval,
            last_poll_at: None,
            status: DeviceStatus::Pending,
            username: None,
        };
        // A user code collision is possible (2^34 codes); try a few fresh ones.
        let mut attempts = 0;
        loop {
            record.user_code = device::generate_user_code(self.rng.as_ref());
            match self.store.device_insert(&record).await {
                Ok(()) => break,
                Err(crate::store::StoreError::Conflict(_)) if attempts < 5 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(DeviceAuthorization {
            device_code,
            user_code: device::display_user_code(&record.user_code),
            client_id: client.client_id.to_string(),
            expires_in: self.settings.device_ttl,
            expires_at: record.expires_at,
            interval: record.interval,
        })
    }

    /// A pending, unexpired device authorization by the code a person typed, with its client.
    /// Not counted: for administrators (the CLI); the verification page uses
    /// [`Self::device_lookup`].
    pub async fn device_pending(&self, tenant: &str, typed_code: &str) -> Result<(DeviceRecord, Arc<Client>)> {
        let ts = self.tenant(tenant)?;
        let unknown = || Error::not_found("unknown or expired code");
        let code = device::normalize_user_code(typed_code).ok_or_else(unknown)?;
        let rec = self.store.device_get_by_user_code(&ts.tenant.name, &code).await?.ok_or_else(unknown)?;
        if rec.status != DeviceStatus::Pending || rec.expires_at <= self.now() {
            return Err(unknown());
        }
        let client = self.client(tenant, &rec.client_id).await?.ok_or_else(unknown)?;
        Ok((rec, client))
    }

    /// The verification page's look-up, made only once the person has signed in: the pending
    /// authorization by the code they typed, with its client (to show who asks). Failed
    /// look-ups count against the client address and the whole tenant (RFC 8628 section 5.1);
    /// past either limit, `rate_limited`. The look-up is reserved before it is made, like a
    /// sign-in attempt, so concurrent guesses cannot pass the limits.
    pub async fn device_lookup(
        &self,
        tenant: &str,
        typed_code: &str,
        origin: Option<IpAddr>,
    ) -> Result<(DeviceRecord, Arc<Client>)> {
        self.tenant(tenant)?;
        let counters = self.limits.device_lookup(tenant, origin);
        let reserved_at = self.reserve_attempt(&counters).await?;
        let found = self.device_pending(tenant, typed_code).await;
        let failed = matches!(&found, Err(e) if e.kind == ErrorKind::NotFound);
        self.settle_attempt(&counters, reserved_at, failed, false).await?;
        found
    }

    /// Approve or deny a pending device authorization on behalf of `username` (who must be
    /// an active user of the tenant; the caller has authenticated them).
    pub async fn device_decide(&self, tenant: &str, typed_code: &str, username: &str, approve: bool) -> Result<()> {
        let mut client = None;
        let done = self.decide_device(tenant, typed_code, username, approve, &mut client).await;
        let e = AuditEvent::new(tenant, EventKind::DeviceDecision, ActorKind::User, Some(username))
            .subject(username)
            .client(client.as_deref())
            .detail(if approve { "approved" } else { "denied" })
            .outcome_of(&done);
        self.record(e);
        done
    }

    async fn decide_device(
        &self,
        tenant: &str,
        typed_code: &str,
        username: &str,
        approve: bool,
        client: &mut Option<String>,
    ) -> Result<()> {
        let (rec, _) = self.device_pending(tenant, typed_code).await?;
        *client = Some(rec.client_id.to_string());
        let user = match self.find_user(tenant, username).await? {
            Some(u) if !u.disabled => u,
            _ => return Err(Error::not_found(format!("no active user `{username}` in tenant `{tenant}`"))),
        };
        if self.store.device_decide(&user.tenant, &rec.user_code, &user.username, approve, self.now()).await? {
            Ok(())
        } else {
            Err(Error::not_found("unknown or expired code"))
        }
    }

    /// For the verification page, after `username` signed in and [`Self::device_lookup`]
    /// found `rec`: a proof, sealed with the master key, that lets them approve or deny this
    /// authorization (and no other) until it expires, without signing in again.
    pub fn device_ticket(&self, rec: &DeviceRecord, username: &str) -> String {
        let plain = format!("{}\n{}\n{}", rec.expires_at, rec.user_code, username);
        let sealed = self.master.seal(self.rng.as_ref(), &ticket_context(&rec.tenant), plain.as_bytes());
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Approve or deny with a ticket from [`Self::device_ticket`]; the user it names is
    /// returned. `not_found` for a ticket that is not one, is of another code or has expired.
    pub async fn device_decide_with_ticket(
        &self,
        tenant: &str,
        typed_code: &str,
        ticket: &str,
        approve: bool,
    ) -> Result<String> {
        let unknown = || Error::not_found("unknown or expired code");
        let code = device::normalize_user_code(typed_code).ok_or_else(unknown)?;
        let sealed = URL_SAFE_NO_PAD.decode(ticket).map_err(|_| unknown())?;
        let plain = self.master.open(&ticket_context(tenant), &sealed).map_err(|_| unknown())?;
        let plain = std::str::from_utf8(&plain).map_err(|_| unknown())?;
        let mut parts = plain.splitn(3, '\n');
        let (Some(exp), Some(ticket_code), Some(username)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(unknown());
        };
        let exp: i64 = exp.parse().map_err(|_| unknown())?;
        if exp <= self.now() || !secret::ct_eq(ticket_code.as_bytes(), code.as_bytes()) {
            return Err(unknown());
        }
        self.device_decide(tenant, &code, username, approve).await?;
        Ok(username.to_owned())
    }

    async fn device_poll(&self, ts: &TenantState, client: &Client, code: Secret, now: i64) -> Result<IssuedTokens> {
        let hash = secret::sha256_b64(code.expose());
        match self.store.device_poll(&hash, &client.client_id, now).await? {
            DevicePoll::Pending => {
                Err(Error::new(ErrorKind::AuthorizationPending, "the user has not yet approved this request"))
            }
            DevicePoll::SlowDown => {
                Err(Error::new(ErrorKind::SlowDown, "polling too fast; wait longer between requests"))
            }
            DevicePoll::Denied => Err(Error::access_denied("the user denied the request")),
            DevicePoll::Expired => Err(Error::new(ErrorKind::ExpiredToken, "the device code has expired")),
            DevicePoll::Invalid => Err(Error::invalid_grant("the device code is invalid or was already used")),
            DevicePoll::Approved(rec) => {
                let username = rec.username.as_deref().ok_or_else(|| Error::internal("approved without a user"))?;
                // The person approved on the verification page, signed in with their password
                // (and one-time code); they may have been disabled since.
                let user = match self.find_user(&ts.tenant.name, username).await? {
                    Some(u) if !u.disabled => u,
                    _ => return Err(Error::invalid_grant("the approving user is disabled or gone")),
                };
                let holder = Holder {
                    client: Some(client),
                    username: &user.username,
                    scope: rec.scope.clone(),
                    audience: None,
                    claim_set: rec.claim_set,
                    grant_type: GrantType::DeviceCode,
                    provenance: Provenance::sign_in(now, user.totp.enabled),
                    family_id: None,
                };
                self.issue_for_user(ts, holder, now).await
            }
        }
    }

    // ----- token exchange (RFC 8693) ----------------------------------------------------

    /// Exchange a valid access token of this tenant for a new access token (possibly
    /// narrower) or for an opaque legacy bearer token bound to the same subject and expiry.
    ///
    /// The new token is a standard token of the tenant: the subject's audience and a front's
    /// own claims (SFTPGo's `permissions`, Tapis' `tapis/...`) are not carried over, but its
    /// authentication facts and session are, and it never outlives the subject token: revoking
    /// the subject token's session (a logout) or its API key ends it too.
    pub(super) async fn exchange(
        &self,
        ts: &TenantState,
        client: Option<&Client>,
        subject_token: &str,
        wanted: Exchange<'_>,
        now: i64,
    ) -> Result<IssuedTokens> {
        let subject_token_type = wanted.subject_token_type;
        if subject_token_type != token_type::ACCESS_TOKEN && subject_token_type != token_type::JWT {
            return Err(Error::invalid_request(format!("subject_token_type `{subject_token_type}` is not supported")));
        }
        let subject = self
            .verify_access(&ts.tenant.name, subject_token)
            .map_err(|_| Error::invalid_grant("the subject token is invalid, expired or revoked"))?;
        let user = match subject.username.as_deref() {
            Some(u) => match self.find_user(&ts.tenant.name, u).await? {
                Some(user) if !user.disabled => Some(user.username),
                _ => return Err(Error::invalid_grant("the subject token's user is disabled or no longer exists")),
            },
            None => None,
        };
        let granted: Vec<String> = subject.scope.as_deref().map(parse_scope).transpose()?.unwrap_or_default();
        let scope = Self::grant_scope(&granted, wanted.scope)?;
        let jti = secret::random_b64(self.rng.as_ref(), 16);
        let client_id = match client {
            Some(c) => Some(c.client_id.clone()),
            None => subject.client_id.as_deref().map(ClientId::parse).transpose()?,
        };
        let provenance = Provenance::inherited(&subject);
        let latest = provenance.session_exp.unwrap_or(subject.exp);
        match wanted.requested.unwrap_or(token_type::ACCESS_TOKEN) {
            token_type::ACCESS_TOKEN | token_type::JWT => {
                // `sub` stays the subject's: its user, or the client it was issued to.
                let principal = Subject {
                    tenant: &ts.tenant.name,
                    username: subject.username.as_deref(),
                    client_id: subject.client_id.as_deref(),
                    grant_type: GrantType::TokenExchange,
                    refresh_count: 0,
                };
                let (sub, extra) = token::shape(ClaimSet::Standard, &principal);
                let mint = Mint {
                    sub: &sub,
                    username: subject.username.as_deref(),
                    client_id: client_id.as_deref(),
                    scope,
                    audience: wanted.audience,
                    extra,
                    jti,
                    exp: Some(latest.min(now + ts.access_ttl)),
                    provenance: Some(provenance),
                };
                let issued = self.mint_access(ts, mint, now)?.of_type(token_type::ACCESS_TOKEN);
                self.record_exchange(ts, client, &subject, &issued);
                Ok(issued)
            }
            token_type::LEGACY => {
                let token = secret::generate_secret(self.rng.as_ref(), prefix::LEGACY_TOKEN);
                let chain = provenance.sid.iter().chain(&provenance.api_key_id).cloned().collect();
                let rec = LegacyRecord {
                    token_hash: secret::sha256_b64(token.expose()),
                    jti: jti.clone(),
                    tenant: ts.tenant.name.clone(),
                    subject: subject.sub.clone(),
                    username: user,
                    client_id,
                    scope: scope.clone(),
                    issued_at: now,
                    expires_at: latest,
                    chain,
                };
                self.store.legacy_insert(&rec).await?;
                let issued = IssuedTokens {
                    access_token: token.expose().to_owned(),
                    expires_in: latest - now,
                    expires_at: latest,
                    issued_at: now,
                    jti,
                    scope,
                    refresh_token: None,
                    refresh_expires_in: None,
                    issued_token_type: Some(token_type::LEGACY),
                    id_token: None,
                };
                self.record_exchange(ts, client, &subject, &issued);
                Ok(issued)
            }
            other => Err(Error::invalid_request(format!("requested_token_type `{other}` is not supported"))),
        }
    }

    /// A token issued by exchange: by the client that asked, else by the subject token's
    /// holder (Tapis v2 legacy exchange).
    fn record_exchange(
        &self,
        ts: &TenantState,
        client: Option<&Client>,
        subject: &AccessClaims,
        issued: &IssuedTokens,
    ) {
        let (kind, name) = match (client, subject.username.as_deref()) {
            (Some(c), _) => (ActorKind::Client, Some(c.client_id.as_str())),
            (None, Some(u)) => (ActorKind::User, Some(u)),
            (None, None) => (ActorKind::Client, subject.client_id.as_deref()),
        };
        let e = AuditEvent::new(&ts.tenant.name, EventKind::TokenIssue, kind, name)
            .subject(subject.sub.as_str())
            .client(client.map(|c| c.client_id.as_str()).or(subject.client_id.as_deref()))
            .detail(format!("grant=token_exchange subject_jti={} jti={}", subject.jti, issued.jti));
        self.record(e);
    }

    /// Tapis v2: exchange a v3 access token for a legacy bearer token. The caller has proved
    /// who they are with `caller`; the exchanged token must be theirs.
    pub async fn exchange_for_legacy(
        &self,
        tenant: &str,
        caller: &AccessClaims,
        subject_token: &str,
    ) -> Result<IssuedTokens> {
        let ts = self.tenant(tenant)?;
        let subject = self
            .bearer(tenant, subject_token, &[Audience::Issuer])
            .map_err(|_| Error::invalid_grant("the access token to exchange is invalid, expired or revoked"))?;
        if subject.sub != caller.sub {
            return Err(Error::forbidden("only your own tokens can be exchanged"));
        }
        let wanted = Exchange {
            subject_token_type: token_type::ACCESS_TOKEN,
            requested: Some(token_type::LEGACY),
            scope: None,
            audience: None,
        };
        self.exchange(&ts, None, subject_token, wanted, self.now()).await
    }
}

/// The associated data of device tickets: a ticket of one tenant opens at no other.
fn ticket_context(tenant: &str) -> String {
    format!("device-ticket:{tenant}")
}
