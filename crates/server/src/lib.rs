//! Tessera HTTP server: the axum app with one module per front, health, metrics, and the
//! background work that keeps a node in step with the store.

pub mod config;
pub mod extract;
pub mod fronts;
pub mod hasher;
pub mod metrics_layer;
pub mod oauth;
pub mod pages;
pub mod time;

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
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<Authority>,
    pub metrics: Option<PrometheusHandle>,
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
        .route_layer(axum::middleware::from_fn(metrics_layer::track))
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

async fn metrics_get(State(state): State<AppState>) -> Response {
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

/// Serve until `shutdown` resolves, then finish in-flight requests.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = tower::ServiceBuilder::new()
        .map_response(|res: axum::http::Response<_>| res.map(axum::body::Body::new))
        .layer(CatchPanicLayer::custom(|_| {
            oauth::OAuthError(tessera_core::Error::internal("internal error")).into_response()
        }))
        // The extractors (Bytes, Json, Form) refuse bodies over 64 KiB with 413; no body
        // wrapper on every request.
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .service(router(state));
    let app =
        axum::ServiceExt::<axum::extract::Request>::into_make_service_with_connect_info::<std::net::SocketAddr>(app);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
