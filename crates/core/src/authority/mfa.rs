//! Two-factor authentication (TOTP, recovery codes) and API keys.

use super::{Authority, Mint};
use crate::error::{Error, ErrorKind, Result};
use crate::grant::IssuedTokens;
use crate::principal::{ApiKey, User, parse_scope};
use crate::secret::{self, Secret, prefix};
use crate::totp;
use serde_json::{Map, Value};
use std::net::IpAddr;

/// What enrolment hands the user, once.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub otpauth_uri: String,
    pub secret_base32: String,
}

/// A token for a user signed in at a front that mints its own sessions (SFTPGo, ICA,
/// DocSpace): no client, the front's audience and lifetime.
#[derive(Debug, Clone, Default)]
pub struct Session {
    pub audience: Option<String>,
    /// Seconds; the tenant's access lifetime when absent.
    pub ttl: Option<i64>,
    pub scope: Option<String>,
    /// The front's own claims.
    pub extra: Map<String, Value>,
}

fn seal_context(tenant: &str, username: &str) -> String {
    format!("totp:{tenant}:{username}")
}

impl Authority {
    // ----- TOTP ---------------------------------------------------------------------------

    /// Start enrolment: a new secret, stored sealed but not yet enforced.
    pub async fn totp_enroll(&self, tenant: &str, username: &str) -> Result<TotpEnrolment> {
        let user = self.get_user(tenant, username).await?;
        if user.totp.enabled {
            return Err(Error::conflict("two-factor authentication is already enabled; disable it first"));
        }
        let raw = totp::new_secret(self.rng.as_ref());
        let sealed = self.master.seal(self.rng.as_ref(), &seal_context(tenant, username), &raw);
        let issuer = format!("Tessera ({tenant})");
        let (otpauth_uri, secret_base32) = totp::provisioning(&raw, &issuer, username)?;
        self.store.user_totp_set(tenant, username, Some(&sealed), false).await?;
        Ok(TotpEnrolment { otpauth_uri, secret_base32 })
    }

    /// Confirm enrolment with a first code; from now on the code is required. Returns the
    /// ten recovery codes, shown once.
    pub async fn totp_confirm(&self, tenant: &str, username: &str, code: &str) -> Result<Vec<String>> {
        let user = self.get_user(tenant, username).await?;
        if user.totp.enabled {
            return Err(Error::conflict("two-factor authentication is already enabled"));
        }
        let raw = self.totp_secret(&user)?.ok_or_else(|| Error::invalid_request("run enrolment first"))?;
        let step = totp::matching_step(&raw, code, self.now())
            .ok_or_else(|| Error::invalid_grant("the code does not match; check the device clock"))?;
        let sealed = user.totp.sealed_secret.as_deref();
        self.store.user_totp_set(tenant, username, sealed, true).await?;
        self.store.user_totp_accept_step(tenant, username, step).await?;
        let codes = totp::recovery_codes(self.rng.as_ref());
        let hashes: Vec<String> = codes.iter().map(|c| secret::sha256_b64(&totp::normalize_recovery_code(c))).collect();
        self.store.recovery_codes_set(tenant, username, &hashes).await?;
        Ok(codes)
    }

    /// Turn two-factor authentication off and forget the secret and recovery codes.
    pub async fn totp_disable(&self, tenant: &str, username: &str) -> Result<()> {
        self.get_user(tenant, username).await?;
        self.store.user_totp_set(tenant, username, None, false).await?;
        self.store.recovery_codes_set(tenant, username, &[]).await?;
        Ok(())
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

    /// Password, then the second factor when the user has one. The attempt is counted
    /// against the brute-force limits (per user, per client address `origin`) before anything
    /// is checked; past a limit, `rate_limited` without checking. A failure of either factor
    /// (a disabled account is one, answered as a wrong password) stays counted; a success
    /// clears the user's failures.
    pub async fn check_credentials(
        &self,
        tenant: &str,
        username: &str,
        password: Secret,
        otp: Option<&Secret>,
        origin: Option<IpAddr>,
    ) -> Result<User> {
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

    // ----- API keys -----------------------------------------------------------------------

    /// A new API key for a user, shown once (`tsk_...`).
    pub async fn create_api_key(
        &self,
        tenant: &str,
        username: &str,
        name: &str,
        expires_in: Option<i64>,
        scopes: Vec<String>,
    ) -> Result<(ApiKey, Secret)> {
        let user = self.get_user(tenant, username).await?;
        if user.disabled {
            return Err(Error::invalid_request(format!("user `{username}` is disabled")));
        }
        if matches!(expires_in, Some(e) if e <= 0) {
            return Err(Error::invalid_request("the expiry must be in the future"));
        }
        let scopes = parse_scope(&scopes.join(" ")).map_err(|e| Error::invalid_request(e.description))?;
        let now = self.now();
        let key = secret::generate_secret(self.rng.as_ref(), prefix::API_KEY);
        let record = ApiKey {
            id: secret::random_b64(self.rng.as_ref(), 9),
            tenant: tenant.to_owned(),
            username: username.to_owned(),
            name: if name.is_empty() { "api key".to_owned() } else { name.to_owned() },
            scopes,
            created_at: now,
            expires_at: expires_in.map(|e| now + e),
            revoked_at: None,
            last_used_at: None,
        };
        self.store.api_key_insert(&record, &secret::sha256_b64(key.expose())).await?;
        Ok((record, key))
    }

    pub async fn list_api_keys(&self, tenant: &str, username: Option<&str>) -> Result<Vec<ApiKey>> {
        self.tenant(tenant)?;
        Ok(self.store.api_key_list(tenant, username).await?)
    }

    pub async fn revoke_api_key(&self, tenant: &str, id: &str) -> Result<()> {
        self.tenant(tenant)?;
        if self.store.api_key_revoke(tenant, id, self.now()).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("no live API key `{id}` in tenant `{tenant}`")))
        }
    }

    /// The user an API key speaks for. `tenant`: where the key is presented, if the API
    /// names one; a key never works at another tenant.
    pub async fn authenticate_api_key(&self, tenant: Option<&str>, key: &str) -> Result<(User, ApiKey)> {
        let bad = || Error::invalid_token("invalid, expired or revoked API key");
        if !key.starts_with(prefix::API_KEY) || key.len() > 200 {
            return Err(bad());
        }
        let k = self.store.api_key_by_hash(&secret::sha256_b64(key)).await?.ok_or_else(bad)?;
        let now = self.now();
        if tenant.is_some_and(|t| t != k.tenant) || k.revoked_at.is_some() || k.expires_at.is_some_and(|e| e <= now) {
            return Err(bad());
        }
        let user = self.store.user_get(&k.tenant, &k.username).await?.ok_or_else(bad)?;
        if user.disabled {
            return Err(bad());
        }
        // Record the use, at most once a minute per key.
        if k.last_used_at.is_none_or(|t| now - t >= 60) {
            self.store.api_key_touch(&k.id, now).await?;
        }
        Ok((user, k))
    }

    /// Mint a session token for a user authenticated by a front.
    pub fn issue_session(&self, user: &User, s: Session) -> Result<IssuedTokens> {
        let ts = self.tenant(&user.tenant)?;
        let now = self.now();
        let ttl = s.ttl.unwrap_or(ts.access_ttl);
        let mint = Mint {
            sub: &user.username,
            username: Some(&user.username),
            client_id: None,
            scope: s.scope,
            audience: s.audience.as_deref(),
            extra: s.extra,
            jti: secret::random_b64(self.rng.as_ref(), 16),
            exp: Some(now + ttl),
        };
        self.mint_access(&ts, mint, now)
    }
}
