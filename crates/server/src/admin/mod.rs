//! The admin API (`/admin/v1`, `/t/{tenant}/admin/v1`) and self-service (`/me`,
//! `/t/{tenant}/me`): JSON in, JSON out, RFC 9457 problems for errors. Handlers parse, call
//! one core operation with the caller as its [`Actor`], and render; the core decides who may
//! do what.

mod auth;
mod me;
mod problem;
mod resources;
mod views;

pub use auth::admin_audience;
pub use problem::{FieldError, Problem, problem_type};

use crate::AppState;
use axum::Router;

/// The admin routes, relative to `/admin/v1` (the tenant is the path's, else the Host's,
/// else the default tenant).
pub fn routes() -> Router<AppState> {
    resources::routes()
}

/// The self-service routes, relative to `/me`.
pub fn me_routes() -> Router<AppState> {
    me::routes()
}
