//! Admin commands: tenants, users, clients, keys, token decoding. Each is one call into the
//! engine over the same data dir the server uses.

use crate::setup::open_admin;
use anyhow::{Result, anyhow, bail};
use clap::Subcommand;
use serde_json::json;
use std::io::BufRead;
use tessera_core::authority::Actor;
use tessera_core::authority::{ClientUpdate, NewClient, TenantPolicy, UserUpdate};
use tessera_core::keys::Alg;
use tessera_core::principal::{GrantType, Profile, parse_scope};
use tessera_core::secret::Secret;
use tessera_server::Config;

fn core_err(e: tessera_core::Error) -> anyhow::Error {
    anyhow!("{}", e.description)
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

#[derive(Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant with its first signing key.
    Create {
        name: String,
        /// Signing algorithm: EdDSA (default), ES256 or RS256.
        #[arg(long, default_value = "EdDSA", value_parser = parse_alg)]
        alg: Alg,
        /// Issuer URL (default: <public_url>/t/NAME).
        #[arg(long)]
        issuer: Option<String>,
        /// Access token lifetime in seconds (default: the server's).
        #[arg(long)]
        access_ttl: Option<i64>,
        /// Refresh token lifetime in seconds (default: the server's).
        #[arg(long)]
        refresh_ttl: Option<i64>,
        /// A host name that selects this tenant (repeatable).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's policy; options not given stay as they are.
    Policy {
        name: String,
        /// Access token lifetime in seconds.
        #[arg(long)]
        access_ttl: Option<i64>,
        /// Refresh token lifetime in seconds.
        #[arg(long)]
        refresh_ttl: Option<i64>,
        /// How many clients a user who is not an administrator may create and own through
        /// the Tapis clients API (default 0: administrators only).
        #[arg(long)]
        max_user_clients: Option<i64>,
        /// Host names that select the tenant (repeatable; replaces the list).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// A new signing algorithm (EdDSA, ES256, RS256): a key of it is added at once.
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Alg>,
        /// Whether every user must sign in with a second factor (TOTP): true or false.
        #[arg(long)]
        require_totp: Option<bool>,
    },
    /// Delete a tenant and everything in it (not the default tenant).
    Delete { name: String },
}

fn parse_alg(s: &str) -> Result<Alg, String> {
    s.parse::<Alg>().map_err(|e| e.description)
}

pub async fn tenant(config: &Config, cmd: TenantCmd) -> Result<()> {
    let auth = open_admin(config).await?;
    match cmd {
        TenantCmd::Create { name, alg, issuer, access_ttl, refresh_ttl, hosts, json } => {
            let t = auth
                .create_tenant(&Actor::Operator, &name, alg, issuer, access_ttl, refresh_ttl, hosts)
                .await
                .map_err(core_err)?;
            let issuer = auth.tenant(&t.name).map_err(core_err)?.issuer.clone();
            if json {
                print_json(&json!({"name": t.name, "alg": t.alg.as_str(), "issuer": issuer, "hosts": t.hosts}));
            } else {
                println!("created tenant {} ({}, issuer {issuer})", t.name, t.alg);
            }
        }
        TenantCmd::Delete { name } => {
            auth.delete_tenant(&Actor::Operator, &name).await.map_err(core_err)?;
            println!("deleted tenant {name}");
        }
        TenantCmd::Policy { name, access_ttl, refresh_ttl, max_user_clients, hosts, alg, require_totp } => {
            let hosts = (!hosts.is_empty()).then_some(hosts);
            let policy = TenantPolicy {
                access_ttl,
                refresh_ttl,
                max_user_clients,
                hosts,
                alg,
                totp_required: require_totp,
                ..Default::default()
            };
            let t = auth.update_tenant_policy(&Actor::Operator, &name, policy).await.map_err(core_err)?;
            let ts = auth.tenant(&t.name).map_err(core_err)?;
            println!(
                "tenant {}: access_ttl {}, refresh_ttl {}, max_user_clients {}",
                t.name,
                ts.access_ttl,
                ts.refresh_ttl,
                t.max_user_clients.unwrap_or(tessera_core::tenant::DEFAULT_MAX_USER_CLIENTS)
            );
        }
        TenantCmd::List { json } => {
            let list = auth.list_tenants(&Actor::Operator).await.map_err(core_err)?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|(t, iss)| {
                        json!({"name": t.name, "alg": t.alg.as_str(), "issuer": iss,
                               "access_ttl": t.access_ttl, "refresh_ttl": t.refresh_ttl})
                    })
                    .collect();
                print_json(&json!(v));
            } else {
                for (t, iss) in list {
                    println!("{}\t{}\t{}", t.name, t.alg, iss);
                }
            }
        }
    }
    Ok(())
}

/// `--tenant T`, shared by every command that acts in one tenant (default: `default`).
#[derive(clap::Args, Debug, Clone)]
pub struct TenantArg {
    #[arg(long = "tenant", default_value = tessera_core::DEFAULT_TENANT)]
    pub tenant: String,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; the password is read from standard input.
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        /// Read the password from standard input (one line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Role to grant (repeatable), e.g. admin.
        #[arg(long)]
        role: Vec<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
    },
    /// List users.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: no new tokens, refresh tokens stop working.
    Disable {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled user.
    Enable {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
    },
    /// Change a user's profile or roles; options not given stay as they are (an empty value
    /// clears a profile field).
    Update {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        /// The user's roles (repeatable; replaces them).
        #[arg(long)]
        role: Vec<String>,
        /// Remove every role.
        #[arg(long, conflicts_with = "role")]
        no_roles: bool,
        /// Whether the user must sign in with a second factor (TOTP): true or false.
        #[arg(long)]
        require_totp: Option<bool>,
    },
    /// Set a user's password, read from standard input; every session of the user ends.
    ResetPassword {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List a user's live sessions (refresh families).
    Sessions {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// End one session of a user (`--session ID`), or all of them.
    RevokeSessions {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        #[arg(long, allow_hyphen_values = true)]
        session: Option<String>,
    },
    /// Two-factor authentication (TOTP): enable, confirm, disable.
    #[command(subcommand)]
    Totp(TotpCmd),
}

#[derive(Subcommand, Debug)]
pub enum TotpCmd {
    /// Start enrolment: prints the otpauth:// URI, a QR code and the secret (once).
    Enable {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        /// Print {"otpauth_uri", "secret"} as JSON instead of the QR code.
        #[arg(long)]
        json: bool,
    },
    /// Confirm with a first code from the app; prints the ten recovery codes (once).
    Confirm {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        code: String,
        #[arg(long)]
        json: bool,
    },
    /// Turn two-factor authentication off.
    Disable {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
    },
    /// New recovery codes (the old ones stop working); printed once.
    RecoveryCodes {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        #[arg(long)]
        json: bool,
    },
}

fn qr_text(data: &str) -> Option<String> {
    let code = qrcode::QrCode::new(data.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build(),
    )
}

async fn totp(config: &Config, cmd: TotpCmd) -> Result<()> {
    let auth = open_admin(config).await?;
    match cmd {
        TotpCmd::Enable { tenant: TenantArg { tenant }, username, json } => {
            let e = auth.totp_enroll(&Actor::Operator, &tenant, &username).await.map_err(core_err)?;
            if json {
                print_json(&json!({"otpauth_uri": e.otpauth_uri, "secret": e.secret_base32}));
            } else {
                if let Some(qr) = qr_text(&e.otpauth_uri) {
                    println!("{qr}");
                }
                println!("otpauth URI: {}", e.otpauth_uri);
                println!("secret:      {}", e.secret_base32);
                println!(
                    "Scan it, then: tessera user totp confirm --tenant {tenant} --username {username} --code NNNNNN"
                );
            }
        }
        TotpCmd::Confirm { tenant: TenantArg { tenant }, username, code, json } => {
            let codes = auth.totp_confirm(&Actor::Operator, &tenant, &username, &code).await.map_err(core_err)?;
            if json {
                print_json(&json!({"recovery_codes": codes}));
            } else {
                println!(
                    "two-factor authentication is on for {username}. Recovery codes (each works once; shown once):"
                );
                for c in codes {
                    println!("  {c}");
                }
            }
        }
        TotpCmd::Disable { tenant: TenantArg { tenant }, username } => {
            auth.totp_disable(&Actor::Operator, &tenant, &username).await.map_err(core_err)?;
            println!("two-factor authentication is off for {username}");
        }
        TotpCmd::RecoveryCodes { tenant: TenantArg { tenant }, username, json } => {
            let codes = auth.regenerate_recovery_codes(&Actor::Operator, &tenant, &username).await.map_err(core_err)?;
            if json {
                print_json(&json!({"recovery_codes": codes}));
            } else {
                println!("new recovery codes for {username} (each works once; shown once):");
                for c in codes {
                    println!("  {c}");
                }
            }
        }
    }
    Ok(())
}

fn read_password_line() -> Result<Secret> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let pw = line.trim_end_matches(['\n', '\r']).to_owned();
    line.clear();
    if pw.is_empty() {
        bail!("empty password on standard input");
    }
    Ok(Secret::new(pw))
}

pub async fn user(config: &Config, cmd: UserCmd) -> Result<()> {
    match cmd {
        UserCmd::Create {
            tenant: TenantArg { tenant },
            username,
            password_stdin: _,
            role,
            email,
            given_name,
            last_name,
        } => {
            let password = read_password_line()?;
            let auth = open_admin(config).await?;
            let profile = Profile { email, given_name, last_name };
            let u = auth
                .create_user(&Actor::Operator, &tenant, &username, password, role, profile)
                .await
                .map_err(core_err)?;
            println!("created user {} in tenant {}", u.username, u.tenant);
        }
        UserCmd::List { tenant: TenantArg { tenant }, json } => {
            let auth = open_admin(config).await?;
            let users = auth.list_users(&Actor::Operator, &tenant).await.map_err(core_err)?;
            if json {
                let v: Vec<_> = users
                    .iter()
                    .map(|u| json!({"username": u.username, "roles": u.roles, "disabled": u.disabled, "created_at": u.created_at}))
                    .collect();
                print_json(&json!(v));
            } else {
                for u in users {
                    let state = if u.disabled { "disabled" } else { "active" };
                    println!("{}\t{}\t{}", u.username, u.roles.join(","), state);
                }
            }
        }
        UserCmd::Disable { tenant: TenantArg { tenant }, username } => {
            let auth = open_admin(config).await?;
            auth.set_user_disabled(&Actor::Operator, &tenant, &username, true).await.map_err(core_err)?;
            println!("disabled user {username} in tenant {tenant}");
        }
        UserCmd::Enable { tenant: TenantArg { tenant }, username } => {
            let auth = open_admin(config).await?;
            auth.set_user_disabled(&Actor::Operator, &tenant, &username, false).await.map_err(core_err)?;
            println!("enabled user {username} in tenant {tenant}");
        }
        UserCmd::Update {
            tenant: TenantArg { tenant },
            username,
            email,
            given_name,
            last_name,
            role,
            no_roles,
            require_totp,
        } => {
            let auth = open_admin(config).await?;
            let roles = (no_roles || !role.is_empty()).then_some(role);
            let update = UserUpdate { email, given_name, last_name, roles, totp_required: require_totp };
            let u = auth.update_user(&Actor::Operator, &tenant, &username, update).await.map_err(core_err)?;
            println!("updated user {} (roles: {})", u.username, u.roles.join(","));
        }
        UserCmd::ResetPassword { tenant: TenantArg { tenant }, username, password_stdin: _ } => {
            let password = read_password_line()?;
            let auth = open_admin(config).await?;
            auth.reset_password(&Actor::Operator, &tenant, &username, password).await.map_err(core_err)?;
            println!("password of {username} reset; their sessions have ended");
        }
        UserCmd::Sessions { tenant: TenantArg { tenant }, username, json } => {
            let auth = open_admin(config).await?;
            let list = auth.user_families(&Actor::Operator, &tenant, &username).await.map_err(core_err)?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|f| {
                        json!({"id": f.family_id, "client_id": f.client_id, "created_at": f.created_at,
                               "expires_at": f.expires_at, "last_used_at": f.last_used_at})
                    })
                    .collect();
                print_json(&json!(v));
            } else {
                for f in list {
                    println!("{}\t{}\tstarted {}\texpires {}", f.family_id, f.client_id, f.created_at, f.expires_at);
                }
            }
        }
        UserCmd::RevokeSessions { tenant: TenantArg { tenant }, username, session } => {
            let auth = open_admin(config).await?;
            match session {
                Some(id) => {
                    auth.revoke_user_family(&Actor::Operator, &tenant, &username, &id).await.map_err(core_err)?;
                    println!("ended session {id} of {username}");
                }
                None => {
                    let n = auth.revoke_user_families(&Actor::Operator, &tenant, &username).await.map_err(core_err)?;
                    println!("ended {n} sessions of {username}");
                }
            }
        }
        UserCmd::Totp(cmd) => totp(config, cmd).await?,
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Register a client; a confidential client's secret is printed once.
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        name: String,
        /// Allowed grants, comma-separated: authorization_code, client_credentials, password,
        /// refresh_token, device_code, token_exchange.
        #[arg(long, value_delimiter = ',', required = true, value_parser = parse_grant)]
        grant: Vec<GrantType>,
        /// Allowed scopes, space-separated.
        #[arg(long, default_value = "")]
        scope: String,
        /// A public client (no secret).
        #[arg(long)]
        public: bool,
        /// A redirect URI of the authorization code flow (repeatable; matched exactly, but for
        /// the port of a loopback address, RFC 8252).
        #[arg(long = "redirect-uri")]
        redirect_uri: Vec<String>,
        /// Where the logout endpoint may send people afterwards (repeatable).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uri: Vec<String>,
        /// The deployment's own application: people are not asked for consent.
        #[arg(long)]
        first_party: bool,
        #[arg(long)]
        json: bool,
    },
    /// List clients.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Change a client; options not given stay as they are.
    Update {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[arg(long)]
        name: Option<String>,
        /// Allowed grants, comma-separated (replaces them).
        #[arg(long, value_delimiter = ',', value_parser = parse_grant)]
        grant: Vec<GrantType>,
        /// Allowed scopes, space-separated (replaces them).
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        callback_url: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Exact redirect URIs of the code flow (repeatable; replaces them).
        #[arg(long = "redirect-uri")]
        redirect_uri: Vec<String>,
        /// Where logout may send people back (repeatable; replaces them).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uri: Vec<String>,
        /// Whether the client skips the consent page: true or false.
        #[arg(long)]
        first_party: Option<bool>,
    },
    /// A new secret for a confidential client, printed once; the old one keeps working for
    /// the grace period (e.g. 1h, 7d; default: stops at once).
    RotateSecret {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        #[arg(long, value_parser = parse_grace)]
        grace: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a client (its refresh tokens die with it).
    Delete {
        #[command(flatten)]
        tenant: TenantArg,
        /// Ids are base64url and may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

fn parse_grant(s: &str) -> Result<GrantType, String> {
    s.trim().parse::<GrantType>().map_err(|e| e.description)
}

pub async fn client(config: &Config, cmd: ClientCmd) -> Result<()> {
    let auth = open_admin(config).await?;
    match cmd {
        ClientCmd::Create {
            tenant: TenantArg { tenant },
            name,
            grant,
            scope,
            public,
            redirect_uri,
            post_logout_redirect_uri,
            first_party,
            json,
        } => {
            let mut spec = NewClient::new(&tenant, &name, grant);
            spec.scopes = parse_scope(&scope).map_err(core_err)?;
            spec.public = public;
            spec.redirect_uris = redirect_uri;
            spec.post_logout_redirect_uris = post_logout_redirect_uri;
            spec.first_party = first_party;
            let (c, secret) = auth.create_client(&Actor::Operator, spec).await.map_err(core_err)?;
            let secret = secret.as_ref().map(|s| s.expose().to_owned());
            if json {
                print_json(&json!({"client_id": c.client_id, "client_secret": secret}));
            } else {
                println!("client_id:     {}", c.client_id);
                match secret {
                    Some(s) => println!("client_secret: {s}  (shown once; store it now)"),
                    None => println!("public client: no secret"),
                }
            }
        }
        ClientCmd::List { tenant: TenantArg { tenant }, json } => {
            let list = auth.list_clients(&Actor::Operator, &tenant).await.map_err(core_err)?;
            if json {
                let v: Vec<_> = list
                    .iter()
                    .map(|c| {
                        json!({"client_id": c.client_id, "name": c.name, "public": c.is_public(),
                               "grants": c.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                               "scopes": c.scopes, "created_at": c.created_at,
                               "redirect_uris": c.all_redirect_uris().collect::<Vec<_>>(),
                               "post_logout_redirect_uris": c.post_logout_redirect_uris,
                               "first_party": c.first_party})
                    })
                    .collect();
                print_json(&json!(v));
            } else {
                for c in list {
                    let grants: Vec<_> = c.grants.iter().map(|g| g.as_str()).collect();
                    println!("{}\t{}\t{}\t{}", c.client_id, c.name, grants.join(","), c.scopes.join(" "));
                }
            }
        }
        ClientCmd::Update {
            tenant: TenantArg { tenant },
            client_id,
            name,
            grant,
            scope,
            callback_url,
            description,
            redirect_uri,
            post_logout_redirect_uri,
            first_party,
        } => {
            let scopes = scope.as_deref().map(parse_scope).transpose().map_err(core_err)?;
            let grants = (!grant.is_empty()).then_some(grant);
            let update = ClientUpdate {
                name,
                callback_url,
                description,
                grants,
                scopes,
                redirect_uris: (!redirect_uri.is_empty()).then_some(redirect_uri),
                post_logout_redirect_uris: (!post_logout_redirect_uri.is_empty()).then_some(post_logout_redirect_uri),
                first_party,
            };
            let c = auth.update_client(&Actor::Operator, &tenant, &client_id, update).await.map_err(core_err)?;
            println!("updated client {} ({})", c.client_id, c.name);
        }
        ClientCmd::RotateSecret { tenant: TenantArg { tenant }, client_id, grace, json } => {
            let grace = grace.unwrap_or(0);
            let (c, secret) =
                auth.rotate_client_secret(&Actor::Operator, &tenant, &client_id, grace).await.map_err(core_err)?;
            let until = c.previous_secret.as_ref().map(|p| p.1);
            if json {
                print_json(
                    &json!({"client_id": c.client_id, "client_secret": secret.expose(), "previous_secret_expires_at": until}),
                );
            } else {
                println!("client_secret: {}  (shown once; store it now)", secret.expose());
                match until {
                    Some(t) => println!("the previous secret works until {t}"),
                    None => println!("the previous secret no longer works"),
                }
            }
        }
        ClientCmd::Delete { tenant: TenantArg { tenant }, client_id } => {
            auth.delete_client(&Actor::Operator, &tenant, &client_id).await.map_err(core_err)?;
            println!("deleted client {client_id}");
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum KeyCmd {
    /// Add a new signing key: published at once, signs after the pre-publication delay.
    Rotate {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's keys and where each is in its life.
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        json: bool,
    },
    /// Retire a key before its time (it leaked, say): it leaves the JWK Set and tokens it
    /// signed stop verifying. Not the key that signs now: rotate first.
    Retire {
        #[command(flatten)]
        tenant: TenantArg,
        /// Key ids are base64url and may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

pub async fn key(config: &Config, cmd: KeyCmd) -> Result<()> {
    let auth = open_admin(config).await?;
    match cmd {
        KeyCmd::Rotate { tenant: TenantArg { tenant }, json } => {
            let k = auth.rotate_key(&Actor::Operator, &tenant).await.map_err(core_err)?;
            if json {
                print_json(&serde_json::to_value(&k)?);
            } else {
                println!("new key {} ({}) {}, signs from {}", k.kid, k.alg, k.status, k.activates_at);
            }
        }
        KeyCmd::Retire { tenant: TenantArg { tenant }, kid } => {
            let k = auth.retire_key(&Actor::Operator, &tenant, &kid).await.map_err(core_err)?;
            println!("retired key {} ({}), which was {}", k.kid, k.alg, k.status);
        }
        KeyCmd::List { tenant: TenantArg { tenant }, json } => {
            let keys = auth.list_keys(&Actor::Operator, &tenant).await.map_err(core_err)?;
            if json {
                print_json(&serde_json::to_value(&keys)?);
            } else {
                for k in keys {
                    println!("{}\t{}\t{}\tactivates {}", k.kid, k.alg, k.status, k.activates_at);
                }
            }
        }
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Show a token's header and claims, and whether its signature checks against this data dir.
    Decode {
        #[arg(allow_hyphen_values = true)]
        token: String,
    },
}

pub async fn token(config: &Config, cmd: TokenCmd) -> Result<()> {
    let TokenCmd::Decode { token } = cmd;
    let auth = open_admin(config).await?;
    let (header, claims, valid) = auth.decode_any(token.trim()).map_err(core_err)?;
    print_json(&json!({"header": header, "claims": claims, "signature_valid": valid}));
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Approve a pending device authorization (RFC 8628) as a user.
    Approve {
        /// The code shown on the device, e.g. BCDF-GHJK.
        user_code: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
    },
    /// Deny a pending device authorization.
    Deny {
        user_code: String,
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
    },
}

pub async fn device(config: &Config, cmd: DeviceCmd) -> Result<()> {
    let auth = open_admin(config).await?;
    let (code, tenant, username, approve) = match cmd {
        DeviceCmd::Approve { user_code, tenant: TenantArg { tenant }, username } => (user_code, tenant, username, true),
        DeviceCmd::Deny { user_code, tenant: TenantArg { tenant }, username } => (user_code, tenant, username, false),
    };
    auth.device_decide(&tenant, &code, &username, approve).await.map_err(core_err)?;
    println!("{} device code {code} for {username}", if approve { "approved" } else { "denied" });
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum ApiKeyCmd {
    /// Create an API key for a user; the key is printed once.
    Create {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "")]
        name: String,
        /// Lifetime, e.g. 90d, 12h, 30m or seconds; default: no expiry.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<i64>,
        /// Scopes, space-separated.
        #[arg(long, default_value = "")]
        scope: String,
        #[arg(long)]
        json: bool,
    },
    /// List API keys (of one user, or of the tenant).
    List {
        #[command(flatten)]
        tenant: TenantArg,
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke an API key by its id.
    Revoke {
        #[command(flatten)]
        tenant: TenantArg,
        /// Ids are base64url and may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
}

/// A grace period: like [`parse_duration`], and `0` for none.
fn parse_grace(s: &str) -> Result<i64, String> {
    if s.trim() == "0" { Ok(0) } else { parse_duration(s) }
}

/// `90d`, `12h`, `30m`, `45s` or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c),
        _ => (s, 's'),
    };
    let n: i64 = num.parse().map_err(|_| format!("invalid duration `{s}` (use e.g. 90d, 12h, 30m)"))?;
    let mult = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("invalid duration unit in `{s}` (use s, m, h or d)")),
    };
    if n <= 0 {
        return Err("a duration must be positive".into());
    }
    n.checked_mul(mult).ok_or_else(|| "duration too large".to_owned())
}

pub async fn apikey(config: &Config, cmd: ApiKeyCmd) -> Result<()> {
    let auth = open_admin(config).await?;
    match cmd {
        ApiKeyCmd::Create { tenant: TenantArg { tenant }, username, name, expires, scope, json } => {
            let scopes = parse_scope(&scope).map_err(core_err)?;
            let (k, key) = auth
                .create_api_key(&Actor::Operator, &tenant, &username, &name, expires, scopes)
                .await
                .map_err(core_err)?;
            if json {
                print_json(&json!({"id": k.id, "key": key.expose(), "expires_at": k.expires_at}));
            } else {
                println!("id:  {}", k.id);
                println!("key: {}  (shown once; store it now)", key.expose());
            }
        }
        ApiKeyCmd::List { tenant: TenantArg { tenant }, username, json } => {
            let keys = auth.list_api_keys(&Actor::Operator, &tenant, username.as_deref()).await.map_err(core_err)?;
            if json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({"id": k.id, "username": k.username, "name": k.name, "scopes": k.scopes,
                               "created_at": k.created_at, "expires_at": k.expires_at,
                               "revoked_at": k.revoked_at, "last_used_at": k.last_used_at})
                    })
                    .collect();
                print_json(&json!(v));
            } else {
                for k in keys {
                    let state = if k.revoked_at.is_some() { "revoked" } else { "live" };
                    let used = k.last_used_at.map_or("never".to_owned(), |t| t.to_string());
                    println!("{}\t{}\t{}\t{state}\tlast used {used}", k.id, k.username, k.name);
                }
            }
        }
        ApiKeyCmd::Revoke { tenant: TenantArg { tenant }, id } => {
            auth.revoke_api_key(&Actor::Operator, &tenant, &id).await.map_err(core_err)?;
            println!("revoked API key {id}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(super::parse_duration("12h"), Ok(12 * 3600));
        assert_eq!(super::parse_duration("45"), Ok(45));
        assert!(super::parse_duration("0d").is_err());
        assert!(super::parse_duration("3w").is_err());
        assert!(super::parse_duration("d").is_err());
    }
}
