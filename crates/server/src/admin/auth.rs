//! Who calls the admin and self-service APIs: a user's access token (or an API key), and the
//! request body as JSON. The core decides what the caller may do.

use super::problem::ApiError;
use crate::AppState;
use crate::extract::{Tenant, bearer_token, header_text};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use tessera_core::authority::{Action, Actor, Audience, Caller};
use tessera_core::principal::User;
use tessera_core::secret::prefix;
use tessera_core::{Error, ErrorKind};

/// The audience of tokens minted for the admin API of a tenant whose issuer is `issuer`
/// (RFC 8707 `resource=<issuer>/admin/v1`); the tenant's default audience (its issuer) is
/// accepted too.
pub fn admin_audience(issuer: &str) -> String {
    format!("{}/admin/v1", issuer.trim_end_matches('/'))
}

/// The caller of a request, authenticated; what they may do is the core's decision.
pub enum Who {
    User(Box<User>),
    Client { tenant: String, client_id: String },
}

impl Who {
    pub fn actor(&self) -> Actor<'_> {
        match self {
            Who::User(u) => Actor::User(u),
            Who::Client { tenant, client_id } => Actor::Client { tenant, client_id },
        }
    }
}

/// The caller of an admin route, and the tenant the route addresses.
pub struct Admin {
    pub who: Who,
    pub tenant: String,
}

/// The caller of a self-service route: a user of the tenant the route addresses.
pub struct Me {
    pub who: Who,
    pub tenant: String,
}

fn unauthenticated() -> ApiError {
    Error::invalid_token("authenticate with a Bearer access token or an X-API-Key").into()
}

/// A refusal to verify is `invalid_token`, whatever the reason (an unknown tenant named in
/// the token included); a store outage stays `unavailable`.
fn as_invalid_token(e: Error) -> Error {
    match e.kind {
        ErrorKind::Unavailable | ErrorKind::Internal | ErrorKind::InvalidToken => e,
        _ => Error::invalid_token("the token is not valid here"),
    }
}

/// Authenticate the request. `home`: the tenant whose credentials alone count (self-service);
/// `None` for the admin API, where a token is verified at the tenant it names (with that
/// tenant's keys only) and the core decides whether its user may act on the addressed tenant
/// (a superadmin of the default tenant may).
async fn authenticate(state: &AppState, parts: &Parts, home: Option<&str>) -> Result<Who, ApiError> {
    let headers = &parts.headers;
    let bearer = bearer_token(headers);
    let api_key = header_text(headers, "x-api-key").or(bearer.filter(|b| b.starts_with(prefix::API_KEY)));
    if let Some(key) = api_key {
        let (user, _) = state.auth.authenticate_api_key(home, key, crate::extract::peer_ip()).await?;
        return Ok(Who::User(Box::new(user)));
    }
    let raw = bearer.filter(|b| !b.is_empty()).ok_or_else(unauthenticated)?;
    let tenant = match home {
        Some(t) => t.to_owned(),
        None => tessera_core::token::parse(raw)
            .ok()
            .and_then(|p| p.claims.get("tenant").and_then(|t| t.as_str()).map(str::to_owned))
            .ok_or_else(|| Error::invalid_token("not a token of this server"))?,
    };
    let issuer = state.auth.tenant(&tenant).map_err(as_invalid_token)?.issuer.clone();
    let admin = admin_audience(&issuer);
    let accepts = [Audience::Issuer, Audience::Named(&admin)];
    match state.auth.bearer_caller(&tenant, raw, &accepts).await.map_err(as_invalid_token)? {
        Caller::User(u, _) => Ok(Who::User(u)),
        Caller::Client(c) => {
            Ok(Who::Client { tenant: c.tenant.clone(), client_id: c.client_id.clone().unwrap_or_default() })
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Ok(Tenant(tenant)) = Tenant::from_request_parts(parts, state).await;
        let who = authenticate(state, parts, None).await?;
        // The admin API is for those the core lets administer the addressed tenant; each
        // operation then asks the core again for itself.
        state.auth.authorize(&who.actor(), &tenant, Action::Administer).await?;
        Ok(Admin { who, tenant: tenant.into_owned() })
    }
}

impl FromRequestParts<AppState> for Me {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Ok(Tenant(tenant)) = Tenant::from_request_parts(parts, state).await;
        let who = authenticate(state, parts, Some(&tenant)).await?;
        Ok(Me { who, tenant: tenant.into_owned() })
    }
}

/// A JSON request body (at most [`crate::BODY_LIMIT`]), refused as a problem naming the field
/// at fault where the parser can tell.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = axum::response::Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        use axum::response::IntoResponse;
        let (parts, body) = req.into_parts();
        let ct = parts.headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        let bytes = match crate::extract::read_body(body).await {
            Ok(b) => b,
            Err(unread) => return Err(unread.render(|e| ApiError::from(e).into_response())),
        };
        // A POST with no body at all (an action without parameters) needs no content type.
        let acceptable = mime.eq_ignore_ascii_case("application/json") || (mime.is_empty() && bytes.is_empty());
        if !acceptable {
            let e = Error::invalid_request("the body must be application/json");
            return Err(ApiError::from(e).into_response());
        }
        let text: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
        serde_json::from_slice(text).map(Body).map_err(|e| {
            let msg = e.to_string();
            let field = named_field(&msg);
            ApiError::body(format!("invalid JSON body: {msg}"), field).into_response()
        })
    }
}

/// The field serde names in a message such as "missing field `password`".
fn named_field(msg: &str) -> Option<String> {
    ["missing field `", "unknown field `", "duplicate field `"].iter().find_map(|lead| {
        let rest = msg.split_once(lead)?.1;
        Some(rest.split_once('`')?.0.to_owned())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(super::named_field("missing field `password` at line 1").as_deref(), Some("password"));
        assert_eq!(super::named_field("unknown field `x`, expected one of").as_deref(), Some("x"));
        assert_eq!(super::named_field("expected value at line 1 column 1"), None);
    }
}
