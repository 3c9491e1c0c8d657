//! The admin API (`/admin/v1`, `/t/{tenant}/admin/v1`) and self-service (`/me`,
//! `/t/{tenant}/me`): JSON in, JSON out, RFC 9457 problems for errors. Handlers parse, call
//! one core operation with the caller as its [`Actor`], and render; the core decides who may
//! do what.

mod api;
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

/// Where the admin and self-service routes are mounted: the default tenant's, then any tenant's.
pub const ADMIN_PREFIXES: [&str; 2] = ["/admin/v1", "/t/{tenant}/admin/v1"];
pub const ME_PREFIXES: [&str; 2] = ["/me", "/t/{tenant}/me"];

/// Every (method, path) the admin and self-service routers register, as mounted.
pub fn registered() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefixes, ops) in [(ADMIN_PREFIXES, resources::api().ops), (ME_PREFIXES, me::api().ops)] {
        for prefix in prefixes {
            for op in &ops {
                out.push((op.verb.to_owned(), api::full_path(prefix, op.path)));
            }
        }
    }
    out
}

/// The OpenAPI 3.1 document of the admin and self-service APIs, generated from the routes as
/// registered and the answer types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApiBuilder, Paths};
    use utoipa::{PartialSchema, ToSchema};
    let problem = utoipa::openapi::Ref::from_schema_name(Problem::name()).into();
    let (admin, me) = (resources::api().ops, me::api().ops);
    let mut paths = Paths::new();
    for prefix in ADMIN_PREFIXES {
        api::describe(&mut paths, prefix, "admin", &admin, &problem);
    }
    for prefix in ME_PREFIXES {
        api::describe(&mut paths, prefix, "self-service", &me, &problem);
    }
    let mut schemas = api::schemas_of(&admin);
    schemas.extend(api::schemas_of(&me));
    schemas.push((Problem::name().into_owned(), Problem::schema()));
    Problem::schemas(&mut schemas);
    let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme("bearer", SecurityScheme::Http(bearer))
        .security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))))
        .build();
    let info = InfoBuilder::new()
        .title("Tessera")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some("Admin and self-service APIs of the Tessera token authority"))
        .build();
    OpenApiBuilder::new().info(info).paths(paths).components(Some(components)).build()
}
