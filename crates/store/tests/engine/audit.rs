//! The audit trail through the engine over both stores: what is queued is written in one
//! call, read back newest first by cursor pages while rows are added, filtered, shown to the
//! tenant's administrators only, and purged past the retention by the injected clock.

use crate::env::{Env, Kind};
use crate::{password, settings, setup};
use tessera_core::Settings;
use tessera_core::audit::{AuditFilter, EventKind, Outcome};
use tessera_core::authority::{Actor, Authority};
use tessera_core::principal::Profile;
use tessera_core::secret::Secret;
use tessera_core::{ErrorKind, Result};

async fn page_ids(auth: &Authority, f: &AuditFilter, limit: i64) -> Result<Vec<i64>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = auth.audit_events(&Actor::Operator, "t", f, cursor.as_deref(), limit).await?;
        ids.extend(p.events.iter().map(|e| e.id));
        match p.next {
            Some(n) => cursor = Some(n),
            None => return Ok(ids),
        }
    }
}

pub(crate) async fn audit_pages_filters_access_and_retention(kind: Kind) {
    let env = Env::new(kind, "audit").await;
    let auth = env.engine(Settings { audit_retention_days: 10, ..settings() }).await.unwrap();
    let client = setup(&auth).await;
    for _ in 0..3 {
        auth.token("t", &client, password()).await.unwrap();
    }
    let written = auth.write_audit().await.unwrap();
    // tenant_create, user_create, client_create, then sign_in and token_issue three times.
    assert_eq!(written, 9);
    assert_eq!(auth.audit_pending(), 0);

    // Pages of 2 while rows are added between pages: every row of the first listing once,
    // newest first; the new rows are not on later pages (they are newer than the cursor).
    let all = AuditFilter::default();
    let first = auth.audit_events(&Actor::Operator, "t", &all, None, 2).await.unwrap();
    assert_eq!(first.events.len(), 2);
    auth.token("t", &client, password()).await.unwrap();
    auth.write_audit().await.unwrap();
    let mut ids: Vec<i64> = first.events.iter().map(|e| e.id).collect();
    let mut cursor = first.next;
    while let Some(c) = cursor {
        let p = auth.audit_events(&Actor::Operator, "t", &all, Some(&c), 2).await.unwrap();
        ids.extend(p.events.iter().map(|e| e.id));
        cursor = p.next;
    }
    assert_eq!(ids.len(), 9, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    assert_eq!(page_ids(&auth, &all, 500).await.unwrap().len(), 11);

    // Filters.
    let f = AuditFilter { event: Some(EventKind::SignIn), ..Default::default() };
    assert_eq!(page_ids(&auth, &f, 3).await.unwrap().len(), 4);
    let f = AuditFilter { actor: Some("alice".into()), event: Some(EventKind::TokenIssue), ..Default::default() };
    assert_eq!(page_ids(&auth, &f, 500).await.unwrap().len(), 4);
    let f = AuditFilter { outcome: Some(Outcome::Failure), ..Default::default() };
    assert!(page_ids(&auth, &f, 500).await.unwrap().is_empty());
    let f = AuditFilter { subject: Some("alice".into()), event: Some(EventKind::UserCreate), ..Default::default() };
    assert_eq!(page_ids(&auth, &f, 500).await.unwrap().len(), 1);

    // Only the tenant's administrators (and the operator) read it.
    let admin = auth
        .create_user(
            &Actor::Operator,
            "t",
            "root",
            Secret::new("root's long password"),
            vec!["admin".into()],
            Profile::default(),
        )
        .await
        .unwrap();
    let alice = auth.get_user(&Actor::Operator, "t", "alice").await.unwrap();
    assert!(auth.audit_events(&Actor::User(&admin), "t", &all, None, 10).await.is_ok());
    let e = auth.audit_events(&Actor::User(&alice), "t", &all, None, 10).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Forbidden);
    let e = auth.audit_events(&Actor::Client { tenant: "t", client_id: "app" }, "t", &all, None, 10).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Forbidden);
    let e = auth.audit_events(&Actor::Operator, "t", &all, Some("bad cursor"), 10).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);
    let e = auth.audit_events(&Actor::Operator, "t", &all, None, 0).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidRequest);

    // A time range, then the retention: 11 days on, the purge takes every row written today.
    let now = auth.now();
    let f = AuditFilter { since: Some(now + 1), ..Default::default() };
    assert!(page_ids(&auth, &f, 500).await.unwrap().is_empty());
    let f = AuditFilter { until: Some(now + 1), ..Default::default() };
    assert!(page_ids(&auth, &f, 500).await.unwrap().len() >= 11);
    auth.write_audit().await.unwrap();
    env.clock.advance(11 * 86_400);
    auth.create_user(&Actor::Operator, "t", "late", Secret::new("late's long password"), vec![], Profile::default())
        .await
        .unwrap();
    auth.write_audit().await.unwrap();
    auth.purge_expired().await.unwrap();
    let left = auth.audit_events(&Actor::Operator, "t", &all, None, 500).await.unwrap().events;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].event.subject.as_deref(), Some("late"));
}
