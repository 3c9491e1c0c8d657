//! Tessera HTTP server: the axum app with one module per front, health, metrics, and the
//! background work that keeps a node in step with the store.

// Input must never reach a panic: no unwrap, expect or indexing outside tests (issue 17). Where
// one is proven unreachable, it says why in an `#[allow]` on the spot.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod accept;
pub mod admin;
pub mod config;
pub mod deadline;
pub mod extract;
pub mod fronts;
#[doc(hidden)]
pub mod fuzzing;
pub mod hasher;
pub mod metrics_layer;
pub mod oauth;
pub mod openapi;
pub mod pages;
pub mod panic;
pub mod status;
pub mod time;
pub mod urls;

pub use accept::{Limits, run};
pub use config::Config;
pub use hasher::PooledHasher;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use std::time::Duration;
use tessera_core::Authority;

/// What the handlers share: the [`Shared`] state of one server, behind an `Arc` (axum clones
/// the state for every request; the count lives in the `Arc`'s own allocation, apart from the
/// fields every request reads).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The authority and the metrics handle, behind [`AppState`].
pub struct Shared {
    pub auth: Arc<Authority>,
    pub metrics: Option<PrometheusHandle>,
    pub metrics_access: MetricsAccess,
}

impl AppState {
    /// The state of one server.
    pub fn new(auth: Arc<Authority>, metrics: Option<PrometheusHandle>, metrics_access: MetricsAccess) -> Self {
        AppState(Arc::new(Shared { auth, metrics, metrics_access }))
    }
}

/// Who may read `/metrics` (request counts, token counts by grant, revocations: not secret,
/// but not for everyone on a public address).
#[derive(Debug, Clone)]
pub enum MetricsAccess {
    /// Anyone who can connect: the server listens on a loopback address only.
    Open,
    /// Peers on the loopback interface only: the default on any other listen address.
    Loopback,
    /// Callers presenting `Authorization: Bearer <metrics_token>`, from anywhere.
    Token(tessera_core::secret::Secret),
}

impl MetricsAccess {
    /// The rule for a server listening on `listen` with `metrics_token` configured or not.
    pub fn new(listen: std::net::SocketAddr, metrics_token: Option<&str>) -> Self {
        match metrics_token {
            Some(t) => MetricsAccess::Token(tessera_core::secret::Secret::new(t)),
            None if listen.ip().is_loopback() => MetricsAccess::Open,
            None => MetricsAccess::Loopback,
        }
    }

    /// `None` if the request may read the metrics, else the refusal.
    fn refusal(&self, headers: &axum::http::HeaderMap, peer: Option<std::net::IpAddr>) -> Option<Response> {
        match self {
            MetricsAccess::Open => None,
            MetricsAccess::Loopback if peer.is_some_and(|p| p.to_canonical().is_loopback()) => None,
            MetricsAccess::Loopback => Some(
                (StatusCode::FORBIDDEN, "metrics are served to loopback peers only (or set metrics_token)\n")
                    .into_response(),
            ),
            MetricsAccess::Token(want) => {
                let given = extract::bearer_token(headers).unwrap_or("");
                if tessera_core::secret::ct_eq(given.as_bytes(), want.expose().as_bytes()) {
                    return None;
                }
                let mut res = (StatusCode::UNAUTHORIZED, "a bearer token is required for metrics\n").into_response();
                res.headers_mut()
                    .insert(axum::http::header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
                Some(res)
            }
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The routes of every front (see [`openapi::fronts`]), with per-route metrics (the shared
/// layers are added once, around all of it, by [`run`]: layering a Router per route would
/// clone boxed services on every request).
pub fn router(state: AppState) -> Router {
    openapi::router().route_layer(metrics_layer::Track).with_state(state)
}

/// The server's own routes: health, metrics, the OpenAPI document and its reference page.
pub fn service_front() -> openapi::Front {
    use openapi::{Field, TEXT, doc, text};
    let api = openapi::Api::default()
        .get("/healthz", healthz_get, doc("Liveness: the process answers").also(200, "alive", TEXT, text()))
        .get(
            "/readyz",
            readyz_get,
            doc("Readiness: the store answers").also(200, "ready", TEXT, text()).also(503, "not ready", TEXT, text()),
        )
        .get(
            "/metrics",
            metrics_get,
            doc("Prometheus metrics (loopback, or a metrics token)").also(200, "the metrics", TEXT, text()),
        )
        .get(
            "/openapi.json",
            openapi_get,
            doc("This document").also(
                200,
                "the OpenAPI 3.1 document",
                openapi::JSON,
                openapi::object(&[("openapi", Field::Str), ("paths", Field::Obj)]),
            ),
        )
        .get("/docs", docs_get, doc("A reference page of this document").page(200, "the page"));
    openapi::Front {
        tag: "service",
        prefixes: &[""],
        api,
        security: &[],
        errors: (TEXT, text()),
        error_schemas: vec![],
    }
}

/// The OpenAPI document, made once: it only changes with the code.
fn openapi_json() -> &'static axum::body::Bytes {
    static DOC: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    DOC.get_or_init(|| openapi::document().to_json().unwrap_or_default().into())
}

async fn openapi_get() -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], openapi_json().clone()).into_response()
}

async fn docs_get() -> Response {
    let doc: serde_json::Value = serde_json::from_slice(openapi_json()).unwrap_or_default();
    pages::page(StatusCode::OK, "docs.html", pages::docs_context(&doc))
}

async fn healthz_get() -> &'static str {
    "ok"
}

async fn readyz_get(State(state): State<AppState>) -> Response {
    match state.auth.ready().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response(),
    }
}

async fn metrics_get(
    State(state): State<AppState>,
    extract::Origin(peer): extract::Origin,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(refused) = state.metrics_access.refusal(&headers, peer) {
        return refused;
    }
    match &state.metrics {
        Some(h) => {
            metrics::gauge!("tessera_revocations_live").set(state.auth.revoked_count() as f64);
            metrics::counter!("tessera_audit_dropped_total").absolute(state.auth.audit_dropped());
            metrics::gauge!("tessera_audit_pending").set(state.auth.audit_pending() as f64);
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics disabled").into_response(),
    }
}

/// Keep this node in step with the store: apply changes (admin commands, other nodes) every
/// `interval`, purge expired revocations and audit events past their retention at start and
/// then every minute.
pub fn spawn_background(auth: Arc<Authority>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            if let Err(e) = auth.sync().await {
                tracing::warn!(error = %e, "sync with the store failed; will retry");
            }
            if last_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                last_purge = Some(tokio::time::Instant::now());
                if let Err(e) = auth.purge_expired().await {
                    tracing::warn!(error = %e, "purging expired entries failed");
                }
            }
        }
    })
}

/// Write queued audit events to the store every `interval`, in batches, off the requests'
/// path. The writer is not woken per event (that would cost every request a wake-up): it
/// looks on its own clock. Events that fail to write stay queued for the next round.
/// [`AuditWriter::finish`] writes what is left and stops it.
pub fn spawn_audit_writer(auth: Arc<Authority>, interval: Duration) -> AuditWriter {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = &mut stopped => true,
            };
            // Until the queue is empty: a burst may have queued more than one round holds.
            loop {
                match auth.write_audit().await {
                    Ok(n) if n > 0 && auth.audit_pending() > 0 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, pending = auth.audit_pending(), "writing audit events failed");
                        break;
                    }
                }
            }
            if last {
                return;
            }
        }
    });
    AuditWriter { stop, task }
}

/// The running audit writer of [`spawn_audit_writer`].
pub struct AuditWriter {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl AuditWriter {
    /// Write the events still queued, then stop (at shutdown, once no request is in flight).
    pub async fn finish(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::warn!(error = %e, "the audit writer ended abnormally");
        }
    }
}

/// The largest request body accepted (bigger ones get 413): the largest real request, a
/// token exchange with two tokens, is a few KiB.
pub const BODY_LIMIT: usize = 64 * 1024;
