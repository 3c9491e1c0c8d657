//! Tessera HTTP server: the axum app with one module per front, health, metrics, and the
//! background work that keeps a node in step with the store.

// Input must never reach a panic: no unwrap, expect or indexing outside tests (issue 17). Where
// one is proven unreachable, it says why in an `#[allow]` on the spot.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing))]

pub mod accept;
pub mod config;
pub mod deadline;
pub mod extract;
pub mod fronts;
#[doc(hidden)]
pub mod fuzzing;
pub mod hasher;
pub mod metrics_layer;
pub mod oauth;
pub mod pages;
pub mod panic;
pub mod status;
pub mod time;

pub use accept::{Limits, run};
pub use config::Config;
pub use hasher::PooledHasher;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

/// The routes, with per-route metrics (the shared layers are added once, around all of it,
/// by [`run`]: layering a Router per route would clone boxed services on every request).
pub fn router(state: AppState) -> Router {
    let standard = oauth::routes();
    Router::new()
        .route("/healthz", get(healthz_get))
        .route("/readyz", get(readyz_get))
        .route("/metrics", get(metrics_get))
        .merge(standard.clone())
        // RFC 8414 section 3.1: metadata of issuer `<base>/t/T` at `/.well-known/...-server/t/T`.
        .route("/.well-known/oauth-authorization-server/t/{tenant}", get(oauth::metadata::discovery_get))
        .nest("/t/{tenant}", standard)
        .nest("/v3/oauth2", fronts::tapis::routes())
        .nest("/api/v2", fronts::sftpgo::routes())
        .nest("/ica/rest", fronts::ica::routes())
        .merge(fronts::docspace::routes())
        .route_layer(metrics_layer::Track)
        .with_state(state)
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
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics disabled").into_response(),
    }
}

/// Keep this node in step with the store: apply changes (admin commands, other nodes) every
/// `interval`, purge expired revocations every minute.
pub fn spawn_background(auth: Arc<Authority>, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge = tokio::time::Instant::now();
        loop {
            tick.tick().await;
            if let Err(e) = auth.sync().await {
                tracing::warn!(error = %e, "sync with the store failed; will retry");
            }
            if last_purge.elapsed() >= Duration::from_secs(60) {
                last_purge = tokio::time::Instant::now();
                if let Err(e) = auth.purge_expired().await {
                    tracing::warn!(error = %e, "purging expired entries failed");
                }
            }
        }
    })
}

/// The largest request body accepted (bigger ones get 413): the largest real request, a
/// token exchange with two tokens, is a few KiB.
pub const BODY_LIMIT: usize = 64 * 1024;
