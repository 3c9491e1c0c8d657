//! Two-factor authentication (TOTP, recovery codes) and API keys.

use super::access::{Action, Actor};
use super::{Audience, Authority, Mint};
use crate::audit::{ActorKind, AuditEvent, EventKind};
use crate::error::{Error, ErrorKind, Result};
use crate::grant::IssuedTokens;
use crate::name::Username;
use crate::principal::{ApiKey, User, parse_scope};
use crate::secret::{self, Secret, prefix};
use crate::token::{Provenance, amr};
use crate::totp;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// What enrolment hands the user, once.
#[derive(Clone)]
pub struct TotpEnrolment {
    pub otpauth_uri: String,
    pub secret_base32: String,
}

/// Both members carry the TOTP secret.
impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment(***)")
    }
}

/// A token for a user signed in at a front that mints its own sessions (SFTPGo, ICA,
/// DocSpace): no client, the front's audience and lifetime.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub audience: Option<String>,
    /// Seconds: the front's own lifetime, a maximum; never longer than the tenant's access
    /// lifetime (also the lifetime when absent).
    pub ttl: Option<i64>,
    pub scope: Option<String>,
    /// The front's own claims.
    pub extra: Map<String, Value>,
    /// How the user authenticated: [`Authority::sign_in`], [`Authority::api_key_sign_in`],
    /// or inherited from the bearer token the session was minted from.
    pub provenance: Provenance,
}

fn seal_context(tenant: &str, username: &str) -> String {
    format!("totp:{tenant}:{username}")
}

/// The longest lifetime an API key may be given, in seconds (ten years).
pub const MAX_API_KEY_LIFETIME: i64 = 10 * 365 * 86_400;

impl Authority {
    // ----- TOTP ---------------------------------------------------------------------------

    /// Start enrolment: a new secret, stored sealed but not yet enforced.
    pub async fn totp_enroll(&self, actor: &Actor<'_>, tenant: &str, username: &str) -> Result<TotpEnrolment> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
            let user = self.user_named(tenant, username).await?;
            if user.totp.enabled {
                return Err(Error::conflict("two-factor authentication is already enabled; disable it first"));
            }
            self.start_totp(&user).await
        }
        .await;
        self.record_change(actor, tenant, EventKind::TotpEnroll, username, &done);
        done
    }

    /// Confirm enrolment with a first code; from now on the code is required. Returns the
    /// ten recovery codes, shown once.
    pub async fn totp_confirm(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        code: &str,
    ) -> Result<Vec<String>> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
            let user = self.user_named(tenant, username).await?;
            if user.totp.enabled {
                return Err(Error::conflict("two-factor authentication is already enabled"));
            }
            self.finish_totp(&user, code).await
        }
        .await;
        self.record_change(actor, tenant, EventKind::TotpConfirm, username, &done);
        done
    }

    /// Ten new recovery codes for `user`, replacing any they had; shown once.
    pub(super) async fn new_recovery_codes(&self, user: &User) -> Result<Vec<String>> {
        let codes = totp::recovery_codes(self.rng.as_ref());
        let hashes: Vec<String> = codes.iter().map(|c| secret::sha256_b64(&totp::normalize_recovery_code(c))).collect();
        self.store.recovery_codes_set(&user.tenant, &user.username, &hashes).await?;
        Ok(codes)
    }

    /// Turn two-factor authentication off and forget the secret and recovery codes.
    pub async fn totp_disable(&self, actor: &Actor<'_>, tenant: &str, username: &str) -> Result<()> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
            let user = self.user_named(tenant, username).await?;
            // Where it is required, only an administrator (or the operator) may take it away.
            let by_themself = matches!(actor, Actor::User(u) if u.username == user.username);
            if by_themself && user.totp.enabled && self.totp_required(&user)? {
                return Err(Error::forbidden(
                    "two-step verification is required for this account; ask an administrator",
                ));
            }
            self.store.user_totp_set(&user.tenant, &user.username, None, false).await?;
            self.store.recovery_codes_set(&user.tenant, &user.username, &[]).await?;
            Ok(())
        }
        .await;
        self.record_change(actor, tenant, EventKind::TotpDisable, username, &done);
        done
    }

    fn totp_secret(&self, user: &User) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
        user.totp
            .sealed_secret
            .as_deref()
            .map(|s| self.master.open(&seal_context(&user.tenant, &user.username), s))
            .transpose()
    }

    /// The second factor for `user`, if they have one: a TOTP code not used before, or an
    /// unused recovery code. `mfa_required` when none was given.
    pub async fn check_second_factor(&self, user: &User, otp: Option<&Secret>) -> Result<()> {
        if !user.totp.enabled {
            if self.totp_required(user)? {
                // After a right password: not a failure, but no token either.
                return Err(Error::new(
                    ErrorKind::MfaRequired,
                    "this account must set up two-factor authentication first: sign in once through the \
                     browser sign-in page, or ask an administrator",
                ));
            }
            return Ok(());
        }
        let Some(otp) = otp.filter(|o| !o.expose().trim().is_empty()) else {
            return Err(Error::new(ErrorKind::MfaRequired, "a one-time code is required (otp)"));
        };
        let bad = || Error::invalid_grant("invalid or already used one-time code");
        let raw = self.totp_secret(user)?.ok_or_else(bad)?;
        if let Some(step) = totp::matching_step(&raw, otp.expose(), self.now()) {
            return if self.store.user_totp_accept_step(&user.tenant, &user.username, step).await? {
                Ok(())
            } else {
                Err(bad())
            };
        }
        let hash = secret::sha256_b64(&totp::normalize_recovery_code(otp.expose()));
        if self.store.recovery_code_use(&user.tenant, &user.username, &hash, self.now()).await? {
            Ok(())
        } else {
            Err(bad())
        }
    }

    /// Whether `user` must have a second factor: required of them, or by their tenant.
    pub(super) fn totp_required(&self, user: &User) -> Result<bool> {
        Ok(user.totp.required || self.tenant(&user.tenant)?.tenant.totp_required)
    }

    /// A new TOTP secret for `user`, stored sealed and not yet enabled (it is once a first
    /// code confirms it): what the person types or scans.
    pub(super) async fn start_totp(&self, user: &User) -> Result<TotpEnrolment> {
        let (tenant, username) = (user.tenant.as_str(), user.username.as_str());
        let raw = totp::new_secret(self.rng.as_ref());
        let sealed = self.master.seal(self.rng.as_ref(), &seal_context(tenant, username), &raw);
        let issuer = format!("Tessera ({tenant})");
        let (otpauth_uri, secret_base32) = totp::provisioning(&raw, &issuer, username)?;
        self.store.user_totp_set(&user.tenant, &user.username, Some(&sealed), false).await?;
        Ok(TotpEnrolment { otpauth_uri, secret_base32 })
    }

    /// Confirm `user`'s pending secret with a first `code`: from now on it is required.
    /// Returns the ten recovery codes, shown once.
    pub(super) async fn finish_totp(&self, user: &User, code: &str) -> Result<Vec<String>> {
        let raw = self.totp_secret(user)?.ok_or_else(|| Error::invalid_request("run enrolment first"))?;
        let step = totp::matching_step(&raw, code, self.now())
            .ok_or_else(|| Error::invalid_grant("the code does not match; check the device clock"))?;
        let sealed = user.totp.sealed_secret.as_deref();
        self.store.user_totp_set(&user.tenant, &user.username, sealed, true).await?;
        self.store.user_totp_accept_step(&user.tenant, &user.username, step).await?;
        self.new_recovery_codes(user).await
    }

    /// Password, then the second factor when the user has one. The attempt is counted
    /// against the brute-force limits (per user, per client address `origin`) before anything
    /// is checked; past a limit, `rate_limited` without checking. A failure of either factor
    /// (a disabled account is one, answered as a wrong password) stays counted; a success
    /// clears the user's failures. Returns the user, and what their tokens carry of this
    /// sign-in.
    pub async fn sign_in(
        &self,
        tenant: &str,
        username: &str,
        password: Secret,
        otp: Option<&Secret>,
        origin: Option<IpAddr>,
    ) -> Result<(User, Provenance)> {
        let done = async {
            let counters = self.limits.login(tenant, username, origin);
            let reserved_at = self.reserve_attempt(&counters).await?;
            let checked = match self.password_matches(tenant, username, password).await {
                Ok(user) => self.check_second_factor(&user, otp).await.map(|()| user),
                Err(e) => Err(e),
            };
            let failed = matches!(&checked, Err(e) if e.kind == ErrorKind::InvalidGrant);
            self.settle_attempt(&counters, reserved_at, failed, checked.is_ok()).await?;
            checked
        }
        .await;
        let method = match &done {
            Ok(u) if u.totp.enabled => "method=password+otp",
            _ => "method=password",
        };
        let mut e = self.sign_in_event(tenant, username, done.is_ok()).detail(method).outcome_of(&done);
        e.address = origin.map(|a| a.to_canonical().to_string());
        self.record(e);
        let user = done?;
        let how = Provenance::sign_in(self.now(), user.totp.enabled);
        Ok((user, how))
    }

    /// A sign-in of `username`: by the user, or (failed) by someone not known.
    fn sign_in_event(&self, tenant: &str, username: &str, ok: bool) -> AuditEvent {
        let (kind, name) = if ok { (ActorKind::User, Some(username)) } else { (ActorKind::Anonymous, None) };
        AuditEvent::new(tenant, EventKind::SignIn, kind, name).subject(username)
    }

    // ----- API keys -----------------------------------------------------------------------

    /// A new API key for a user, shown once (`tsk_...`).
    pub async fn create_api_key(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        name: &str,
        expires_in: Option<i64>,
        scopes: Vec<String>,
    ) -> Result<(ApiKey, Secret)> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
            let user = self.user_named(tenant, username).await?;
            if user.disabled {
                return Err(Error::invalid_request(format!("user `{username}` is disabled")));
            }
            if matches!(expires_in, Some(e) if e <= 0) {
                return Err(Error::invalid_request("the expiry must be in the future").at("expires_in"));
            }
            if matches!(expires_in, Some(e) if e > MAX_API_KEY_LIFETIME) {
                return Err(Error::invalid_request("an API key lives at most ten years").at("expires_in"));
            }
            let scopes = parse_scope(&scopes.join(" ")).map_err(|e| Error::invalid_request(e.description))?;
            let now = self.now();
            let key = secret::generate_secret(self.rng.as_ref(), prefix::API_KEY);
            let record = ApiKey {
                id: secret::random_b64(self.rng.as_ref(), 9),
                tenant: user.tenant.clone(),
                username: user.username.clone(),
                name: if name.is_empty() { "api key".to_owned() } else { name.to_owned() },
                scopes,
                created_at: now,
                expires_at: expires_in.map(|e| now.saturating_add(e)),
                revoked_at: None,
                last_used_at: None,
            };
            self.store.api_key_insert(&record, &secret::sha256_b64(key.expose())).await?;
            Ok((record, key))
        }
        .await;
        let e = self.by(actor, tenant, EventKind::ApiKeyCreate).subject(username);
        let e = match &done {
            Ok((k, _)) => e.detail(format!("key={}", k.id)),
            Err(err) => e.failed(err),
        };
        self.record(e);
        done
    }

    /// API keys of one user, or (for administrators) of every user.
    pub async fn list_api_keys(&self, actor: &Actor<'_>, tenant: &str, username: Option<&str>) -> Result<Vec<ApiKey>> {
        let action = username.map_or(Action::ManageUsers, |username| Action::ManageCredentials { username });
        self.authorize(actor, tenant, action).await?;
        let ts = self.tenant(tenant)?;
        let username = match username.map(Username::parse) {
            None => None,
            Some(Ok(name)) => Some(name),
            // A name that breaks the rules has no keys.
            Some(Err(_)) => return Ok(vec![]),
        };
        Ok(self.store.api_key_list(&ts.tenant.name, username.as_ref()).await?)
    }

    /// Revoke an API key, and every token minted from it (or from those).
    pub async fn revoke_api_key(&self, actor: &Actor<'_>, tenant: &str, id: &str) -> Result<()> {
        let mut owner = None;
        let done = async {
            let ts = self.tenant(tenant)?;
            let missing = || Error::not_found(format!("no live API key `{id}` in tenant `{tenant}`"));
            let keys = self.store.api_key_list(&ts.tenant.name, None).await?;
            let key = keys.iter().find(|k| k.id == id).ok_or_else(missing)?;
            owner = Some(key.username.to_string());
            self.authorize(actor, tenant, Action::ManageCredentials { username: &key.username }).await?;
            if self.store.api_key_revoke(&ts.tenant.name, id, self.now()).await? {
                self.end_api_key(&ts, id).await
            } else {
                Err(Error::not_found(format!("no live API key `{id}` in tenant `{tenant}`")))
            }
        }
        .await;
        let mut e = self.by(actor, tenant, EventKind::ApiKeyRevoke).detail(format!("key={id}")).outcome_of(&done);
        e.subject = owner;
        self.record(e);
        done
    }

    /// The user an API key speaks for. `tenant`: where the key is presented, if the API
    /// names one; a key never works at another tenant. A key that does not work counts
    /// against the address `origin`'s brute-force limit, shared with sign-ins.
    pub async fn authenticate_api_key(
        &self,
        tenant: Option<&str>,
        key: &str,
        origin: Option<IpAddr>,
    ) -> Result<(User, ApiKey)> {
        self.refuse_if_locked(|| self.limits.api_key(origin))?;
        let found = self.check_api_key(tenant, key).await;
        if matches!(&found, Err(e) if e.kind == ErrorKind::InvalidToken) {
            self.count_failure(&self.limits.api_key(origin)).await?;
        }
        found
    }

    async fn check_api_key(&self, tenant: Option<&str>, key: &str) -> Result<(User, ApiKey)> {
        let bad = || Error::invalid_token("invalid, expired or revoked API key");
        if !key.starts_with(prefix::API_KEY) || key.len() > 200 {
            return Err(bad());
        }
        let k = self.store.api_key_by_hash(&secret::sha256_b64(key)).await?.ok_or_else(bad)?;
        let now = self.now();
        if tenant.is_some_and(|t| t != k.tenant) || k.revoked_at.is_some() || k.expires_at.is_some_and(|e| e <= now) {
            return Err(bad());
        }
        let user = self.find_user(&k.tenant, &k.username).await?.ok_or_else(bad)?;
        if user.disabled {
            return Err(bad());
        }
        // Record the use, at most once a minute per key.
        if k.last_used_at.is_none_or(|t| now - t >= 60) {
            self.store.api_key_touch(&k.id, now).await?;
        }
        Ok((user, k))
    }

    /// Sign-in with a bearer token of the tenant meant for `accepts`: its active user, and what
    /// a token minted from it inherits ([`Provenance::inherited`]).
    pub async fn bearer_sign_in(
        &self,
        tenant: &str,
        token: &str,
        accepts: &[Audience<'_>],
    ) -> Result<(User, Provenance)> {
        let done = self.bearer_user(tenant, token, accepts).await;
        let e = match &done {
            Ok((user, claims)) => AuditEvent::new(tenant, EventKind::SignIn, ActorKind::User, Some(&user.username))
                .subject(user.username.as_str())
                .client(claims.client_id.as_deref())
                .detail(format!("method=bearer jti={}", claims.jti)),
            Err(err) => AuditEvent::new(tenant, EventKind::SignIn, ActorKind::Anonymous, None)
                .detail("method=bearer")
                .failed(err),
        };
        self.record(e);
        let (user, claims) = done?;
        Ok((user, Provenance::inherited(&claims)))
    }

    /// Sign-in with an API key (see [`Self::authenticate_api_key`]).
    pub async fn api_key_sign_in(
        &self,
        tenant: Option<&str>,
        key: &str,
        origin: Option<IpAddr>,
    ) -> Result<(User, Provenance)> {
        let done = self.authenticate_api_key(tenant, key, origin).await;
        let e = match &done {
            Ok((user, k)) => AuditEvent::new(&k.tenant, EventKind::SignIn, ActorKind::ApiKey, Some(&k.id))
                .subject(user.username.as_str())
                .detail("method=api_key"),
            // A key that opens nothing names no tenant of its own: the one it was shown at.
            Err(err) => {
                AuditEvent::new(tenant.unwrap_or(super::DEFAULT_TENANT), EventKind::SignIn, ActorKind::Anonymous, None)
                    .detail("method=api_key")
                    .failed(err)
            }
        };
        self.record(e);
        let (user, k) = done?;
        let how = Provenance::api_key(self.now(), &k.id);
        Ok((user, how))
    }

    /// Mint a session token for a user authenticated by a front. It lives the front's
    /// lifetime, at most the tenant's access lifetime, and never past its chain's expiry.
    pub fn issue_session(&self, user: &User, s: Session) -> Result<IssuedTokens> {
        let issued = self.mint_session(user, s)?;
        self.record_session(user, EventKind::TokenIssue, &issued);
        Ok(issued)
    }

    fn record_session(&self, user: &User, event: EventKind, issued: &IssuedTokens) {
        let e = AuditEvent::new(&user.tenant, event, ActorKind::User, Some(&user.username))
            .subject(user.username.as_str())
            .detail(format!("session jti={}", issued.jti));
        self.record(e);
    }

    fn mint_session(&self, user: &User, s: Session) -> Result<IssuedTokens> {
        let ts = self.tenant(&user.tenant)?;
        let now = self.now();
        let ttl = s.ttl.map_or(ts.access_ttl, |t| t.min(ts.access_ttl));
        let exp = s.provenance.session_exp.map_or(now + ttl, |latest| latest.min(now + ttl));
        let mint = Mint {
            sub: &user.username,
            username: Some(&user.username),
            client_id: None,
            scope: s.scope,
            audience: s.audience.as_deref(),
            extra: s.extra,
            jti: secret::random_b64(self.rng.as_ref(), 16),
            exp: Some(exp),
            provenance: Some(s.provenance),
        };
        self.mint_access(&ts, mint, now)
    }

    /// Renew a session token (ICA's refresh): the bearer token must be meant for `audience`
    /// and come from a password sign-in. The new token belongs to the same session, keeps its
    /// authentication facts, and lives no later than its chain allows nor past the tenant's
    /// refresh lifetime after the sign-in: a session is not renewed forever.
    pub async fn renew_session(
        &self,
        tenant: &str,
        token: &str,
        audience: &str,
        mut s: Session,
    ) -> Result<IssuedTokens> {
        let (user, claims) = self.bearer_user(tenant, token, &[Audience::Named(audience)]).await?;
        let has = |m: &str| claims.amr.iter().any(|a| a == m);
        if has(amr::API_KEY) || !has(amr::PASSWORD) {
            return Err(Error::forbidden("a token made from an API key cannot be refreshed"));
        }
        let ts = self.tenant(tenant)?;
        let auth_time = claims.auth_time.unwrap_or(claims.iat);
        let ends = auth_time + ts.refresh_ttl;
        if ends <= self.now() {
            return Err(Error::invalid_token("the session has ended: sign in again"));
        }
        s.ttl = Some(s.ttl.unwrap_or(ts.access_ttl).min(ends - self.now()));
        s.provenance = Provenance {
            auth_time: Some(auth_time),
            amr: claims.amr.clone(),
            sid: Some(claims.session().to_owned()),
            api_key_id: claims.api_key_id.clone(),
            session_exp: claims.session_exp,
        };
        let issued = self.mint_session(&user, s)?;
        self.record_session(&user, EventKind::TokenRefresh, &issued);
        Ok(issued)
    }
}
