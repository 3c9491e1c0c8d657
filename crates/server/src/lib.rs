//! Tessera HTTP server: the axum app with one module per front, health, metrics, and the
//! background work that keeps a node in step with the store.

pub mod config;
pub mod deadline;
pub mod extract;
pub mod fronts;
pub mod hasher;
pub mod metrics_layer;
pub mod oauth;
pub mod pages;
pub mod status;
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

/// What the handlers share: a reference to [`Shared`], made once per server and kept for the
/// life of the process. Axum clones the state for every request; cloning an `Arc` would be a
/// reference count that both worker threads write, next to fields every request reads.
#[derive(Clone, Copy)]
pub struct AppState(&'static Shared);

/// The authority and the metrics handle, behind [`AppState`].
pub struct Shared {
    pub auth: Arc<Authority>,
    pub metrics: Option<PrometheusHandle>,
    pub metrics_access: MetricsAccess,
}

impl AppState {
    /// The state of one server. It is never freed (a server runs once per process): the
    /// authority's store is closed by the process's exit, and every write was awaited before
    /// its request was answered, so nothing is pending then.
    pub fn new(auth: Arc<Authority>, metrics: Option<PrometheusHandle>, metrics_access: MetricsAccess) -> Self {
        AppState(Box::leak(Box::new(Shared { auth, metrics, metrics_access })))
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
        self.0
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

/// Time limits of the HTTP server (defaults and settings: [`Config`]).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection with no request in flight must deliver a request's headers within this
    /// time: slow senders (slowloris) and idle keep-alive connections are closed after 1 to
    /// 1.25 times it.
    pub header_timeout: Duration,
    /// Everything after the headers (body, handler) must finish within this time, or the
    /// answer is 503.
    pub request_timeout: Duration,
}

/// The catch-panic layer's answer.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    oauth::OAuthError(tessera_core::Error::internal("internal error")).into_response()
}

/// Serve HTTP/1.1 until `shutdown` resolves, then finish in-flight requests (connections
/// idle at that moment are closed at once).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    use tower::{Service, ServiceExt};

    let app = tower::ServiceBuilder::new()
        // No `DefaultBodyLimit` layer (an extension per request): every body is read by
        // `extract::read_body`, which holds to `BODY_LIMIT`. An axum body extractor added
        // later would allow its default of 2 MB.
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(deadline::Deadline(limits.request_timeout))
        .service(router(state));
    // No hyper timer: its header-read timeout arms a timer for every request (an allocation,
    // two timer-wheel locks, a clock read). `watch_idle` does that job with one timer per
    // connection.
    let http = hyper::server::conn::http1::Builder::new();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: the listener itself is fine, so
                    // wait a little rather than spin or stop serving.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // One copy of the stack per connection, called in place: cloning it per request (as
        // `oneshot` needs) is a reference count that both worker threads write.
        let app = std::cell::RefCell::new(app.clone());
        let activity = Arc::new(Activity::default());
        let counted = activity.clone();
        let service = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
            let req = req.map(axum::body::Body::new);
            let in_flight = InFlight::begin(&counted);
            let mut app = app.borrow_mut();
            // Every layer of the stack is always ready; should one ever not be, the request
            // waits for it on its own copy.
            match app.poll_ready(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
                std::task::Poll::Ready(Ok(())) => Called::InPlace { fut: app.call(req), _in_flight: in_flight },
                _ => Called::OnCopy { fut: app.clone().oneshot(req), _in_flight: in_flight },
            }
        });
        // The peer's address reaches handlers as a task-local (`extract::Origin`), not as a
        // request extension (a map allocated per request).
        let conn = extract::PEER.scope(peer, graceful.watch(http.serve_connection(TokioIo::new(stream), service)));
        let task = tokio::spawn(async move {
            // Errors here are the client's (reset, malformed): nothing to answer.
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
        tokio::spawn(watch_idle(task, activity, limits.header_timeout));
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

pin_project_lite::pin_project! {
    /// A request's future, counted while in flight: called on the connection's copy of the
    /// stack, or on a copy of its own when that copy was not ready.
    #[project = CalledProj]
    enum Called<A, B> {
        InPlace { #[pin] fut: A, _in_flight: InFlight },
        OnCopy { #[pin] fut: B, _in_flight: InFlight },
    }
}

impl<A: std::future::Future, B: std::future::Future<Output = A::Output>> std::future::Future for Called<A, B> {
    type Output = A::Output;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<A::Output> {
        match self.project() {
            CalledProj::InPlace { fut, .. } => fut.poll(cx),
            CalledProj::OnCopy { fut, .. } => fut.poll(cx),
        }
    }
}

/// What one connection has done: requests begun and requests ended. Written only by the
/// connection's own task; read by its `watch_idle`.
#[derive(Default)]
struct Activity {
    begun: std::sync::atomic::AtomicU64,
    ended: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn snapshot(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.begun.load(Relaxed), self.ended.load(Relaxed))
    }
}

/// A request in flight on a connection, from the call of the stack until its answer (or the
/// request) is dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.begun.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Close a connection that has had no request in flight and begun none for `limit`: idle
/// keep-alive connections, and senders whose headers never end (slowloris; a request counts
/// from the moment its headers are in). It looks every quarter of `limit`, so such a
/// connection is closed after `limit` to 1.25 `limit`. One timer per connection, none per
/// request.
async fn watch_idle(mut conn: tokio::task::JoinHandle<()>, activity: Arc<Activity>, limit: Duration) {
    const LOOKS: u32 = 4;
    let mut last = activity.snapshot();
    let mut quiet = 0;
    loop {
        tokio::select! {
            _ = &mut conn => return,
            () = tokio::time::sleep(limit / LOOKS) => {}
        }
        let now = activity.snapshot();
        if now != last || now.0 != now.1 {
            last = now;
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet == LOOKS {
            // Dropping the connection's future closes the socket.
            conn.abort();
            return;
        }
    }
}
