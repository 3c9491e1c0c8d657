//! The request deadline: a request (body and handling) that takes longer than the limit is
//! answered `503` with an RFC 6749 error body and `Retry-After`, and its work is dropped.
//! tower-http's timeout answers with an empty body. The time counts from the first moment
//! the request waits (for its body, the store, a password hash), which follows its headers
//! by microseconds; a request answered without waiting never starts a timer.

use crate::oauth::OAuthError;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tessera_core::Error;
use tower::{Layer, Service};

#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub Duration);

impl<S> Layer<S> for Deadline {
    type Service = WithDeadline<S>;

    fn layer(&self, inner: S) -> WithDeadline<S> {
        WithDeadline { inner, limit: self.0 }
    }
}

#[derive(Clone, Debug)]
pub struct WithDeadline<S> {
    inner: S,
    limit: Duration,
}

impl<S> Service<Request> for WithDeadline<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = DeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        DeadlineFuture { inner: self.inner.call(req), sleep: None, limit: self.limit }
    }
}

pin_project_lite::pin_project! {
    pub struct DeadlineFuture<F> {
        #[pin]
        inner: F,
        // Armed when the request first has to wait: most requests (a client_credentials
        // token, an introspection) are answered in their first poll, and a timer costs a
        // clock read and a timer-wheel entry each.
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        limit: Duration,
    }
}

impl<F, E> Future for DeadlineFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(res) = this.inner.poll(cx) {
            return Poll::Ready(res);
        }
        let limit = *this.limit;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if sleep.as_mut().poll(cx).is_ready() {
            let e = Error::unavailable(format!("the request took longer than {} ms", this.limit.as_millis()));
            return Poll::Ready(Ok(OAuthError(e).into_response()));
        }
        Poll::Pending
    }
}
