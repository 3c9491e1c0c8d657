//! `tessera`: the token server and its admin commands, all working on one data dir.

mod admin;
mod audit;
mod setup;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "tessera", version, about = "Tessera token authority")]
struct Cli {
    /// Data directory (SQLite database and master key).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (postgres://user@host/db?sslmode=require) instead of the SQLite file in
    /// the data dir; every node of a deployment uses the same database.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the token server.
    Serve(ServeArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(admin::TenantCmd),
    /// Manage users.
    #[command(subcommand)]
    User(admin::UserCmd),
    /// Manage OAuth clients.
    #[command(subcommand)]
    Client(admin::ClientCmd),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(admin::KeyCmd),
    /// Inspect tokens.
    #[command(subcommand)]
    Token(admin::TokenCmd),
    /// Approve or deny device sign-ins (RFC 8628).
    #[command(subcommand)]
    Device(admin::DeviceCmd),
    /// Manage API keys.
    #[command(subcommand)]
    Apikey(admin::ApiKeyCmd),
    /// Read the audit trail of a tenant.
    Audit(audit::AuditArgs),
    /// Create or update the database schema, then exit.
    Migrate,
    /// Settings of the whole deployment (every node of one database).
    #[command(subcommand)]
    Deployment(DeploymentCmd),
}

#[derive(Subcommand, Debug)]
enum DeploymentCmd {
    /// Show the public URL the nodes of this database agree on (the base of the default
    /// issuers), or move the deployment to URL (then restart every node with it).
    PublicUrl {
        /// The new public URL.
        url: Option<String>,
    },
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Base URL clients use to reach this server (issuer of the default tenant).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
}

fn main() {
    // Argon2id allocates 19 MiB per hash. With glibc's dynamic mmap threshold those blocks end
    // up cached in per-thread arenas (hundreds of MB after a burst of sign-ins); a fixed
    // threshold makes every large block an mmap that goes back to the OS when freed.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called first, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                let _ = e.print();
                std::process::exit(if e.use_stderr() { 2 } else { 0 });
            }
            // One line: the first line of clap's message (it already starts with "error:").
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid arguments"));
            std::process::exit(2);
        }
    };
    if let Err(e) = run(cli) {
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.to_string().lines().next().unwrap_or("failed").to_owned()
}

fn run(cli: Cli) -> Result<()> {
    let mut overrides =
        setup::Overrides { data_dir: cli.data_dir, database_url: cli.database_url, ..Default::default() };
    if let Command::Serve(a) = &cli.command {
        overrides.listen = a.listen.clone();
        overrides.public_url = a.public_url.clone();
    }
    let config = setup::load_config(cli.config.as_deref(), &overrides)?;
    let serving = matches!(cli.command, Command::Serve(_));
    setup::init_logging(&config, serving);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    // Admin commands record audit events; they are written when the command is done,
    // whether it succeeded or not.
    rt.block_on(setup::with_admin_audit(async move {
        match cli.command {
            Command::Serve(_) => setup::serve(config).await,
            Command::Tenant(c) => admin::tenant(&config, c).await,
            Command::User(c) => admin::user(&config, c).await,
            Command::Client(c) => admin::client(&config, c).await,
            Command::Key(c) => admin::key(&config, c).await,
            Command::Token(c) => admin::token(&config, c).await,
            Command::Device(c) => admin::device(&config, c).await,
            Command::Apikey(c) => admin::apikey(&config, c).await,
            Command::Audit(a) => audit::audit(&config, a).await,
            Command::Migrate => setup::migrate(&config).await,
            Command::Deployment(DeploymentCmd::PublicUrl { url }) => {
                setup::deployment_public_url(&config, url.as_deref()).await
            }
        }
    }))
}
