//! Verification, introspection (RFC 7662) and revocation (RFC 7009).

use super::{Authority, Introspection, TenantState, lock_poisoned};
use crate::error::{Error, Result};
use crate::grant::ClientAuth;
use crate::secret::{self, prefix};
use crate::store::Revocation;
use crate::token::{self, AccessClaims};
use serde_json::{Map, Value};
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
    fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.read().map(|r| r.contains(jti)).unwrap_or(true)
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
        if self.is_revoked(&claims.jti) {
            return Err(token::Invalid::Revoked);
        }
        Ok(claims)
    }

    /// A bearer token presented to an API: valid, or `invalid_token`.
    pub fn bearer(&self, tenant: &str, token: &str) -> Result<Arc<AccessClaims>> {
        self.verify_access(tenant, token).map_err(|why| {
            Error::invalid_token(match why {
                token::Invalid::Expired => "the token has expired",
                token::Invalid::Revoked => "the token has been revoked",
                _ => "the token is not valid here",
            })
        })
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
        if token.starts_with(prefix::LEGACY_TOKEN) {
            return self.introspect_legacy(&ts, token).await;
        }
        let Ok(c) = self.verify_access(tenant, token) else {
            return Ok(None);
        };
        let c = AccessClaims::clone(&c);
        let mut out = Map::new();
        out.insert("active".into(), true.into());
        if let Some(s) = c.scope {
            out.insert("scope".into(), s.into());
        }
        if let Some(id) = c.client_id {
            out.insert("client_id".into(), id.into());
        }
        if let Some(u) = c.username {
            out.insert("username".into(), u.into());
        }
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

    async fn introspect_legacy(&self, ts: &TenantState, token: &str) -> Result<Option<Introspection>> {
        let Some(r) = self.store.legacy_get(&secret::sha256_b64(token)).await? else {
            return Ok(None);
        };
        if r.tenant != ts.tenant.name || r.expires_at <= self.now() || self.is_revoked(&r.jti) {
            return Ok(None);
        }
        let mut out = Map::new();
        out.insert("active".into(), true.into());
        if let Some(s) = r.scope {
            out.insert("scope".into(), s.into());
        }
        if let Some(c) = r.client_id {
            out.insert("client_id".into(), c.into());
        }
        if let Some(u) = r.username {
            out.insert("username".into(), u.into());
        }
        out.insert("token_type".into(), "Bearer".into());
        out.insert("exp".into(), r.expires_at.into());
        out.insert("iat".into(), r.issued_at.into());
        out.insert("sub".into(), r.subject.into());
        out.insert("iss".into(), ts.issuer.clone().into());
        out.insert("jti".into(), r.jti.into());
        out.insert("tenant".into(), r.tenant.into());
        Ok(Some(out))
    }

    /// RFC 7009: revoke a token issued to the calling client. Unknown, foreign or invalid
    /// tokens are answered with success and change nothing (section 2.2).
    pub async fn revoke(&self, tenant: &str, auth: &ClientAuth, token: &str, _hint: Option<&str>) -> Result<()> {
        self.tenant(tenant)?;
        let caller = self.authenticate_client(tenant, auth).await?;
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
                let revoked = self.store.refresh_revoke_family(&r.family_id, now).await?;
                self.remember_revoked(revoked)?;
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
                self.record_revocation(Revocation { tenant: r.tenant, jti: r.jti.clone(), expires_at: r.expires_at })
                    .await?;
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

    /// Put an access token on the revocation list; returns once that is durable.
    pub async fn revoke_access(&self, claims: &AccessClaims) -> Result<()> {
        self.record_revocation(Revocation {
            tenant: claims.tenant.clone(),
            jti: claims.jti.clone(),
            expires_at: claims.exp,
        })
        .await
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
