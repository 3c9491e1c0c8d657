//! The standard OAuth 2 front: token (RFC 6749), introspection (RFC 7662), revocation
//! (RFC 7009), metadata (RFC 8414 / OpenID discovery) and JWKS.

mod device;
mod error;
pub mod metadata;
mod token;
mod userinfo;

pub use error::OAuthError;

use crate::AppState;
use crate::pages::authorize;
use axum::Router;
use axum::routing::{get, post};

/// The standard endpoints of one tenant; mounted at the root (default tenant) and under
/// `/t/{tenant}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/oauth2/token", post(token::token_post))
        .route("/oauth2/introspect", post(token::introspect_post))
        .route("/oauth2/revoke", post(token::revoke_post))
        .route("/oauth2/device_authorization", post(device::device_authorization_post))
        .route("/device", get(crate::pages::device::device_get).post(crate::pages::device::device_post))
        .route("/oauth2/authorize", get(authorize::authorize_get).post(authorize::authorize_post))
        .route("/oauth2/logout", get(authorize::logout).post(authorize::logout))
        .route("/oauth2/userinfo", get(userinfo::userinfo).post(userinfo::userinfo))
        .route("/.well-known/openid-configuration", get(metadata::discovery_get))
        .route("/.well-known/oauth-authorization-server", get(metadata::discovery_get))
        .route("/.well-known/jwks.json", get(metadata::jwks_get))
}
