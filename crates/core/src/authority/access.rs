//! Who is asking, and what they may do. Every admin and self-service operation of the
//! [`Authority`] takes an [`Actor`], and [`Authority::authorize`] alone decides: fronts and
//! the CLI parse and render, they make no access decision of their own.

use super::{Audience, Authority};
use crate::error::{Error, Result};
use crate::name::TenantName;
use crate::principal::{Client, User};
use crate::token::AccessClaims;
use std::sync::Arc;

/// Who is asking for an operation.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// The operator at the CLI, who holds the store (and could change it directly).
    Operator,
    /// A user of a tenant, signed in with a token or an API key.
    User(&'a User),
    /// A client acting for itself (a machine token).
    Client { tenant: &'a str, client_id: &'a str },
}

impl<'a> Actor<'a> {
    /// The user asking, for APIs only a user may call.
    pub fn user(&self) -> Result<&'a User> {
        match self {
            Actor::User(u) => Ok(u),
            _ => Err(Error::forbidden("this API needs a user's token")),
        }
    }

    /// A short description for logs and the audit trail (no secret).
    pub fn describe(&self) -> String {
        match self {
            Actor::Operator => "operator".to_owned(),
            Actor::User(u) => format!("user {}@{}", u.username, u.tenant),
            Actor::Client { tenant, client_id } => format!("client {client_id}@{tenant}"),
        }
    }
}

/// Who presented a bearer token: an active user, or a client with its machine token.
#[derive(Debug, Clone)]
pub enum Caller {
    User(Box<User>, Arc<AccessClaims>),
    Client(Arc<AccessClaims>),
}

impl Caller {
    pub fn actor(&self) -> Actor<'_> {
        match self {
            Caller::User(u, _) => Actor::User(u),
            Caller::Client(c) => {
                Actor::Client { tenant: &c.tenant, client_id: c.client_id.as_deref().unwrap_or_default() }
            }
        }
    }

    pub fn claims(&self) -> &AccessClaims {
        match self {
            Caller::User(_, c) | Caller::Client(c) => c,
        }
    }
}

/// What an actor asks to do, in one tenant.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Create or list tenants.
    ManageTenants,
    /// Read a tenant's settings and keys.
    ReadTenant,
    /// Change a tenant's policy, rotate its keys.
    ConfigureTenant,
    /// Create, disable or enable users.
    ManageUsers,
    /// Read users' profiles.
    ReadUsers,
    /// Sign in to an administrators' API (SFTPGo's admin token).
    Administer,
    /// Read the tenant's audit log.
    ReadAudit,
    /// Register a client (owned by the user asking).
    CreateClient,
    /// Read, change or delete this client.
    ManageClient(&'a Client),
    /// A user's own credentials: second factor, API keys.
    ManageCredentials { username: &'a str },
}

fn admins_only() -> Error {
    Error::forbidden("only tenant administrators may do this")
}

impl Authority {
    /// Who presents `token` to an API that accepts `accepts`: its user (who must be active),
    /// or the client of a machine token. `invalid_token` otherwise; a store outage is
    /// `unavailable`.
    pub async fn bearer_caller(&self, tenant: &str, token: &str, accepts: &[Audience<'_>]) -> Result<Caller> {
        let claims = self.bearer(tenant, token, accepts)?;
        match claims.user() {
            None => Ok(Caller::Client(claims)),
            Some(username) => Ok(Caller::User(Box::new(self.active_user(tenant, username).await?), claims)),
        }
    }

    /// May `actor` do `action` in `tenant`? `forbidden` if not, or `not_found` where telling
    /// would reveal that something exists (someone else's client).
    pub async fn authorize(&self, actor: &Actor<'_>, tenant: &str, action: Action<'_>) -> Result<()> {
        let user = match actor {
            Actor::Operator => return Ok(()),
            Actor::Client { .. } => return Err(Error::forbidden("this API needs a user's token")),
            Actor::User(u) => *u,
        };
        if user.disabled {
            return Err(Error::forbidden("not an active user of this tenant"));
        }
        // A superadmin of the default tenant manages every tenant (an unknown one is the
        // operation's own `not_found`).
        if user.is_superadmin() {
            return Ok(());
        }
        if user.tenant != tenant {
            return Err(Error::forbidden("not an active user of this tenant"));
        }
        let admin = user.is_admin();
        match action {
            Action::ManageTenants => Err(Error::forbidden("only the operator or a superadmin may manage tenants")),
            Action::ReadTenant
            | Action::ConfigureTenant
            | Action::ManageUsers
            | Action::Administer
            | Action::ReadAudit => {
                if admin {
                    Ok(())
                } else {
                    Err(admins_only())
                }
            }
            Action::ReadUsers => Ok(()),
            Action::ManageCredentials { username } => {
                if admin || username == user.username {
                    Ok(())
                } else {
                    Err(admins_only())
                }
            }
            Action::ManageClient(c) => {
                if admin || c.owner.as_deref() == Some(user.username.as_str()) {
                    Ok(())
                } else {
                    // Someone else's client is indistinguishable from a missing one.
                    Err(Error::not_found(format!("client `{}` not found", c.client_id)))
                }
            }
            Action::CreateClient if admin => Ok(()),
            Action::CreateClient => {
                // From the store, not the cache: a policy just changed on another node counts.
                let not_found = || Error::not_found(format!("tenant `{tenant}` not found"));
                let name = TenantName::parse(tenant).map_err(|_| not_found())?;
                let t = self.store.tenant_get(&name).await?.ok_or_else(not_found)?;
                let limit = t.max_user_clients.unwrap_or(crate::tenant::DEFAULT_MAX_USER_CLIENTS);
                let owned = self
                    .store
                    .client_list(&t.name)
                    .await?
                    .iter()
                    .filter(|c| c.owner.as_deref() == Some(user.username.as_str()))
                    .count();
                if i64::try_from(owned).unwrap_or(i64::MAX) < limit {
                    Ok(())
                } else if limit == 0 {
                    Err(Error::forbidden("only tenant administrators may create clients here"))
                } else {
                    Err(Error::forbidden(format!("a user may own at most {limit} clients in this tenant")))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_users_are_users() -> crate::Result<()> {
        let u = User {
            tenant: crate::TenantName::parse("t")?,
            username: crate::Username::parse("u")?,
            password_hash: String::new(),
            roles: vec![],
            disabled: false,
            created_at: 0,
            profile: Default::default(),
            totp: Default::default(),
        };
        assert_eq!(Actor::User(&u).user().map(|u| u.username.as_str()).ok(), Some("u"));
        assert!(Actor::Operator.user().is_err());
        assert!(Actor::Client { tenant: "t", client_id: "c" }.user().is_err());
        assert_eq!(Actor::User(&u).describe(), "user u@t");
        Ok(())
    }
}
