//! A panic in a handler (a bug: input must never reach one) is answered `500` in the format of
//! the front that was asked, counted in `tessera_panics_total`, and logged by the panic hook
//! without the request's content. The connection and the server go on.

use crate::fronts;
use axum::body::Body;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use tessera_core::Error;

/// The front a path belongs to, for the format of its error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    OAuth,
    Tapis,
    Sftpgo,
    Ica,
    DocSpace,
    /// The admin API and self-service (RFC 9457 problems).
    Admin,
}

impl Front {
    pub fn of(path: &str) -> Front {
        if path.starts_with("/v3/oauth2/") {
            Front::Tapis
        } else if path.starts_with("/api/v2/") {
            Front::Sftpgo
        } else if path.starts_with("/ica/rest/") {
            Front::Ica
        } else if path.starts_with("/api/2.0/") {
            Front::DocSpace
        } else if is_admin(path) {
            Front::Admin
        } else {
            Front::OAuth
        }
    }

    /// The front's answer to an internal error.
    fn internal_error(self) -> Response {
        let e = Error::internal("internal error");
        match self {
            Front::OAuth => crate::oauth::OAuthError(e).into_response(),
            Front::Tapis => fronts::tapis::TapisError(e).into_response(),
            Front::Sftpgo => fronts::sftpgo::failure(e),
            Front::Ica => fronts::ica::problem(&e, "/ica/rest", crate::time::unix_now()),
            Front::DocSpace => fronts::docspace::failure(e),
            Front::Admin => crate::admin::ApiError::from(e).into_response(),
        }
    }
}

/// `/admin/v1/...` or `/me...`, at the default tenant's prefix or under `/t/{tenant}`.
fn is_admin(path: &str) -> bool {
    let rest = match path.strip_prefix("/t/") {
        Some(r) => r.find('/').and_then(|i| r.get(i..)).unwrap_or_default(),
        None => path,
    };
    rest.starts_with("/admin/v1") || rest == "/me" || rest.starts_with("/me/")
}

fn panicked(front: Front) -> Response {
    metrics::counter!("tessera_panics_total").increment(1);
    tracing::error!(?front, "a handler panicked; answered 500");
    front.internal_error()
}

/// The layer around the whole router.
#[derive(Clone, Copy, Debug, Default)]
pub struct CatchPanicLayer {
    /// Debug builds only, for the tests: a request carrying `x-tessera-test-panic` panics
    /// where its handler would run (set by `TESSERA_TEST_PANICS=1` at start).
    pub inject: bool,
}

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        CatchPanic { inner, inject: self.inject && cfg!(debug_assertions) }
    }
}

#[derive(Clone, Debug)]
pub struct CatchPanic<S> {
    inner: S,
    inject: bool,
}

impl<S> tower::Service<Request<Body>> for CatchPanic<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Caught<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let front = Front::of(req.uri().path());
        if self.inject && req.headers().contains_key("x-tessera-test-panic") {
            return Caught::Injected { front };
        }
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(req))) {
            Ok(fut) => Caught::Running { fut, front },
            Err(_) => Caught::Done { front },
        }
    }
}

pin_project_lite::pin_project! {
    /// A request's future whose panics become the front's 500.
    #[project = CaughtProj]
    pub enum Caught<F> {
        Running { #[pin] fut: F, front: Front },
        Done { front: Front },
        Injected { front: Front },
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Caught<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            CaughtProj::Running { fut, front } => match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
                Ok(p) => p,
                Err(_) => Poll::Ready(Ok(panicked(*front))),
            },
            CaughtProj::Done { front } => Poll::Ready(Ok(panicked(*front))),
            CaughtProj::Injected { front } => {
                let caught = catch_unwind(|| panic!("a panic injected for a test (TESSERA_TEST_PANICS)"));
                let _: Result<(), _> = caught;
                Poll::Ready(Ok(panicked(*front)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_panics_in_its_fronts_format() {
        for (path, front) in [
            ("/oauth2/token", Front::OAuth),
            ("/t/acme/oauth2/token", Front::OAuth),
            ("/v3/oauth2/tokens", Front::Tapis),
            ("/api/v2/user/token", Front::Sftpgo),
            ("/ica/rest/api/tokens", Front::Ica),
            ("/api/2.0/security/oauth2/token", Front::DocSpace),
            ("/admin/v1/users", Front::Admin),
            ("/t/acme/admin/v1/users", Front::Admin),
            ("/me", Front::Admin),
            ("/t/acme/me/api-keys", Front::Admin),
            ("/metrics", Front::OAuth),
            ("/t/meow", Front::OAuth),
        ] {
            assert_eq!(Front::of(path), front, "{path}");
        }
    }
}
