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
pub use problem::{ApiError, FieldError, Problem, problem_type};

use crate::openapi::{Front, errors_of};

/// The admin API, at the default tenant's prefix and at any tenant's.
pub fn front() -> Front {
    let (errors, error_schemas) = errors_of::<Problem>("application/problem+json");
    Front {
        tag: "admin",
        prefixes: &["/admin/v1", "/t/{tenant}/admin/v1"],
        api: resources::api().fallback(resources::not_found),
        security: &["bearer", "apiKey"],
        errors,
        error_schemas,
    }
}

/// Self-service, at the default tenant's prefix and at any tenant's.
pub fn me_front() -> Front {
    let (errors, error_schemas) = errors_of::<Problem>("application/problem+json");
    Front {
        tag: "self-service",
        prefixes: &["/me", "/t/{tenant}/me"],
        api: me::api().fallback(resources::not_found),
        security: &["bearer", "apiKey"],
        errors,
        error_schemas,
    }
}
