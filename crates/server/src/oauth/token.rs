//! `POST /oauth2/token`, `/oauth2/introspect`, `/oauth2/revoke`.

use super::OAuthError;
use crate::AppState;
use crate::extract::{Form, Origin, Posted, Tenant, basic_credentials, parse_form};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tessera_core::Error;
use tessera_core::grant::{ClientAuth, Grant, TokenRequest};
use tessera_core::secret::Secret;

/// Client authentication from the Authorization header or the body; using both is an error
/// (RFC 6749 section 2.3: one method per request).
pub(super) fn client_auth(headers: &HeaderMap, form: &mut Form<'_>) -> Result<ClientAuth, Error> {
    let basic = basic_credentials(headers)?;
    let post_secret = form.remove("client_secret");
    let post_id = form.remove("client_id");
    match (basic, post_secret, post_id) {
        (Some(_), Some(_), _) => Err(Error::invalid_request("use one client authentication method, not two")),
        (Some((id, secret)), None, body_id) => {
            if body_id.is_some_and(|b| b != id) {
                return Err(Error::invalid_request("client_id in the body differs from the authenticated client"));
            }
            Ok(ClientAuth::Basic { client_id: id, secret })
        }
        (None, Some(secret), Some(id)) => Ok(ClientAuth::Post { client_id: id, secret: Secret::new(secret) }),
        (None, Some(_), None) => Err(Error::invalid_request("client_secret given without client_id")),
        (None, None, Some(id)) => Ok(ClientAuth::None { client_id: id }),
        (None, None, None) => Ok(ClientAuth::Absent),
    }
}

pub(super) fn required(form: &mut Form<'_>, name: &str) -> Result<String, Error> {
    form.remove(name).ok_or_else(|| Error::invalid_request(format!("missing parameter `{name}`")))
}

pub(super) fn no_store(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

pub async fn token_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    Posted { headers, body }: Posted,
) -> Result<Response, OAuthError> {
    let mut form = parse_form(&headers, &body)?;
    let auth = client_auth(&headers, &mut form)?;
    let grant_type = required(&mut form, "grant_type")?;
    let grant = match grant_type.as_str() {
        "client_credentials" => Grant::ClientCredentials,
        "password" => Grant::Password {
            username: required(&mut form, "username")?,
            password: Secret::new(required(&mut form, "password")?),
            otp: form.remove("otp").map(Secret::new),
        },
        "refresh_token" => Grant::RefreshToken { refresh_token: Secret::new(required(&mut form, "refresh_token")?) },
        "authorization_code" => Grant::AuthorizationCode {
            code: Secret::new(required(&mut form, "code")?),
            redirect_uri: Some(required(&mut form, "redirect_uri")?),
            code_verifier: form.remove("code_verifier").map(Secret::new),
        },
        "urn:ietf:params:oauth:grant-type:device_code" => {
            Grant::DeviceCode { device_code: Secret::new(required(&mut form, "device_code")?) }
        }
        "urn:ietf:params:oauth:grant-type:token-exchange" => Grant::TokenExchange {
            subject_token: Secret::new(required(&mut form, "subject_token")?),
            subject_token_type: required(&mut form, "subject_token_type")?,
            requested_token_type: form.remove("requested_token_type"),
        },
        other => {
            return Err(Error::new(
                tessera_core::ErrorKind::UnsupportedGrantType,
                format!("grant type `{other}` is not supported"),
            )
            .into());
        }
    };
    let mut req = TokenRequest::new(grant);
    req.origin = origin;
    req.scope = form.remove("scope");
    req.resource = form.remove("resource").or_else(|| form.remove("audience"));
    let issued = state.auth.token(&tenant, &auth, req).await?;
    issued_counter(&grant_type).increment(1);
    Ok(token_response(&issued))
}

/// The token endpoint's answer (RFC 6749 section 5.1, RFC 8693 section 2.2.1): the schema.
/// [`token_response`] writes the same bytes by hand, which a test holds it to; the type is
/// what the API description is made from.
#[allow(dead_code)]
#[derive(Debug, Serialize)]
pub struct TokenAnswer<'a> {
    pub access_token: &'a str,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<&'a str>,
}

impl<'a> From<&'a tessera_core::grant::IssuedTokens> for TokenAnswer<'a> {
    fn from(t: &'a tessera_core::grant::IssuedTokens) -> Self {
        TokenAnswer {
            access_token: &t.access_token,
            token_type: "Bearer",
            expires_in: t.expires_in,
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose()),
            scope: t.scope.as_deref(),
            issued_token_type: t.issued_token_type,
            id_token: t.id_token.as_deref(),
        }
    }
}

/// RFC 6749 section 5.1, written straight from the issued tokens (the hot path: serde's
/// escaping scan over a 450-byte token cost more than the rest of the answer).
fn token_response(t: &tessera_core::grant::IssuedTokens) -> Response {
    use tessera_core::token::json_str;
    let mut out = Vec::with_capacity(t.access_token.len() + 160);
    out.extend_from_slice(b"{\"access_token\":\"");
    // Our own JWS: base64url segments and dots, nothing to escape (and no scan of its 500
    // bytes on the hot path).
    debug_assert!(t.access_token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
    out.extend_from_slice(t.access_token.as_bytes());
    out.push(b'"');
    out.extend_from_slice(b",\"token_type\":\"Bearer\",\"expires_in\":");
    out.extend_from_slice(itoa::Buffer::new().format(t.expires_in).as_bytes());
    if let Some(r) = &t.refresh_token {
        out.extend_from_slice(b",\"refresh_token\":");
        json_str(&mut out, r.expose());
    }
    if let Some(s) = &t.scope {
        out.extend_from_slice(b",\"scope\":");
        json_str(&mut out, s);
    }
    if let Some(tt) = t.issued_token_type {
        out.extend_from_slice(b",\"issued_token_type\":");
        json_str(&mut out, tt);
    }
    if let Some(id) = &t.id_token {
        out.extend_from_slice(b",\"id_token\":");
        json_str(&mut out, id);
    }
    out.push(b'}');
    // Its three headers set at once (`no_store` on a generic response would first set and
    // then replace a content type).
    let mut res = Response::new(axum::body::Body::from(out));
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// `tessera_tokens_issued_total` for a grant type as the token endpoint names it.
fn issued_counter(grant_type: &str) -> &'static metrics::Counter {
    crate::metrics_layer::tokens_issued(match grant_type {
        "client_credentials" => "client_credentials",
        "password" => "password",
        "refresh_token" => "refresh_token",
        "authorization_code" => "authorization_code",
        "urn:ietf:params:oauth:grant-type:device_code" => "device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange" => "token_exchange",
        _ => "other",
    })
}

pub async fn introspect_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    Posted { headers, body }: Posted,
) -> Result<Response, OAuthError> {
    let mut form = parse_form(&headers, &body)?;
    let auth = client_auth(&headers, &mut form)?;
    let token = required(&mut form, "token")?;
    // RFC 7662 / 7009: a hint only; every kind of token is looked for anyway.
    form.remove("token_type_hint");
    let answer = state.auth.introspect(&tenant, &auth, &token, origin).await?;
    Ok(no_store(axum::Json(answer).into_response()))
}

pub async fn revoke_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    Posted { headers, body }: Posted,
) -> Result<Response, OAuthError> {
    let mut form = parse_form(&headers, &body)?;
    let auth = client_auth(&headers, &mut form)?;
    let token = required(&mut form, "token")?;
    // RFC 7662 / 7009: a hint only; every kind of token is looked for anyway.
    form.remove("token_type_hint");
    state.auth.revoke(&tenant, &auth, &token, origin).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_core::grant::IssuedTokens;

    type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

    async fn body_bytes(res: Response) -> TestResult<Vec<u8>> {
        Ok(axum::body::to_bytes(res.into_body(), 1 << 16).await?.to_vec())
    }

    #[tokio::test]
    async fn token_response_is_exactly_serdes() -> TestResult {
        let full = IssuedTokens::access("a.b.c".into(), "j".into(), Some("read \"odd\" \\ é\n".into()), 160, 100)
            .with_refresh(Some(Secret::new("tsr_x")), 600)
            .of_type(tessera_core::grant::token_type::ACCESS_TOKEN);
        let mut full = full;
        full.id_token = Some("h.p.s".into());
        let bare = IssuedTokens::access("t".into(), "j".into(), None, 5, 5);
        for t in [full, bare] {
            let res = token_response(&t);
            let h = res.headers();
            assert_eq!(h.get(header::CONTENT_TYPE).map(|v| v.as_bytes()), Some(&b"application/json"[..]));
            assert_eq!(h.get(header::CACHE_CONTROL).map(|v| v.as_bytes()), Some(&b"no-store"[..]));
            assert_eq!(h.get(header::PRAGMA).map(|v| v.as_bytes()), Some(&b"no-cache"[..]));
            let written = String::from_utf8(body_bytes(res).await?)?;
            assert_eq!(written, serde_json::to_string(&TokenAnswer::from(&t))?);
        }
        Ok(())
    }
}
