//! The audit trail: who did what, to whom, from where, and how it ended. Events hold names,
//! ids and a token's `jti` at most: never a password, a secret or a whole token.
//!
//! The engine queues events in memory ([`Queue`]) and never waits on the store for them; the
//! server's background task takes them out in batches and writes them (see
//! `Authority::write_audit`). A full queue drops the event and counts the drop.

use crate::error::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A user's sign-in: password (and second factor), API key, or a bearer token at a front.
    SignIn,
    /// A client that failed to authenticate (successes show as the token they got).
    ClientAuth,
    /// An access token issued (any grant but refresh, and a front's session token).
    TokenIssue,
    /// A refresh token rotated (or a front's session renewed).
    TokenRefresh,
    /// A token, refresh family or session revoked.
    TokenRevoke,
    /// A rotated refresh token presented again: its whole family was revoked.
    TokenReuse,
    TenantCreate,
    TenantUpdate,
    KeyRotate,
    UserCreate,
    UserDisable,
    UserEnable,
    ClientCreate,
    ClientUpdate,
    ClientDelete,
    ApiKeyCreate,
    ApiKeyRevoke,
    TotpEnroll,
    TotpConfirm,
    TotpDisable,
    /// A device authorization approved or denied.
    DeviceDecision,
    TenantDelete,
    UserUpdate,
    /// A password set by an administrator or changed by its user.
    PasswordChange,
    /// New recovery codes made (the old ones stop working).
    RecoveryCodes,
    ClientSecretRotate,
    KeyRetire,
}

impl EventKind {
    pub const ALL: [EventKind; 27] = [
        EventKind::SignIn,
        EventKind::ClientAuth,
        EventKind::TokenIssue,
        EventKind::TokenRefresh,
        EventKind::TokenRevoke,
        EventKind::TokenReuse,
        EventKind::TenantCreate,
        EventKind::TenantUpdate,
        EventKind::KeyRotate,
        EventKind::UserCreate,
        EventKind::UserDisable,
        EventKind::UserEnable,
        EventKind::ClientCreate,
        EventKind::ClientUpdate,
        EventKind::ClientDelete,
        EventKind::ApiKeyCreate,
        EventKind::ApiKeyRevoke,
        EventKind::TotpEnroll,
        EventKind::TotpConfirm,
        EventKind::TotpDisable,
        EventKind::DeviceDecision,
        EventKind::TenantDelete,
        EventKind::UserUpdate,
        EventKind::PasswordChange,
        EventKind::RecoveryCodes,
        EventKind::ClientSecretRotate,
        EventKind::KeyRetire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignIn => "sign_in",
            EventKind::ClientAuth => "client_auth",
            EventKind::TokenIssue => "token_issue",
            EventKind::TokenRefresh => "token_refresh",
            EventKind::TokenRevoke => "token_revoke",
            EventKind::TokenReuse => "token_reuse",
            EventKind::TenantCreate => "tenant_create",
            EventKind::TenantUpdate => "tenant_update",
            EventKind::KeyRotate => "key_rotate",
            EventKind::UserCreate => "user_create",
            EventKind::UserDisable => "user_disable",
            EventKind::UserEnable => "user_enable",
            EventKind::ClientCreate => "client_create",
            EventKind::ClientUpdate => "client_update",
            EventKind::ClientDelete => "client_delete",
            EventKind::ApiKeyCreate => "api_key_create",
            EventKind::ApiKeyRevoke => "api_key_revoke",
            EventKind::TotpEnroll => "totp_enroll",
            EventKind::TotpConfirm => "totp_confirm",
            EventKind::TotpDisable => "totp_disable",
            EventKind::DeviceDecision => "device_decision",
            EventKind::TenantDelete => "tenant_delete",
            EventKind::UserUpdate => "user_update",
            EventKind::PasswordChange => "password_change",
            EventKind::RecoveryCodes => "recovery_codes",
            EventKind::ClientSecretRotate => "client_secret_rotate",
            EventKind::KeyRetire => "key_retire",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::invalid_request(format!("unknown audit event `{s}`")))
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Refused or failed; the event's detail names the error.
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "success" => Ok(Outcome::Success),
            "failure" => Ok(Outcome::Failure),
            _ => Err(Error::invalid_request(format!("unknown outcome `{s}` (success or failure)"))),
        }
    }
}

/// Who acted: the operator at the CLI, a user (by name), a client (by id), an API key (by
/// id; the event's subject is its user), or nobody known (a sign-in that failed names the
/// user it tried as the subject, not as the actor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    Operator,
    User,
    Client,
    ApiKey,
    Anonymous,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Operator => "operator",
            ActorKind::User => "user",
            ActorKind::Client => "client",
            ActorKind::ApiKey => "api_key",
            ActorKind::Anonymous => "anonymous",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [ActorKind::Operator, ActorKind::User, ActorKind::Client, ActorKind::ApiKey, ActorKind::Anonymous]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Unix seconds.
    pub at: i64,
    pub tenant: String,
    pub event: EventKind,
    pub actor: ActorKind,
    /// The user name, client id or API key id of the actor.
    pub actor_name: Option<String>,
    /// Whom or what it was done to: a user, a client, a tenant, a key id.
    pub subject: Option<String>,
    /// The client involved, if any.
    pub client_id: Option<String>,
    /// The caller's network address.
    pub address: Option<String>,
    pub outcome: Outcome,
    /// The id of the HTTP request that caused it (the caller's `X-Request-Id`, else one the
    /// server made up), to tie together the events of one request.
    pub request_id: Option<String>,
    /// A little more: the grant, a token's `jti`, the error kind of a failure.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event at `tenant` with no time yet (the engine stamps it).
    pub fn new(tenant: &str, event: EventKind, actor: ActorKind, actor_name: Option<&str>) -> Self {
        AuditEvent {
            at: 0,
            tenant: tenant.to_owned(),
            event,
            actor,
            actor_name: actor_name.map(str::to_owned),
            subject: None,
            client_id: None,
            address: None,
            outcome: Outcome::Success,
            request_id: None,
            detail: None,
        }
    }

    pub fn subject(mut self, s: impl Into<String>) -> Self {
        self.subject = Some(s.into());
        self
    }

    pub fn client(mut self, c: Option<&str>) -> Self {
        self.client_id = c.map(str::to_owned);
        self
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    /// A failure with `e`'s kind as its detail (its description may quote what the caller
    /// sent, so it is left out).
    pub fn failed(mut self, e: &Error) -> Self {
        self.outcome = Outcome::Failure;
        let kind = format!("error={}", e.kind.code());
        self.detail = Some(match self.detail.take() {
            Some(d) => format!("{d} {kind}"),
            None => kind,
        });
        self
    }

    /// Success, or the failure of `r`.
    pub fn outcome_of<T>(self, r: &Result<T>) -> Self {
        match r {
            Ok(_) => self,
            Err(e) => self.failed(e),
        }
    }
}

/// A stored event, with its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub event: AuditEvent,
}

/// Which events to list; every filter given must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The actor's user name, client id or API key id.
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub event: Option<EventKind>,
    pub outcome: Option<Outcome>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// Before (Unix seconds).
    pub until: Option<i64>,
}

/// One page of events, newest first, and the cursor of the next page if there is one.
#[derive(Debug, Clone)]
pub struct AuditPage {
    pub events: Vec<AuditRecord>,
    pub next: Option<String>,
}

/// The opaque cursor after the event with id `id` (the next page holds older events).
pub fn cursor_after(id: i64) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("audit:{id}"))
}

/// The id a cursor of [`cursor_after`] stands for.
pub fn parse_cursor(cursor: &str) -> Result<i64> {
    use base64::Engine;
    let bad = || Error::invalid_request("invalid cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    text.strip_prefix("audit:").and_then(|n| n.parse().ok()).ok_or_else(bad)
}

/// Where a request came from, as the server knows it: given to the engine by a function the
/// server installs ([`crate::Authority::with_origin`]), read when an event is recorded.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub address: Option<std::net::IpAddr>,
    pub request_id: Option<String>,
}

/// The events waiting to be written: bounded, never blocking for long (a push takes an
/// uncontended lock; the writer swaps the whole buffer out at once).
#[derive(Debug)]
pub struct Queue {
    pending: Mutex<Vec<AuditEvent>>,
    capacity: usize,
    dropped: AtomicU64,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        Queue { pending: Mutex::new(Vec::new()), capacity: capacity.max(1), dropped: AtomicU64::new(0) }
    }

    /// Queue an event, or count it dropped when the queue is full (or its lock poisoned).
    pub fn push(&self, e: AuditEvent) {
        match self.pending.lock() {
            Ok(mut q) if q.len() < self.capacity => q.push(e),
            _ => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Move every queued event into `into` (which should be empty; its capacity is reused).
    pub fn take(&self, into: &mut Vec<AuditEvent>) {
        if let Ok(mut q) = self.pending.lock() {
            std::mem::swap(&mut *q, into);
        }
    }

    /// Put back events that could not be written, ahead of newer ones, as far as there is
    /// room; the rest are counted dropped.
    pub fn put_back(&self, mut events: Vec<AuditEvent>) {
        let Ok(mut q) = self.pending.lock() else {
            self.dropped.fetch_add(events.len() as u64, Ordering::Relaxed);
            return;
        };
        let room = self.capacity.saturating_sub(q.len());
        if events.len() > room {
            let lost = events.len() - room;
            self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
            // Keep the newest of the older events.
            events.drain(..lost);
        }
        events.append(&mut q);
        *q = events;
    }

    pub fn len(&self) -> usize {
        self.pending.lock().map(|q| q.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped since start because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: &str) -> AuditEvent {
        AuditEvent::new("t", EventKind::SignIn, ActorKind::User, Some(n))
    }

    #[test]
    fn names_round_trip() -> Result<()> {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str())?, k);
        }
        assert!(EventKind::parse("nope").is_err());
        assert_eq!(Outcome::parse("failure")?, Outcome::Failure);
        assert_eq!(parse_cursor(&cursor_after(42))?, 42);
        assert!(parse_cursor("garbage!").is_err());
        assert!(parse_cursor(&cursor_after(1).replace('Y', "Z")).is_err());
        Ok(())
    }

    #[test]
    fn a_full_queue_counts_drops_and_put_back_keeps_order() {
        let q = Queue::new(2);
        q.push(ev("a"));
        q.push(ev("b"));
        q.push(ev("c"));
        assert_eq!((q.len(), q.dropped()), (2, 1));
        let mut out = Vec::new();
        q.take(&mut out);
        assert_eq!(out.len(), 2);
        assert!(q.is_empty());
        q.push(ev("d"));
        q.put_back(out);
        // Room for one of the two older events: the newer one (b) is kept, ahead of d.
        let mut again = Vec::new();
        q.take(&mut again);
        let names: Vec<_> = again.iter().filter_map(|e| e.actor_name.as_deref()).collect();
        assert_eq!(names, ["b", "d"]);
        assert_eq!(q.dropped(), 2);
    }

    #[test]
    fn failures_name_the_error_kind_only() {
        let e = ev("a").detail("grant=password").failed(&Error::invalid_grant("wrong password for alice"));
        assert_eq!(e.outcome, Outcome::Failure);
        assert_eq!(e.detail.as_deref(), Some("grant=password error=invalid_grant"));
    }
}
