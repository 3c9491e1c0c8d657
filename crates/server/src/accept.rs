//! The HTTP/1.1 accept loop: ours rather than a framework's, for a measured reason.
//!
//! The usual ways to bound slow clients cost a timer per request: hyper's
//! `header_read_timeout` (a boxed `Sleep` per request, registered and removed in tokio's timer
//! wheel under two shard locks, and a clock read), and tower-http's `Timeout` likewise. On the
//! token hot path that was a measurable share of a request: with one timer per connection
//! instead (`watch_idle`), issuance went from 0.94x to 1.00-1.05x the bare signing limit's
//! rate in side-by-side runs, and 2.05 syscalls per request (session 5, commit db37fe1). The
//! loop also calls each connection's copy of the service stack in place instead of cloning it
//! per request. Keep it only while `bench/run` shows that is still worth it; everything
//! off the hot path uses the framework's parts.

use crate::{AppState, deadline, extract, router};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

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
    /// Connections served at once; more wait in the listen queue until one ends.
    pub max_connections: usize,
    /// Debug builds only, for tests: requests carrying `x-tessera-test-panic` panic in place
    /// of their handler ([`crate::panic::CatchPanicLayer`]).
    pub inject_panics: bool,
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
        .layer(crate::panic::CatchPanicLayer { inject: limits.inject_panics })
        .layer(deadline::Deadline(limits.request_timeout))
        .service(router(state));
    // No hyper timer: its header-read timeout arms a timer for every request (an allocation,
    // two timer-wheel locks, a clock read). `watch_idle` does that job with one timer per
    // connection.
    let http = hyper::server::conn::http1::Builder::new();
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    // A slot per connection, taken before accepting: at the cap, new connections wait in the
    // kernel's listen queue (idle and slow ones are closed by `watch_idle`, freeing slots).
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    // Request ids (see `extract::RequestTag`): this process, then a number per connection.
    let node = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0);
    let mut conns: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
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
        conns += 1;
        let conn_no = conns;
        let service = hyper::service::service_fn(move |req: axum::http::Request<hyper::body::Incoming>| {
            let req = req.map(axum::body::Body::new);
            let (in_flight, seq) = InFlight::begin(&counted);
            let tag = extract::RequestTag {
                node,
                conn: conn_no,
                seq,
                given: req.headers().get(&extract::X_REQUEST_ID).cloned(),
            };
            let mut app = app.borrow_mut();
            // Every layer of the stack is always ready; should one ever not be, the request
            // waits for it on its own copy.
            match app.poll_ready(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
                std::task::Poll::Ready(Ok(())) => {
                    Called::InPlace { fut: extract::REQUEST.scope(tag, app.call(req)), _in_flight: in_flight }
                }
                _ => {
                    Called::OnCopy { fut: extract::REQUEST.scope(tag, app.clone().oneshot(req)), _in_flight: in_flight }
                }
            }
        });
        // The peer's address reaches handlers as a task-local (`extract::Origin`), not as a
        // request extension (a map allocated per request).
        let conn = extract::PEER.scope(peer, graceful.watch(http.serve_connection(TokioIo::new(stream), service)));
        let task = tokio::spawn(async move {
            // The slot is given back when the connection ends, or is closed by `watch_idle`.
            let _slot = slot;
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
    /// The request in flight, and its number on the connection (from 0).
    fn begin(activity: &Arc<Activity>) -> (Self, u64) {
        let seq = activity.begun.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (InFlight(activity.clone()), seq)
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
