//! Administration beyond creating things: deleting tenants, changing users (profile, roles,
//! passwords), rotating client secrets, and a user's refresh families (their sessions).
//! Every operation takes the [`Actor`] asking; the admin API and the CLI call the same ones.

use super::access::{Action, Actor};
use super::{Authority, DEFAULT_TENANT};
use crate::audit::EventKind;
use crate::error::{Error, ErrorKind, Result};
use crate::name::{TenantName, Username};
use crate::page::{Page, PageRequest, page};
use crate::principal::{Client, GrantType, ROLE_SUPERADMIN, User, parse_scope};
use crate::secret::{self, Secret, prefix};
use crate::store::{BrowserSession, FamilyInfo};
use crate::tenant::Tenant;

/// Which users a list shows; `None` matches all.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Users holding this role.
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// Usernames beginning with this.
    pub prefix: Option<String>,
}

/// Changes to a user; `None` leaves a field as it is (a profile field set to `""` is cleared).
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Option<Vec<String>>,
    /// Require (or stop requiring) a second factor of the user (administrators).
    pub totp_required: Option<bool>,
}

/// Changes to a client; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    pub name: Option<String>,
    pub callback_url: Option<String>,
    pub description: Option<String>,
    pub grants: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<String>>,
    /// Exact redirect URIs of the code flow (replacing the list).
    pub redirect_uris: Option<Vec<String>>,
    /// Where RP-initiated logout may send the person back (replacing the list).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// A first-party client skips the consent page.
    pub first_party: Option<bool>,
}

/// The longest grace period of a rotated client secret: 30 days.
pub const MAX_SECRET_GRACE: i64 = 30 * 86_400;

fn set_text(field: &mut Option<String>, value: Option<String>, name: &'static str) -> Result<()> {
    match value {
        None => Ok(()),
        Some(v) if v.len() > 320 => Err(Error::invalid_request(format!("{name} is too long")).at(name)),
        Some(v) if v.trim().is_empty() => {
            *field = None;
            Ok(())
        }
        Some(v) => {
            *field = Some(v);
            Ok(())
        }
    }
}

fn check_roles(roles: &[String]) -> Result<()> {
    for r in roles {
        if r.is_empty() || r.len() > 64 || !r.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b)) {
            return Err(Error::invalid_request(format!("invalid role `{r}`")).at("roles"));
        }
    }
    Ok(())
}

impl Authority {
    /// Roles `actor` may hand out in `tenant`: `superadmin` only in the default tenant, and only
    /// by whoever may manage tenants (it is that power).
    pub(super) async fn may_grant_roles(&self, actor: &Actor<'_>, tenant: &str, roles: &[String]) -> Result<()> {
        check_roles(roles)?;
        if roles.iter().any(|r| r == ROLE_SUPERADMIN) {
            if tenant != DEFAULT_TENANT {
                return Err(Error::invalid_request("superadmin is a role of the default tenant only").at("roles"));
            }
            self.authorize(actor, tenant, Action::ManageTenants).await?;
        }
        Ok(())
    }

    // ----- tenants ------------------------------------------------------------------------

    /// Delete a tenant and everything in it. The default tenant stays.
    pub async fn delete_tenant(&self, actor: &Actor<'_>, tenant: &str) -> Result<Tenant> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageTenants).await?;
            if tenant == DEFAULT_TENANT {
                return Err(Error::invalid_request("the default tenant cannot be deleted"));
            }
            let ts = self.tenant(tenant)?;
            if !self.store.tenant_delete(&ts.tenant.name).await? {
                return Err(Error::not_found(format!("tenant `{tenant}` not found")));
            }
            self.load_tenant(&ts.tenant.name).await?;
            if let Some(m) = self.clients.write().map_err(super::lock_poisoned)?.get_mut(tenant) {
                m.clear();
            }
            Ok(ts.tenant.clone())
        }
        .await;
        // Recorded at the default tenant, where those who manage tenants live: the deleted
        // tenant's own trail can no longer be read.
        self.record_change(actor, DEFAULT_TENANT, EventKind::TenantDelete, tenant, &done);
        done
    }

    /// One page of the tenants (by name).
    pub async fn tenants_page(&self, actor: &Actor<'_>, req: &PageRequest) -> Result<Page<(Tenant, String)>> {
        page(self.list_tenants(actor).await?, |(t, _)| t.name.as_str(), req)
    }

    // ----- users --------------------------------------------------------------------------

    /// One page of the users matching `filter` (by username).
    pub async fn users_page(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        filter: &UserFilter,
        req: &PageRequest,
    ) -> Result<Page<User>> {
        let users = self.list_users(actor, tenant).await?;
        let matching: Vec<User> = users
            .into_iter()
            .filter(|u| filter.role.as_ref().is_none_or(|r| u.roles.contains(r)))
            .filter(|u| filter.disabled.is_none_or(|d| u.disabled == d))
            .filter(|u| filter.prefix.as_ref().is_none_or(|p| u.username.starts_with(p.as_str())))
            .collect();
        page(matching, |u| u.username.as_str(), req)
    }

    /// Change a user's profile (the user or an administrator) or roles (administrators).
    pub async fn update_user(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        update: UserUpdate,
    ) -> Result<User> {
        let done = async {
            let by_admins = update.roles.is_some() || update.totp_required.is_some();
            let action = if by_admins { Action::ManageUsers } else { Action::ManageCredentials { username } };
            self.authorize(actor, tenant, action).await?;
            let mut user = self.user_named(tenant, username).await?;
            let p = &mut user.profile;
            set_text(&mut p.email, update.email, "email")?;
            set_text(&mut p.given_name, update.given_name, "given_name")?;
            set_text(&mut p.last_name, update.last_name, "last_name")?;
            if let Some(required) = update.totp_required {
                user.totp.required = required;
            }
            if let Some(roles) = update.roles {
                self.may_grant_roles(actor, tenant, &roles).await?;
                user.roles = roles;
            }
            self.save_user(&user).await?;
            Ok(user)
        }
        .await;
        self.record_change(actor, tenant, EventKind::UserUpdate, username, &done);
        done
    }

    async fn save_user(&self, user: &User) -> Result<()> {
        if self.store.user_update(user).await? {
            Ok(())
        } else {
            Err(Error::not_found(format!("user `{}` not found", user.username)))
        }
    }

    /// Set a user's password (administrators); every refresh family and browser session of the
    /// user ends.
    pub async fn reset_password(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        password: Secret,
    ) -> Result<()> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageUsers).await?;
            let user = self.user_named(tenant, username).await?;
            self.replace_password(user, password).await
        }
        .await;
        self.record_change(actor, tenant, EventKind::PasswordChange, username, &done);
        done
    }

    /// A user changes their own password, giving the old one (counted against the sign-in
    /// limits like a sign-in); every refresh family of the user ends.
    pub async fn change_password(&self, actor: &Actor<'_>, tenant: &str, old: Secret, new: Secret) -> Result<()> {
        let done = async {
            let me = actor.user()?;
            let username = me.username.as_str();
            self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
            let counters = self.limits.login(tenant, username, None);
            let reserved_at = self.reserve_attempt(&counters).await?;
            let checked = self.password_matches(tenant, username, old).await;
            let failed = matches!(&checked, Err(e) if e.kind == ErrorKind::InvalidGrant);
            self.settle_attempt(&counters, reserved_at, failed, checked.is_ok()).await?;
            let user = checked.map_err(|e| match e.kind {
                ErrorKind::InvalidGrant => Error::invalid_request("the current password is wrong").at("old_password"),
                _ => e,
            })?;
            self.replace_password(user, new).await
        }
        .await;
        let username = actor.user().map(|u| u.username.as_str()).unwrap_or_default();
        self.record_change(actor, tenant, EventKind::PasswordChange, username, &done);
        done
    }

    async fn replace_password(&self, mut user: User, password: Secret) -> Result<()> {
        secret::check_password_policy(password.expose()).map_err(|e| e.at("password"))?;
        user.password_hash = self.hasher.hash(password).await?;
        self.save_user(&user).await?;
        self.store.browser_sessions_end(&user.tenant, &user.username, self.now()).await?;
        self.end_user_families(&user.tenant, &user.username).await.map(drop)
    }

    /// Revoke every live refresh family of a user (no access decision: for the engine).
    async fn end_user_families(&self, tenant: &TenantName, username: &Username) -> Result<usize> {
        let ts = self.tenant(tenant)?;
        let now = self.now();
        let families = self.store.user_families(tenant, username, now).await?;
        for f in &families {
            self.revoke_family(&ts, &f.family_id, now).await?;
        }
        Ok(families.len())
    }

    /// A user's live refresh families: the sessions of their applications.
    pub async fn user_families(&self, actor: &Actor<'_>, tenant: &str, username: &str) -> Result<Vec<FamilyInfo>> {
        self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
        let user = self.user_named(tenant, username).await?;
        Ok(self.store.user_families(&user.tenant, &user.username, self.now()).await?)
    }

    /// Revoke one of a user's refresh families (with the access tokens it issued).
    pub async fn revoke_user_family(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        family_id: &str,
    ) -> Result<()> {
        let done = async {
            let families = self.user_families(actor, tenant, username).await?;
            if !families.iter().any(|f| f.family_id == family_id) {
                return Err(Error::not_found(format!("no live session `{family_id}` of user `{username}`")));
            }
            self.revoke_family(&*self.tenant(tenant)?, family_id, self.now()).await
        }
        .await;
        let e = self.by(actor, tenant, EventKind::TokenRevoke).subject(username);
        self.record(e.detail(format!("family={family_id}")).outcome_of(&done));
        done
    }

    /// A user's live browser sessions (signed in at the login page), newest first.
    pub async fn user_browser_sessions(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
    ) -> Result<Vec<BrowserSession>> {
        self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
        let user = self.user_named(tenant, username).await?;
        let now = self.now();
        let idle = self.settings.session_idle;
        let live = self.store.browser_sessions_of(&user.tenant, &user.username, now).await?;
        Ok(live.into_iter().filter(|s| s.last_seen_at + idle > now).collect())
    }

    /// End one of a user's browser sessions (by its `sid`): the next authorization request
    /// from that browser asks for the password again.
    pub async fn end_user_browser_session(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
        sid: &str,
    ) -> Result<()> {
        let done = async {
            let live = self.user_browser_sessions(actor, tenant, username).await?;
            let Some(session) = live.iter().find(|s| s.sid == sid) else {
                return Err(Error::not_found(format!("no live browser session `{sid}` of user `{username}`")));
            };
            let name = TenantName::parse(&session.tenant)?;
            self.store.browser_session_revoke(&name, sid, self.now()).await?;
            Ok(())
        }
        .await;
        let e = self.by(actor, tenant, EventKind::TokenRevoke).subject(username);
        self.record(e.detail(format!("browser_session={sid}")).outcome_of(&done));
        done
    }

    /// Revoke every refresh family and browser session of a user; returns how many there were.
    pub async fn revoke_user_families(&self, actor: &Actor<'_>, tenant: &str, username: &str) -> Result<usize> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
            let user = self.user_named(tenant, username).await?;
            let browsers = self.store.browser_sessions_end(&user.tenant, &user.username, self.now()).await?;
            let families = self.end_user_families(&user.tenant, &user.username).await?;
            Ok(families + usize::try_from(browsers).unwrap_or(usize::MAX))
        }
        .await;
        let e = self.by(actor, tenant, EventKind::TokenRevoke).subject(username);
        let e = match &done {
            Ok(n) => e.detail(format!("families={n}")),
            Err(err) => e.detail("families=all").failed(err),
        };
        self.record(e);
        done
    }

    /// New recovery codes for a user with two-factor authentication on (the old ones stop
    /// working); shown once.
    pub async fn regenerate_recovery_codes(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        username: &str,
    ) -> Result<Vec<String>> {
        let done = async {
            self.authorize(actor, tenant, Action::ManageCredentials { username }).await?;
            let user = self.user_named(tenant, username).await?;
            if !user.totp.enabled {
                return Err(Error::conflict("two-factor authentication is not enabled"));
            }
            self.new_recovery_codes(&user).await
        }
        .await;
        self.record_change(actor, tenant, EventKind::RecoveryCodes, username, &done);
        done
    }

    // ----- clients ------------------------------------------------------------------------

    /// One page of the clients `actor` may manage (by client id).
    pub async fn clients_page(&self, actor: &Actor<'_>, tenant: &str, req: &PageRequest) -> Result<Page<Client>> {
        page(self.list_clients(actor, tenant).await?, |c| c.client_id.as_str(), req)
    }

    /// A new generated secret for a confidential client, shown once. The replaced one keeps
    /// working for `grace` seconds (0: stops at once), so that deployments can switch over.
    pub async fn rotate_client_secret(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        client_id: &str,
        grace: i64,
    ) -> Result<(Client, Secret)> {
        let done = async {
            if !(0..=MAX_SECRET_GRACE).contains(&grace) {
                return Err(
                    Error::invalid_request(format!("the grace period must be 0-{MAX_SECRET_GRACE} s")).at("grace")
                );
            }
            let mut c = self.get_client(actor, tenant, client_id).await?;
            let Some(old) = c.secret_hash.take() else {
                return Err(Error::invalid_request("a public client has no secret"));
            };
            let s = secret::generate_secret(self.rng.as_ref(), prefix::CLIENT_SECRET);
            let now = self.now();
            c.secret_hash = Some(secret::sha256_b64(s.expose()));
            c.previous_secret = (grace > 0).then(|| (old, now + grace));
            c.updated_at = now;
            self.save_client(&c).await?;
            Ok((c, s))
        }
        .await;
        let e = self.by(actor, tenant, EventKind::ClientSecretRotate).subject(client_id).client(Some(client_id));
        self.record(e.detail(format!("grace={grace}")).outcome_of(&done));
        done
    }

    pub(super) async fn save_client(&self, c: &Client) -> Result<()> {
        let found = self.store.client_update(c).await?;
        self.forget_client(&c.tenant, &c.client_id)?;
        if found { Ok(()) } else { Err(Error::not_found(format!("client `{}` not found", c.client_id))) }
    }

    /// Apply `update` to a client (validated as at creation).
    pub(super) fn apply_client_update(c: &mut Client, update: ClientUpdate) -> Result<()> {
        if let Some(n) = update.name {
            if n.trim().is_empty() || n.len() > 200 {
                return Err(Error::invalid_request("client name must be 1-200 characters").at("name"));
            }
            c.name = n;
        }
        if let Some(u) = update.callback_url {
            c.callback_url = Some(crate::RedirectUri::parse(&u).map_err(|e| e.at("callback_url"))?);
        }
        if update.description.is_some() {
            c.description = update.description;
        }
        if let Some(g) = update.grants {
            if g.is_empty() {
                return Err(Error::invalid_request("a client needs at least one grant type").at("grants"));
            }
            if c.is_public() && g.contains(&GrantType::ClientCredentials) {
                return Err(Error::invalid_request("a public client cannot use client_credentials").at("grants"));
            }
            c.grants = g;
        }
        if let Some(u) = update.redirect_uris {
            c.redirect_uris = super::admin::redirect_uri_list(&u).map_err(|e| e.at("redirect_uris"))?;
        }
        if let Some(u) = update.post_logout_redirect_uris {
            c.post_logout_redirect_uris =
                super::admin::redirect_uri_list(&u).map_err(|e| e.at("post_logout_redirect_uris"))?;
        }
        if let Some(f) = update.first_party {
            c.first_party = f;
        }
        if let Some(s) = update.scopes {
            c.scopes = parse_scope(&s.join(" ")).map_err(|e| Error::invalid_request(e.description).at("scopes"))?;
        }
        Ok(())
    }
}
