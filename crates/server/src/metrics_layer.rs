//! Prometheus metrics: requests by route and status, and a latency histogram; and the one
//! line per request in the log (debug level; server errors at warn). Only the matched route
//! is logged, never the path, query or headers, so no credential reaches the log.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

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
    requests: Mutex<Vec<(Method, u16, Counter)>>,
}

fn route_metrics(route: &str) -> Arc<RouteMetrics> {
    static ROUTES: OnceLock<RwLock<HashMap<String, Arc<RouteMetrics>>>> = OnceLock::new();
    let routes = ROUTES.get_or_init(Default::default);
    if let Some(m) = routes.read().ok().and_then(|r| r.get(route).cloned()) {
        return m;
    }
    let m = Arc::new(RouteMetrics {
        route: route.to_owned(),
        latency: metrics::histogram!("tessera_http_request_duration_seconds", "route" => route.to_owned()),
        requests: Mutex::new(Vec::new()),
    });
    if let Ok(mut w) = routes.write() {
        return w.entry(route.to_owned()).or_insert(m).clone();
    }
    m
}

pub async fn track(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| route_metrics(p.as_str()));
    let method = req.method().clone();
    let start = Instant::now();
    let res = next.run(req).await;
    let elapsed = start.elapsed();
    let status = res.status().as_u16();
    let route_name = route.as_ref().map_or("(unmatched)", |m| m.route.as_str());
    if status >= 500 {
        tracing::warn!(%method, route = route_name, status, latency_us = elapsed.as_micros() as u64, "request failed");
    } else {
        tracing::debug!(%method, route = route_name, status, latency_us = elapsed.as_micros() as u64, "request");
    }
    if let Some(m) = route {
        m.latency.record(elapsed.as_secs_f64());
        if let Ok(mut counters) = m.requests.lock() {
            match counters.iter().find(|(me, st, _)| *st == status && *me == method) {
                Some((_, _, c)) => c.increment(1),
                None => {
                    let c = metrics::counter!(
                        "tessera_http_requests_total",
                        "route" => m.route.clone(),
                        "method" => method.as_str().to_owned(),
                        "status" => status.to_string()
                    );
                    c.increment(1);
                    counters.push((method, status, c));
                }
            }
        }
    }
    res
}
