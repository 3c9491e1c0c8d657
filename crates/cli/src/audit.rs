//! `tessera audit`: read a tenant's audit trail (the same core operation as the admin API's
//! `GET /admin/v1/audit`).

use crate::admin::TenantArg;
use crate::setup::open_admin;
use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::json;
use tessera_core::audit::{AuditFilter, AuditRecord, EventKind, Outcome};
use tessera_core::authority::Actor;
use tessera_server::Config;

#[derive(Args, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    tenant: TenantArg,
    /// Only events since then: a duration ago (`30m`, `12h`, `7d`) or `@` and Unix seconds.
    #[arg(long, value_parser = parse_when)]
    since: Option<i64>,
    /// Only events before then (same forms as --since).
    #[arg(long, value_parser = parse_when)]
    until: Option<i64>,
    /// Only this kind of event (sign_in, token_issue, user_create, ...).
    #[arg(long, value_parser = parse_event)]
    event: Option<EventKind>,
    /// Only events by this actor: a user name, client id or API key id (ids may begin with `-`).
    #[arg(long, allow_hyphen_values = true)]
    actor: Option<String>,
    /// Only events about this subject (a user, client, tenant).
    #[arg(long, allow_hyphen_values = true)]
    subject: Option<String>,
    /// Only `success` or `failure`.
    #[arg(long, value_parser = parse_outcome)]
    outcome: Option<Outcome>,
    /// How many events at most (newest first); with --json, a page of at most 500.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// Continue after a previous page (its `next`).
    #[arg(long)]
    cursor: Option<String>,
    /// A JSON page: `{"events": [...], "next": cursor or null}`.
    #[arg(long)]
    json: bool,
}

fn parse_event(s: &str) -> Result<EventKind, String> {
    EventKind::parse(s).map_err(|e| e.description)
}

fn parse_outcome(s: &str) -> Result<Outcome, String> {
    Outcome::parse(s).map_err(|e| e.description)
}

/// `@<unix seconds>`, or a duration before now.
fn parse_when(s: &str) -> Result<i64, String> {
    if let Some(t) = s.strip_prefix('@') {
        return t.parse().map_err(|_| format!("invalid time `{s}` (use @<unix seconds> or e.g. 12h)"));
    }
    let ago = crate::admin::parse_duration(s)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| "the system clock is before 1970".to_owned())?;
    Ok(i64::try_from(now.as_secs()).unwrap_or(i64::MAX) - ago)
}

pub fn record_json(r: &AuditRecord) -> serde_json::Value {
    let e = &r.event;
    json!({
        "id": r.id,
        "at": e.at,
        "tenant": e.tenant,
        "event": e.event.as_str(),
        "actor_kind": e.actor.as_str(),
        "actor": e.actor_name,
        "subject": e.subject,
        "client_id": e.client_id,
        "address": e.address,
        "outcome": e.outcome.as_str(),
        "request_id": e.request_id,
        "detail": e.detail,
    })
}

pub async fn audit(config: &Config, a: AuditArgs) -> Result<()> {
    let auth = open_admin(config).await?;
    let filter = AuditFilter {
        actor: a.actor,
        subject: a.subject,
        event: a.event,
        outcome: a.outcome,
        since: a.since,
        until: a.until,
    };
    let core = |e: tessera_core::Error| anyhow!("{}", e.description);
    if a.json {
        let page = auth
            .audit_events(&Actor::Operator, &a.tenant.tenant, &filter, a.cursor.as_deref(), a.limit)
            .await
            .map_err(core)?;
        let events: Vec<_> = page.events.iter().map(record_json).collect();
        println!("{}", serde_json::to_string_pretty(&json!({"events": events, "next": page.next}))?);
        return Ok(());
    }
    // Text: page through up to `limit` events.
    let mut left = a.limit.max(1);
    let mut cursor = a.cursor;
    while left > 0 {
        let want = left.min(tessera_core::authority::AUDIT_MAX_PAGE);
        let page = auth
            .audit_events(&Actor::Operator, &a.tenant.tenant, &filter, cursor.as_deref(), want)
            .await
            .map_err(core)?;
        for r in &page.events {
            let e = &r.event;
            let actor = match &e.actor_name {
                Some(n) => format!("{}:{n}", e.actor.as_str()),
                None => e.actor.as_str().to_owned(),
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                e.at,
                e.event.as_str(),
                e.outcome.as_str(),
                actor,
                e.subject.as_deref().unwrap_or("-"),
                e.client_id.as_deref().unwrap_or("-"),
                e.address.as_deref().unwrap_or("-"),
                e.detail.as_deref().unwrap_or(""),
            );
        }
        left -= i64::try_from(page.events.len()).unwrap_or(left);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    Ok(())
}
