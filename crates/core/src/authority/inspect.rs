//! Verification, introspection (RFC 7662) and revocation (RFC 7009).

use super::{Audience, Authority, Introspection, TenantState, lock_poisoned};
use crate::audit::{ActorKind, AuditEvent, EventKind};
use crate::error::{Error, Result};
use crate::grant::ClientAuth;
use crate::name::{ClientId, TenantName, Username};
use crate::principal::User;
use crate::secret::{self, prefix};
use crate::store::Revocation;
use crate::token::{self, AccessClaims};
use serde_json::Value;
use std::sync::Arc;

/// How many verified tokens to remember (each a few hundred bytes).
const VERIFIED_CACHE_MAX: usize = 50_000;

fn verified_key(tenant: &str, token: &str) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(tenant.as_bytes());
    ctx.update(&[0]);
    ctx.update(token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

impl Authority {
    /// Whether any of `ids` (a token, its session, its API key) has been revoked.
    pub(super) fn any_revoked<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> bool {
        self.revoked.read().map(|r| ids.into_iter().any(|id| r.contains(id))).unwrap_or(true)
    }

    /// Until when a revoked session or API key must stay on the revocation list: the
    /// longest a token of it may still live (no token of it is minted after), which is at
    /// most the longest access lifetime the tenant has had.
    pub(super) fn session_horizon(&self, ts: &TenantState, now: i64) -> i64 {
        now + ts.key_ttl.max(self.settings.access_ttl)
    }

    /// Verify an access token issued by `tenant`: signature with the key named by `kid`
    /// and that key's algorithm only, issuer, tenant, expiry and revocation.
    ///
    /// A token whose signature was checked once is remembered (by the SHA-256 of tenant and
    /// token) until it expires; expiry and revocation are still checked on every call.
    pub fn verify_access(&self, tenant: &str, token: &str) -> Result<Arc<AccessClaims>, token::Invalid> {
        let now = self.now();
        let key = verified_key(tenant, token);
        let cached = self.verified.read().ok().and_then(|m| m.get(&key).cloned());
        let claims = match cached {
            Some(c) => c,
            None => {
                let ts = self.tenant(tenant).map_err(|_| token::Invalid::WrongTenant)?;
                let c = Arc::new(token::verify(token, &ts.ring, &ts.issuer, &ts.tenant.name, now, ts.key_ttl)?);
                if let Ok(mut m) = self.verified.write() {
                    if m.len() >= VERIFIED_CACHE_MAX {
                        m.retain(|_, v| v.exp > now);
                        if m.len() >= VERIFIED_CACHE_MAX {
                            m.clear();
                        }
                    }
                    m.insert(key, c.clone());
                }
                c
            }
        };
        if claims.exp <= now {
            return Err(token::Invalid::Expired);
        }
        // A machine token has only its own id; a user's token also its session and the API
        // key it came from, either of which may have been revoked since.
        let ids = [Some(claims.jti.as_str()), claims.sid.as_deref(), claims.api_key_id.as_deref()];
        if self.any_revoked(ids.into_iter().flatten()) {
            return Err(token::Invalid::Revoked);
        }
        Ok(claims)
    }

    /// [`Self::verify_access`] for an API that accepts only tokens meant for it.
    pub fn verify_for(
        &self,
        tenant: &str,
        token: &str,
        accepts: &[Audience<'_>],
    ) -> Result<Arc<AccessClaims>, token::Invalid> {
        let claims = self.verify_access(tenant, token)?;
        let meant = accepts.iter().any(|a| match a {
            // The issuer was checked: a token for the tenant's default audience has aud = iss.
            Audience::Issuer => claims.aud == claims.iss,
            Audience::Named(name) => claims.aud == *name,
        });
        if meant { Ok(claims) } else { Err(token::Invalid::WrongAudience) }
    }

    /// A bearer token presented to an API that accepts `accepts`: valid and meant for it,
    /// or `invalid_token`.
    pub fn bearer(&self, tenant: &str, token: &str, accepts: &[Audience<'_>]) -> Result<Arc<AccessClaims>> {
        self.verify_for(tenant, token, accepts).map_err(|why| {
            Error::invalid_token(match why {
                token::Invalid::Expired => "the token has expired",
                token::Invalid::Revoked => "the token has been revoked",
                token::Invalid::WrongAudience => "the token is not meant for this API",
                _ => "the token is not valid here",
            })
        })
    }

    /// The active user a bearer token speaks for, and its claims (from which a token minted
    /// for that user inherits: [`crate::token::Provenance::inherited`]). A machine token, an
    /// unknown or disabled user is `invalid_token`; a store outage is `unavailable`.
    pub async fn bearer_user(
        &self,
        tenant: &str,
        token: &str,
        accepts: &[Audience<'_>],
    ) -> Result<(User, Arc<AccessClaims>)> {
        let claims = self.bearer(tenant, token, accepts)?;
        let username = claims.user().ok_or_else(|| Error::invalid_token("the token names no user"))?;
        Ok((self.active_user(tenant, username).await?, claims))
    }

    /// The user a verified token names, if still active: `invalid_token` otherwise.
    pub(super) async fn active_user(&self, tenant: &str, username: &str) -> Result<User> {
        match self.find_user(tenant, username).await? {
            Some(u) if !u.disabled => Ok(u),
            _ => Err(Error::invalid_token("the token's user is disabled or no longer exists")),
        }
    }

    /// RFC 7662. A token this caller may not see, or that is not live, is inactive.
    pub async fn introspect(
        &self,
        tenant: &str,
        auth: &ClientAuth,
        token: &str,
        origin: Option<std::net::IpAddr>,
    ) -> Result<Introspection> {
        let ts = self.tenant(tenant)?;
        let caller = self.authenticate_client(tenant, auth, origin).await?;
        if caller.is_public() {
            return Err(Error::invalid_client("introspection requires a confidential client"));
        }
        if token.starts_with(prefix::REFRESH_TOKEN) {
            return self.introspect_refresh(&ts, token).await;
        }
        if token.starts_with(prefix::LEGACY_TOKEN) {
            return self.introspect_legacy(&ts, token).await;
        }
        let Ok(c) = self.verify_access(tenant, token) else {
            return Ok(Introspection::inactive());
        };
        let c = AccessClaims::clone(&c);
        let mut extra = c.extra;
        // A front's claim never stands in for one of the members above.
        extra.remove("active");
        extra.remove("token_type");
        Ok(Introspection {
            active: true,
            scope: c.scope,
            client_id: c.client_id,
            username: c.username,
            token_type: Some("Bearer"),
            exp: Some(c.exp),
            iat: Some(c.iat),
            sub: Some(c.sub),
            aud: Some(c.aud),
            iss: Some(c.iss),
            jti: Some(c.jti),
            tenant: Some(c.tenant),
            auth_time: c.auth_time,
            amr: c.amr,
            extra,
        })
    }

    async fn introspect_refresh(&self, ts: &TenantState, token: &str) -> Result<Introspection> {
        let now = self.now();
        let Some(r) = self.store.refresh_get(&secret::sha256_b64(token)).await? else {
            return Ok(Introspection::inactive());
        };
        if r.tenant != ts.tenant.name || r.family_revoked || r.used_at.is_some() || r.expires_at <= now {
            return Ok(Introspection::inactive());
        }
        Ok(Introspection {
            active: true,
            scope: r.scope,
            client_id: Some(r.client_id.into_string()),
            username: r.username.map(Username::into_string),
            token_type: Some("refresh_token"),
            exp: Some(r.expires_at),
            iat: Some(r.issued_at),
            sub: Some(r.subject),
            iss: Some(ts.issuer.clone()),
            tenant: Some(r.tenant.into_string()),
            auth_time: r.auth_time,
            amr: r.amr,
            ..Introspection::default()
        })
    }

    async fn introspect_legacy(&self, ts: &TenantState, token: &str) -> Result<Introspection> {
        let Some(r) = self.store.legacy_get(&secret::sha256_b64(token)).await? else {
            return Ok(Introspection::inactive());
        };
        if r.tenant != ts.tenant.name
            || r.expires_at <= self.now()
            || self.any_revoked(std::iter::once(r.jti.as_str()).chain(r.chain.iter().map(String::as_str)))
        {
            return Ok(Introspection::inactive());
        }
        Ok(Introspection {
            active: true,
            scope: r.scope,
            client_id: r.client_id.map(ClientId::into_string),
            username: r.username.map(Username::into_string),
            token_type: Some("Bearer"),
            exp: Some(r.expires_at),
            iat: Some(r.issued_at),
            sub: Some(r.subject),
            iss: Some(ts.issuer.clone()),
            jti: Some(r.jti),
            tenant: Some(r.tenant.into_string()),
            ..Introspection::default()
        })
    }

    /// RFC 7009: revoke a token issued to the calling client. Unknown, foreign or invalid
    /// tokens are answered with success and change nothing (section 2.2).
    pub async fn revoke(
        &self,
        tenant: &str,
        auth: &ClientAuth,
        token: &str,
        origin: Option<std::net::IpAddr>,
    ) -> Result<()> {
        self.tenant(tenant)?;
        let caller = self.authenticate_client(tenant, auth, origin).await?;
        self.revoke_token(tenant, token, Some(&caller.client_id)).await.map(|_| ())
    }

    /// Revoke a token on the strength of holding it (APIs whose revocation takes no client
    /// authentication, like Tapis). Returns the revoked token's id, if it was live.
    pub async fn revoke_by_possession(&self, tenant: &str, token: &str) -> Result<Option<String>> {
        self.tenant(tenant)?;
        self.revoke_token(tenant, token, None).await
    }

    /// Revoke `token` of `tenant`; with `client`, only if it was issued to that client.
    async fn revoke_token(&self, tenant: &str, token: &str, client: Option<&str>) -> Result<Option<String>> {
        let now = self.now();
        let owned = |c: Option<&str>| client.is_none() || client == c;
        if token.starts_with(prefix::REFRESH_TOKEN) {
            if let Some(r) = self.store.refresh_get(&secret::sha256_b64(token)).await?
                && r.tenant == tenant
                && owned(Some(&r.client_id))
            {
                self.revoke_family(&*self.tenant(tenant)?, &r.family_id, now).await?;
                let (kind, name) = revoker(client, r.username.as_deref(), Some(&r.client_id));
                let e = AuditEvent::new(tenant, EventKind::TokenRevoke, kind, name)
                    .subject(r.subject.as_str())
                    .client(Some(&r.client_id))
                    .detail(format!("refresh family={}", r.family_id));
                self.record(e);
                return Ok(Some(r.family_id));
            }
            return Ok(None);
        }
        if token.starts_with(prefix::LEGACY_TOKEN) {
            if let Some(r) = self.store.legacy_get(&secret::sha256_b64(token)).await?
                && r.tenant == tenant
                && r.expires_at > now
                && owned(r.client_id.as_deref())
            {
                self.record_revocation(Revocation {
                    tenant: r.tenant.clone(),
                    jti: r.jti.clone(),
                    expires_at: r.expires_at,
                })
                .await?;
                let (kind, name) = revoker(client, r.username.as_deref(), r.client_id.as_deref());
                let e = AuditEvent::new(tenant, EventKind::TokenRevoke, kind, name)
                    .subject(r.subject.as_str())
                    .client(r.client_id.as_deref())
                    .detail(format!("legacy jti={}", r.jti));
                self.record(e);
                return Ok(Some(r.jti));
            }
            return Ok(None);
        }
        match self.verify_access(tenant, token) {
            Ok(c) if owned(c.client_id.as_deref()) => {
                self.revoke_access(&c).await?;
                Ok(Some(c.jti.clone()))
            }
            _ => Ok(None),
        }
    }

    /// Revoke an access token. A token a person or client signed in for also ends its
    /// session: every token of the same refresh family (RFC 7009 section 2.1 allows revoking
    /// the refresh token with its access token; Hydra does the same) or renewed from the same
    /// sign-in, and every token minted from any of them. A token minted from another token
    /// (token exchange, a front's token from a bearer token) ends alone, so that a service
    /// cleaning up its own exchanged token does not sign the person out. Durable on return.
    pub async fn revoke_access(&self, claims: &AccessClaims) -> Result<()> {
        let done = self.end_access(claims).await;
        let (kind, name) = revoker(None, claims.username.as_deref(), claims.client_id.as_deref());
        let e = AuditEvent::new(&claims.tenant, EventKind::TokenRevoke, kind, name)
            .subject(claims.sub.as_str())
            .client(claims.client_id.as_deref())
            .detail(format!("access jti={}", claims.jti))
            .outcome_of(&done);
        self.record(e);
        done
    }

    async fn end_access(&self, claims: &AccessClaims) -> Result<()> {
        let own =
            Revocation { tenant: TenantName::parse(&claims.tenant)?, jti: claims.jti.clone(), expires_at: claims.exp };
        if claims.session_exp.is_some() {
            return self.record_revocation(own).await;
        }
        let now = self.now();
        let ts = self.tenant(&claims.tenant)?;
        match &claims.sid {
            // A refresh family (no more rotations), or the sign-in a renewed token belongs
            // to (which matches no family): the session ends, with every token of it.
            Some(sid) => {
                self.revoke_family(&ts, sid, now).await?;
                self.record_revocation(own).await
            }
            // The token is its own session. A person's may have been renewed (ICA) into
            // tokens that outlive it: it stays listed for as long as any of them can live.
            None if claims.username.is_some() => {
                let expires_at = self.session_horizon(&ts, now).max(claims.exp);
                self.record_revocation(Revocation { expires_at, ..own }).await
            }
            None => self.record_revocation(own).await,
        }
    }

    /// Revoke a refresh family in the store, then end it ([`Self::end_family`]).
    pub(super) async fn revoke_family(&self, ts: &TenantState, family_id: &str, now: i64) -> Result<()> {
        let revoked = self.store.refresh_revoke_family(family_id, now).await?;
        self.end_family(ts, family_id, revoked, now).await
    }

    /// After a refresh family was revoked in the store (`revoked`: its access tokens): list
    /// those, and the family itself as a session, so that tokens minted from its tokens die too.
    pub(super) async fn end_family(
        &self,
        ts: &TenantState,
        family_id: &str,
        revoked: Vec<Revocation>,
        now: i64,
    ) -> Result<()> {
        self.remember_revoked(revoked)?;
        let r = Revocation {
            tenant: ts.tenant.name.clone(),
            jti: family_id.to_owned(),
            expires_at: self.session_horizon(ts, now),
        };
        self.record_revocation(r).await
    }

    /// End every token minted from an API key (the key itself was revoked in the store).
    pub(super) async fn end_api_key(&self, ts: &TenantState, key_id: &str) -> Result<()> {
        let r = Revocation {
            tenant: ts.tenant.name.clone(),
            jti: key_id.to_owned(),
            expires_at: self.session_horizon(ts, self.now()),
        };
        self.record_revocation(r).await
    }

    async fn record_revocation(&self, r: Revocation) -> Result<()> {
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
}

/// Who revoked a token: the client that authenticated to do it, else its holder (its user,
/// or the client it was issued to).
fn revoker<'a>(
    authenticated: Option<&'a str>,
    username: Option<&'a str>,
    issued_to: Option<&'a str>,
) -> (ActorKind, Option<&'a str>) {
    match (authenticated, username) {
        (Some(c), _) => (ActorKind::Client, Some(c)),
        (None, Some(u)) => (ActorKind::User, Some(u)),
        (None, None) => (ActorKind::Client, issued_to),
    }
}
