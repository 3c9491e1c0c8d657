//! Recording audit events (into the in-memory queue, stamped with the time and the request's
//! origin), writing them out in batches, and reading them back for administrators.

use super::Authority;
use super::access::{Action, Actor};
use crate::audit::{ActorKind, AuditEvent, AuditFilter, AuditPage, EventKind, Origin, cursor_after, parse_cursor};
use crate::error::{Error, Result};
use crate::name::TenantName;

/// The most events one page holds, and one batch writes.
pub const MAX_PAGE: i64 = 500;
const BATCH: usize = 500;

impl Actor<'_> {
    /// The actor as the audit trail names it.
    pub fn audit_name(&self) -> (ActorKind, Option<&str>) {
        match self {
            Actor::Operator => (ActorKind::Operator, None),
            Actor::User(u) => (ActorKind::User, Some(u.username.as_str())),
            Actor::Client { client_id, .. } => (ActorKind::Client, Some(client_id)),
        }
    }
}

impl Authority {
    /// Install the function that tells where the request being served came from (its
    /// address and request id), read whenever an event is recorded. Without one (the CLI),
    /// events carry only what the engine was told.
    pub fn with_origin(mut self, origin_of: fn() -> Origin) -> Self {
        self.origin_of = Some(origin_of);
        self
    }

    /// Queue an event: stamped now, with the request's origin where the event has none. Never
    /// waits on the store; a full queue drops it (counted: [`Self::audit_dropped`]).
    pub(super) fn record(&self, mut e: AuditEvent) {
        e.at = self.now();
        if let Some(origin_of) = self.origin_of {
            let o = origin_of();
            if e.address.is_none() {
                e.address = o.address.map(|a| a.to_canonical().to_string());
            }
            e.request_id = o.request_id;
        }
        self.audit.push(e);
    }

    /// An event done by `actor`.
    pub(super) fn by(&self, actor: &Actor<'_>, tenant: &str, event: EventKind) -> AuditEvent {
        let (kind, name) = actor.audit_name();
        AuditEvent::new(tenant, event, kind, name)
    }

    /// Record an admin change by `actor` to `subject`, ending as `r` did.
    pub(super) fn record_change<T>(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        event: EventKind,
        subject: &str,
        r: &Result<T>,
    ) {
        self.record(self.by(actor, tenant, event).subject(subject).outcome_of(r));
    }

    /// Write the queued events to the store, in batches. Events that could not be written go
    /// back to the queue for the next call. Returns how many were written.
    pub async fn write_audit(&self) -> Result<usize> {
        let mut pending = Vec::new();
        self.audit.take(&mut pending);
        let mut written = 0;
        for batch in pending.chunks(BATCH) {
            if let Err(e) = self.store.audit_insert(batch).await {
                self.audit.put_back(pending.split_off(written));
                return Err(e.into());
            }
            written += batch.len();
        }
        Ok(written)
    }

    /// Events dropped because the queue was full, since start.
    pub fn audit_dropped(&self) -> u64 {
        self.audit.dropped()
    }

    /// Events waiting to be written.
    pub fn audit_pending(&self) -> usize {
        self.audit.len()
    }

    /// A page of `tenant`'s audit events matching `filter`, newest first, after `cursor` (the
    /// previous page's `next`): for the tenant's administrators and the operator.
    pub async fn audit_events(
        &self,
        actor: &Actor<'_>,
        tenant: &str,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<AuditPage> {
        self.authorize(actor, tenant, Action::ReadAudit).await?;
        let name = TenantName::parse(tenant).map_err(|_| Error::not_found(format!("tenant `{tenant}` not found")))?;
        if self.store.tenant_get(&name).await?.is_none() {
            return Err(Error::not_found(format!("tenant `{tenant}` not found")));
        }
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid_request(format!("limit must be 1-{MAX_PAGE}")));
        }
        if let (Some(s), Some(u)) = (filter.since, filter.until)
            && s >= u
        {
            return Err(Error::invalid_request("since must be before until"));
        }
        let before = cursor.map(parse_cursor).transpose()?;
        // One more than asked: whether a next page exists, without counting.
        let mut events = self.store.audit_list(&name, filter, before, limit + 1).await?;
        let more = events.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more { events.last().map(|e| cursor_after(e.id)) } else { None };
        Ok(AuditPage { events, next })
    }
}
