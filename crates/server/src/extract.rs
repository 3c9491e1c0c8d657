//! Credentials and parameters from the wire: HTTP Basic, Bearer, form bodies, the tenant.

use crate::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::borrow::Cow;
use tessera_core::Error;
use tessera_core::secret::Secret;

/// `Authorization: Basic` credentials, or `None` when the header is absent or another scheme.
/// Per RFC 6749 section 2.3.1 both parts are form-urlencoded before encoding.
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, Secret)>, Error> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| Error::invalid_request("malformed Authorization header"))?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let bad = || Error::invalid_client("malformed Basic credentials");
    let rest = rest.trim();
    // Decoded on the stack when it fits (client credentials do): this runs on every
    // client-authenticated request.
    let mut stack = [0u8; 256];
    let heap;
    let decoded: &[u8] = if rest.len() <= 340 {
        let n = STANDARD.decode_slice(rest, &mut stack).map_err(|_| bad())?;
        stack.get(..n).ok_or_else(bad)?
    } else {
        heap = STANDARD.decode(rest).map_err(|_| bad())?;
        &heap
    };
    let decoded = std::str::from_utf8(decoded).map_err(|_| bad())?;
    let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
    Ok(Some((form_decode(user).ok_or_else(bad)?.into_owned(), Secret::new(form_decode(pass).ok_or_else(bad)?))))
}

tokio::task_local! {
    /// The peer of the connection being served, set by [`crate::run`] around each
    /// connection's task.
    pub static PEER: std::net::SocketAddr;
    /// The request being served, set by [`crate::run`] around each request's future.
    pub static REQUEST: RequestTag;
}

/// What names a request in the audit trail: the caller's `X-Request-Id` (from a proxy or
/// the client) if it sent a usable one, else this server's own numbering. Made for every
/// request, so nothing is formatted or allocated until an event asks for it.
#[derive(Debug, Clone)]
pub struct RequestTag {
    /// This process (its start time, ms), the connection's number, the request's number on it.
    pub node: u64,
    pub conn: u64,
    pub seq: u64,
    pub given: Option<axum::http::HeaderValue>,
}

pub static X_REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

impl RequestTag {
    /// The id as recorded: a given one of 1-128 printable characters, else `node-conn-seq`
    /// in hexadecimal.
    pub fn id(&self) -> String {
        if let Some(v) = &self.given
            && let Ok(s) = v.to_str()
            && (1..=128).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_graphic())
        {
            return s.to_owned();
        }
        format!("{:x}-{:x}-{:x}", self.node, self.conn, self.seq)
    }
}

/// Where the request being served comes from, for the audit trail (installed into the
/// engine with `Authority::with_origin`): empty outside a request.
pub fn current_origin() -> tessera_core::audit::Origin {
    tessera_core::audit::Origin {
        address: PEER.try_with(|p| p.ip()).ok(),
        request_id: REQUEST.try_with(RequestTag::id).ok(),
    }
}

/// The client's address: the connection's peer (none outside [`crate::run`], e.g. a router
/// called directly).
pub struct Origin(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Origin(peer_ip()))
    }
}

/// The address of the peer of the request being served (see [`Origin`]).
pub fn peer_ip() -> Option<std::net::IpAddr> {
    PEER.try_with(|p| p.ip()).ok()
}

/// A query string a handler takes as `Result<Query<T>, QueryRejection>`, as an error of the
/// core that the handler's front renders in its own format (axum's own rejection is plain
/// text, which no front answers in).
pub fn query<T>(
    q: Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, tessera_core::Error> {
    q.map(|axum::extract::Query(v)| v)
        .map_err(|e| tessera_core::Error::invalid_request(format!("invalid query: {}", e.body_text())))
}

/// The `Retry-After` value for an error, if it has one.
pub fn retry_after(e: &tessera_core::Error) -> Option<axum::http::HeaderValue> {
    use tessera_core::ErrorKind;
    match (e.kind, e.retry_after) {
        (_, Some(s)) => axum::http::HeaderValue::from_str(&s.to_string()).ok(),
        (ErrorKind::Unavailable | ErrorKind::RateLimited, None) => Some(axum::http::HeaderValue::from_static("1")),
        _ => None,
    }
}

/// `Authorization: Bearer` token, if present.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// A header's value as trimmed text, if present and non-empty.
pub fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// The value of cookie `name`; with `bare_ok`, also a `Cookie:` header that is a bare value
/// without any `name=` (what some generated SDKs send).
pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str, bare_ok: bool) -> Option<&'a str> {
    for value in headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()) {
        for pair in value.split(';') {
            match pair.split_once('=') {
                Some((k, v)) if k.trim() == name => {
                    let v = v.trim();
                    if !v.is_empty() {
                        return Some(v);
                    }
                }
                None if bare_ok && !pair.trim().is_empty() => return Some(pair.trim()),
                _ => {}
            }
        }
    }
    None
}

/// One form-urlencoded component: `+` is a space, then percent-decoding; borrowed when
/// there is nothing to decode (the usual case).
fn form_decode(s: &str) -> Option<Cow<'_, str>> {
    if !tessera_core::scan::any_byte(s.as_bytes(), |b| (b == b'+') | (b == b'%')) {
        return Some(Cow::Borrowed(s));
    }
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus).decode_utf8().ok().map(|c| Cow::Owned(c.into_owned()))
}

/// The most parameters a form may have: the token endpoint's largest request has about ten.
const MAX_FORM_PARAMS: usize = 64;

/// A form-encoded body (RFC 6749 appendix B, UTF-8), values borrowed from the body where nothing
/// needed decoding. Empty values count as absent (RFC 6749 section 3.1).
#[derive(Debug)]
pub struct Form<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl Form<'_> {
    /// Take a parameter out (each is read once).
    pub fn remove(&mut self, name: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == name)?;
        Some(self.0.swap_remove(i).1.into_owned())
    }
}

/// Parse a form-encoded body; a repeated parameter is an error (RFC 6749 section 3.1), and
/// so is a form of more than [`MAX_FORM_PARAMS`] parameters.
pub fn parse_form<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<Form<'a>, Error> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ct.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(Error::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    // Split here and decoded by percent_encoding: form_urlencoded's lossy UTF-8 pass cost
    // about 12k instructions per introspection of a 450-byte token (callgrind).
    let body = std::str::from_utf8(body).map_err(|_| Error::invalid_request("the form is not UTF-8"))?;
    parse_pairs(body)
}

/// A query string (`a=1&b=2`, form-encoded), by the rules of [`parse_form`].
pub fn parse_query(query: Option<&str>) -> Result<Form<'_>, Error> {
    parse_pairs(query.unwrap_or(""))
}

fn parse_pairs(body: &str) -> Result<Form<'_>, Error> {
    let mut out: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(8);
    for pair in body.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = || Error::invalid_request("the form has a malformed parameter (not UTF-8 once decoded)");
        let (k, v) = (form_decode(k).ok_or_else(bad)?, form_decode(v).ok_or_else(bad)?);
        if out.iter().any(|(seen, _)| *seen == k) {
            return Err(Error::invalid_request(format!("parameter `{k}` is repeated")));
        }
        if out.len() == MAX_FORM_PARAMS {
            return Err(Error::invalid_request(format!("more than {MAX_FORM_PARAMS} parameters")));
        }
        out.push((k, v));
    }
    out.retain(|(_, v)| !v.is_empty());
    Ok(Form(out))
}

/// A POST's headers and body, moved out of the request (axum's `HeaderMap` extractor would
/// clone the headers), for the standard OAuth endpoints. A body that cannot be read (413 over
/// [`crate::BODY_LIMIT`], 400 for a broken one) gets the RFC 6749 error body.
pub struct Posted {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let headers = std::mem::take(&mut parts.headers);
        match read_body(body).await {
            Ok(body) => Ok(Posted { headers, body }),
            Err(unread) => Err(unread.render(|e| crate::oauth::OAuthError(e).into_response())),
        }
    }
}

/// Why a request body was not read: 413 over [`crate::BODY_LIMIT`], 400 for a body the client
/// broke off.
#[derive(Debug)]
pub struct UnreadBody {
    pub status: StatusCode,
    pub error: Error,
}

impl UnreadBody {
    /// The answer, in the front's own format (`render`) with this status. It closes the
    /// connection: the rest of the body is not read, so the connection cannot carry another
    /// request, and a client that reused it would see its next request fail.
    pub fn render(self, render: impl FnOnce(Error) -> Response) -> Response {
        let mut res = render(self.error);
        *res.status_mut() = self.status;
        res.headers_mut().insert(header::CONNECTION, axum::http::HeaderValue::from_static("close"));
        res
    }
}

/// A whole request body of at most [`crate::BODY_LIMIT`] bytes. The usual body arrives as one
/// piece and is returned without a copy; axum's `Bytes` extractor wraps the body in a
/// limiting body and a collecting buffer first, which cost about 2k instructions per token
/// request (callgrind).
pub async fn read_body(mut body: Body) -> Result<Bytes, UnreadBody> {
    use axum::body::HttpBody;
    let too_large = || UnreadBody {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        error: Error::invalid_request(format!("the request body is larger than {} KiB", crate::BODY_LIMIT / 1024)),
    };
    if body.size_hint().lower() > crate::BODY_LIMIT as u64 {
        return Err(too_large());
    }
    let mut first: Option<Bytes> = None;
    let mut more: Vec<u8> = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| UnreadBody {
            status: StatusCode::BAD_REQUEST,
            error: Error::invalid_request(format!("the request body could not be read: {e}")),
        })?;
        // Trailers carry nothing for us.
        let Ok(data) = frame.into_data() else { continue };
        let read = first.as_ref().map_or(0, Bytes::len) + more.len() + data.len();
        if read > crate::BODY_LIMIT {
            return Err(too_large());
        }
        match &first {
            None if more.is_empty() => first = Some(data),
            _ => {
                if let Some(f) = first.take() {
                    more.extend_from_slice(&f);
                }
                more.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(more)))
}

/// The tenant a request addresses (DESIGN.md): the Host header mapped to a tenant's host
/// names, else the path (`/t/{tenant}/...`), else the default tenant. A front whose API has
/// an explicit tenant parameter checks that first, itself. Borrowed for the default tenant.
/// The name as the request spells it (not a `tessera_core::TenantName`): one that breaks the
/// rules is answered by the core as an unknown tenant, in the front's own error format.
pub struct Tenant(pub Cow<'static, str>);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(t) =
            parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).and_then(|h| state.auth.tenant_for_host(h))
        {
            return Ok(Tenant(Cow::Owned(t)));
        }
        match RawPathParams::from_request_parts(parts, state).await {
            Ok(params) => {
                if let Some((_, t)) = params.iter().find(|(k, _)| *k == "tenant") {
                    return Ok(Tenant(Cow::Owned(t.to_owned())));
                }
            }
            // A tenant segment that is not UTF-8 once decoded names no tenant: never the
            // default one (its raw text breaks the name rules, so the core answers unknown).
            Err(_)
                if parts
                    .extensions
                    .get::<axum::extract::MatchedPath>()
                    .is_some_and(|m| m.as_str().contains("{tenant}")) =>
            {
                let raw = parts.uri.path().split('/').find(|seg| seg.contains('%')).unwrap_or("%");
                return Ok(Tenant(Cow::Owned(raw.to_owned())));
            }
            Err(_) => {}
        }
        Ok(Tenant(Cow::Borrowed(tessera_core::DEFAULT_TENANT)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn basic_is_form_decoded() {
        let mut h = HeaderMap::new();
        let enc = STANDARD.encode("my%20id:p%3Aw+d");
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&format!("Basic {enc}")).unwrap());
        let (id, pw) = basic_credentials(&h).unwrap().unwrap();
        assert_eq!(id, "my id");
        assert_eq!(pw.expose(), "p:w d");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert!(basic_credentials(&h).is_err());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert!(basic_credentials(&h).unwrap().is_none());
        assert_eq!(bearer_token(&h), Some("x"));
    }

    #[test]
    fn cookies_named_and_bare() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; asc_auth_key= tok ; b=2"));
        assert_eq!(cookie_value(&h, "asc_auth_key", true), Some("tok"));
        h.insert(header::COOKIE, HeaderValue::from_static("tsk_bare"));
        assert_eq!(cookie_value(&h, "asc_auth_key", true), Some("tsk_bare"));
        assert_eq!(cookie_value(&h, "asc_auth_key", false), None);
    }

    #[test]
    fn form_rejects_repeats_and_wrong_type() -> Result<(), Error> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"));
        assert_eq!(parse_form(&h, b"a=1&b=2")?.remove("b").as_deref(), Some("2"));
        assert_eq!(parse_form(&h, b"a=x+y%2Bz%3D&b=2")?.remove("a").as_deref(), Some("x y+z="));
        assert!(parse_form(&h, b"a=1&a=2").is_err());
        assert!(parse_form(&h, b"a=1&b=2&a=").is_err());
        assert!(parse_form(&h, b"a=")?.remove("a").is_none());
        let mut f = parse_form(&h, b"&k&=v&x=%E2%82%AC+%2B&&e=a=b")?;
        assert_eq!(f.remove("x").as_deref(), Some("\u{20ac} +"));
        assert_eq!(f.remove("e").as_deref(), Some("a=b"));
        assert!(f.remove("k").is_none());
        assert!(parse_form(&h, b"a=%FF").is_err());
        assert!(parse_form(&h, b"a=\xff").is_err());
        let many: Vec<String> = (0..=MAX_FORM_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert!(parse_form(&h, many.join("&").as_bytes()).is_err());
        assert!(parse_form(&h, many[1..].join("&").as_bytes()).is_ok());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        assert!(parse_form(&h, b"a=1").is_err());
        Ok(())
    }
}
