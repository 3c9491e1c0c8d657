//! Prometheus metrics: requests by route and status, and a latency histogram; and the one
//! line per request in the log (debug level; server errors at warn). Only the matched route
//! is logged, never the path, query or headers, so no credential reaches the log.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tower::{Layer, Service};

/// Install the process-wide recorder once; later calls return the same handle.
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            Some(handle)
        })
        .clone()
}

/// Drain the histograms into their buckets every few seconds: without it, samples pile up
/// in memory until the next scrape.
pub fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
    })
}

/// Per-route metric handles, made once: registering a labelled metric costs allocations and
/// a registry lookup that the hot path should not pay per request.
struct RouteMetrics {
    route: String,
    latency: Histogram,
    /// Request counters by (method, status), filled as they occur. Read without a lock
    /// (a lock is a write to a line both worker threads share, on every request).
    requests: [OnceLock<(Method, u16, Counter)>; COUNTER_SLOTS],
}

/// (method, status) pairs counted per route without the registry: a route sees a few.
const COUNTER_SLOTS: usize = 8;

/// The handles of a route, made on its first request and kept for the life of the process
/// (routes are a fixed, small set): requests hold a plain reference, no reference count that
/// both worker threads would write.
fn route_metrics(route: &str) -> &'static RouteMetrics {
    static ROUTES: OnceLock<RwLock<HashMap<String, &'static RouteMetrics>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    // The map is only ever added to, so a poisoned lock still holds a sound map.
    if let Some(m) = routes.read().unwrap_or_else(|e| e.into_inner()).get(route).copied() {
        return m;
    }
    let m = RouteMetrics {
        route: route.to_owned(),
        latency: metrics::histogram!("tessera_http_request_duration_seconds", "route" => route.to_owned()),
        requests: Default::default(),
    };
    routes.write().unwrap_or_else(|e| e.into_inner()).entry(route.to_owned()).or_insert_with(|| Box::leak(Box::new(m)))
}

/// The per-route layer (`Router::route_layer(Track)`): a concrete service rather than
/// `middleware::from_fn`, which boxes the inner service and the future on every request.
#[derive(Clone, Copy, Default)]
pub struct Track;

impl<S> Layer<S> for Track {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner, route: Arc::new(OnceLock::new()) }
    }
}

/// A route's service with its metric handles, looked up on its first request and kept (the
/// route is checked against the request's matched path each time, so a service mounted at
/// two paths still counts each under its own).
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    route: Arc<OnceLock<&'static RouteMetrics>>,
}

impl<S> Tracked<S> {
    fn metrics_for(&self, path: &str) -> &'static RouteMetrics {
        match self.route.get() {
            Some(m) if m.route == path => m,
            _ => {
                let m = route_metrics(path);
                let _ = self.route.set(m);
                m
            }
        }
    }
}

impl<S> Service<Request> for Tracked<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().map(|p| self.metrics_for(p.as_str()));
        let method = req.method().clone();
        TrackedFuture { inner: self.inner.call(req), route, method, start: Instant::now() }
    }
}

pin_project_lite::pin_project! {
    /// The inner response future, timed.
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        route: Option<&'static RouteMetrics>,
        method: Method,
        start: Instant,
    }
}

impl<F, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = std::task::ready!(this.inner.poll(cx));
        if let Ok(r) = &res {
            record(*this.route, this.method, r.status().as_u16(), this.start.elapsed());
        }
        Poll::Ready(res)
    }
}

fn record(route: Option<&RouteMetrics>, method: &Method, status: u16, elapsed: Duration) {
    let route_name = route.map_or("(unmatched)", |m| m.route.as_str());
    if status >= 500 {
        tracing::warn!(%method, route = route_name, status, latency_us = elapsed.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(%method, route = route_name, status, latency_us = elapsed.as_micros() as u64, "request");
    }
    let Some(m) = route else { return };
    m.latency.record(elapsed.as_secs_f64());
    let register = || {
        metrics::counter!(
            "tessera_http_requests_total",
            "route" => m.route.clone(),
            "method" => method.as_str().to_owned(),
            "status" => status.to_string()
        )
    };
    for slot in &m.requests {
        let (me, st, c) = match slot.get() {
            Some(entry) => entry,
            // A free slot: take it. Should another request take it first, it is looked at
            // again; two slots for one pair would share the registry's counter anyway.
            None => slot.get_or_init(|| (method.clone(), status, register())),
        };
        if *st == status && me == method {
            c.increment(1);
            return;
        }
    }
    // More pairs than slots on this route: the registry lookup.
    register().increment(1);
}

/// `tessera_tokens_issued_total{grant}`: one counter per label, registered once for every
/// front (registering per request costs a registry lookup and allocations). Registered on
/// first use, so after `serve` has installed the recorder; without one they are no-ops.
pub fn tokens_issued(grant: &'static str) -> &'static metrics::Counter {
    const GRANTS: [&str; 10] = [
        "client_credentials",
        "password",
        "refresh_token",
        "authorization_code",
        "device_code",
        "token_exchange",
        "sftpgo",
        "ica",
        "docspace",
        "other",
    ];
    static COUNTERS: std::sync::OnceLock<Vec<metrics::Counter>> = std::sync::OnceLock::new();
    let counters = COUNTERS.get_or_init(|| {
        GRANTS.iter().map(|label| metrics::counter!("tessera_tokens_issued_total", "grant" => *label)).collect()
    });
    let i = GRANTS.iter().position(|g| *g == grant).unwrap_or(GRANTS.len() - 1);
    // The counters are made from GRANTS, one each: `i` is always in range.
    #[allow(clippy::indexing_slicing, reason = "one counter per entry of GRANTS, and i is an index of GRANTS")]
    &counters[i]
}
