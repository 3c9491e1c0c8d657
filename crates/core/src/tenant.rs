//! Tenants: the unit of isolation. Every object belongs to exactly one.

use crate::error::Result;
use crate::keys::Alg;
use crate::name::TenantName;
use crate::principal::GrantType;

/// Check a tenant name by the rules of [`TenantName`].
pub fn validate_tenant_name(name: &str) -> Result<()> {
    TenantName::parse(name).map(drop)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub name: TenantName,
    pub alg: Alg,
    /// Explicit issuer URL; when absent it is derived from the server's public URL.
    pub issuer: Option<String>,
    /// Access token lifetime in seconds; the deployment default when absent.
    pub access_ttl: Option<i64>,
    /// Refresh token lifetime in seconds; the deployment default when absent.
    pub refresh_ttl: Option<i64>,
    /// Host names that select this tenant.
    pub hosts: Vec<String>,
    /// The grants this tenant allows; `None` means every supported grant.
    pub allowed_grants: Option<Vec<GrantType>>,
    pub created_at: i64,
    /// How many clients a user who is not an administrator may own, made through a front's
    /// client API (Tapis); [`DEFAULT_MAX_USER_CLIENTS`] when absent. The operator (CLI) and
    /// the tenant's administrators are not limited.
    pub max_user_clients: Option<i64>,
    /// The longest access-token lifetime this tenant has had (recorded when it is lowered,
    /// and at start when the deployment default it follows changed): a replaced signing key
    /// stays published this long, so that no token it signed stops verifying early.
    pub longest_access_ttl: Option<i64>,
    /// Every user of the tenant must sign in with a second factor (TOTP).
    pub totp_required: bool,
}

/// By default only administrators create clients through a front's API.
pub const DEFAULT_MAX_USER_CLIENTS: i64 = 0;

impl Tenant {
    pub fn allows(&self, g: GrantType) -> bool {
        self.allowed_grants.as_ref().is_none_or(|list| list.contains(&g))
    }
}

/// A host name as tenants list it: lowercase, without port.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    match h.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hosts_lose_port_and_case() {
        assert_eq!(normalize_host("Acme.Example:8443"), "acme.example");
        assert_eq!(normalize_host("acme.example"), "acme.example");
    }

    #[test]
    fn names() {
        for ok in ["default", "a", "acme-1"] {
            assert!(validate_tenant_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a/b", "a.b", &"x".repeat(64)] {
            assert!(validate_tenant_name(bad).is_err(), "{bad}");
        }
    }
}
