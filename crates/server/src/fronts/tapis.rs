//! Tapis Authenticator v3 (`/v3/oauth2/...`), so that the published `tapis-authenticator`
//! client works unchanged (CONTRACTS.md section 4). A thin adapter: every decision is the
//! core's; this module only speaks Tapis' envelope, field names and status codes.

use crate::AppState;
use crate::extract::{Origin, Tenant, basic_credentials};
use crate::openapi::{
    Api, Doc, Field, Front, JSON, doc, list, null, object, object_with, one_of, strings, tapis_envelope, text,
};
use crate::time::rfc3339;
use crate::urls::{endpoint_base, verification_uri};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use tessera_core::authority::{Audience, Caller, NewClient, TenantPolicy};
use tessera_core::grant::{ClientAuth, Grant, IssuedTokens, TokenRequest};
use tessera_core::principal::{Client, GrantType, User};
use tessera_core::secret::Secret;
use tessera_core::token::ClaimSet;
use tessera_core::{Error, ErrorKind};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Tapis Authenticator v3 API, at `/v3/oauth2`.
pub fn front() -> Front {
    use Field::{Bool, Int, Obj, OptStr, Str, Strs};
    let part = |fields: &[(&str, Field)]| object(fields);
    let token = object_with(&[
        ("access_token", part(&[("access_token", Str), ("expires_in", Int), ("expires_at", Str), ("jti", Str)])),
        (
            "refresh_token",
            one_of(part(&[("refresh_token", Str), ("expires_in", Int), ("expires_at", Str), ("jti", Str)]), null()),
        ),
    ]);
    let profile = || {
        object(&[
            ("username", Str),
            ("given_name", OptStr),
            ("last_name", OptStr),
            ("email", OptStr),
            ("create_time", Str),
            ("dn", OptStr),
            ("phone", OptStr),
            ("mobile_phone", OptStr),
            ("uid", OptStr),
        ])
    };
    let client = || {
        object(&[
            ("client_id", Str),
            ("client_key", OptStr),
            ("owner", OptStr),
            ("tenant_id", Str),
            ("callback_url", OptStr),
            ("create_time", Str),
            ("last_update_time", Str),
            ("display_name", Str),
            ("description", OptStr),
            ("active", Bool),
        ])
    };
    let config = || {
        object(&[
            ("allowable_grant_types", Strs),
            ("use_ldap", Bool),
            ("use_token_webapp", Bool),
            ("mfa_config", Obj),
            ("default_access_token_ttl", Int),
            ("default_refresh_token_ttl", Int),
            ("max_access_token_ttl", Int),
            ("max_refresh_token_ttl", Int),
            ("custom_idp_configuration", Obj),
            ("token_url", Str),
            ("impers_oauth_client_id", OptStr),
            ("impers_oauth_client_secret", OptStr),
            ("impersadmin_username", OptStr),
            ("impersadmin_password", OptStr),
        ])
    };
    let ok = |summary, status, result| doc(summary).also(status, "success", JSON, tapis_envelope(result));
    let body = |d: Doc, fields: &[&str]| d.body_as(JSON, strings(fields));
    let api = Api::default()
        .post(
            "/tokens",
            tokens_post,
            body(
                ok("Create tokens (every grant)", 201, token),
                &[
                    "username",
                    "password",
                    "client_id",
                    "client_key",
                    "grant_type",
                    "device_code",
                    "refresh_token",
                    "code",
                    "redirect_uri",
                    "code_verifier",
                ],
            ),
        )
        .post("/tokens/revoke", revoke_post, body(ok("Revoke a token", 200, text()), &["token"]))
        .post(
            "/device/code",
            device_code_post,
            body(
                ok(
                    "Start the device flow",
                    200,
                    object(&[
                        ("device_code", Str),
                        ("user_code", Str),
                        ("client_id", Str),
                        ("verification_uri", Str),
                        ("expires_in", Str),
                    ]),
                ),
                &["client_id", "client_key"],
            ),
        )
        .get(
            "/authorize",
            crate::pages::authorize::authorize_get,
            doc("Authorization endpoint (code + PKCE)").query(crate::oauth::AUTHORIZE_QUERY).public().for_people(),
        )
        .post(
            "/authorize",
            crate::pages::authorize::authorize_post,
            doc("Authorization: the sign-in, code and consent forms")
                .form(crate::oauth::AUTHORIZE_FORM)
                .public()
                .for_people(),
        )
        .post(
            "/v2/token",
            v2_token_post,
            body(
                ok(
                    "A Tapis v2 token for a v3 one",
                    200,
                    object(&[("access_token", Str), ("expires_in", Int), ("refresh_token", OptStr)]),
                ),
                &["access_token"],
            ),
        )
        .get("/userinfo", userinfo_get, ok("The caller's profile", 200, profile()))
        .get(
            "/profiles",
            profiles_list_get,
            ok("Profiles of the tenant", 200, list(profile())).query(&["limit", "offset"]),
        )
        .get("/profiles/{username}", profile_get, ok("A user's profile", 200, profile()))
        .post(
            "/clients",
            clients_create_post,
            body(
                ok("Register a client", 200, client()),
                &["client_id", "client_key", "callback_url", "display_name", "description"],
            ),
        )
        .get("/clients", clients_list_get, ok("The caller's clients", 200, list(client())).query(&["limit", "offset"]))
        .get("/clients/{client_id}", client_get, ok("A client", 200, client()))
        .put(
            "/clients/{client_id}",
            client_put,
            body(ok("Change a client", 200, client()), &["callback_url", "display_name"]),
        )
        .delete("/clients/{client_id}", client_delete, ok("Delete a client", 200, client()))
        .get("/admin/config", config_get, ok("The tenant's configuration", 200, config()))
        .put(
            "/admin/config",
            config_put,
            ok("Change the tenant's configuration", 200, config()).body_as(
                JSON,
                object(&[
                    ("allowable_grant_types?", Strs),
                    ("default_access_token_ttl?", Int),
                    ("default_refresh_token_ttl?", Int),
                ]),
            ),
        )
        .get(
            "/.well-known/oauth-authorization-server",
            metadata_get,
            ok(
                "OAuth 2 server metadata",
                200,
                object(&[
                    ("issuer", Str),
                    ("authorization_endpoint", OptStr),
                    ("token_endpoint", Str),
                    ("jwks_uri", Str),
                    ("registration_endpoint", Str),
                    ("grant_types_supported", Strs),
                ]),
            )
            .public(),
        )
        .get("/hello", hello_get, ok("Says hello", 200, text()).public())
        .get("/ready", ready_get, ok("Readiness", 200, text()).public())
        .fallback(|| async { TapisError(Error::not_found("no such endpoint")) })
        .method_not_allowed_fallback(|| async {
            let mut res = TapisError(Error::invalid_request("method not allowed here")).into_response();
            *res.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            res
        });
    let errors = (JSON, tapis_envelope(null()));
    Front {
        tag: "tapis",
        prefixes: &["/v3/oauth2"],
        api,
        security: &["basic", "tapisToken"],
        errors,
        error_schemas: vec![],
    }
}

// ----- the envelope and the answers -------------------------------------------------------

/// Every Tapis answer: `result` in the envelope (`status` is `success`, or `error` with a
/// null `result` on 4xx/5xx).
#[derive(Debug, Serialize)]
pub struct Envelope<'a, T> {
    pub result: T,
    pub status: &'static str,
    pub message: &'a str,
    pub version: &'static str,
    pub metadata: Metadata,
}

/// Always `{}`.
#[derive(Debug, Default, Serialize)]
pub struct Metadata {}

fn envelope<T: Serialize>(status: StatusCode, message: &str, result: T) -> Response {
    let body = Envelope { result, status: "success", message, version: VERSION, metadata: Metadata {} };
    (status, axum::Json(body)).into_response()
}

/// `TokenResponse`.
#[derive(Debug, Serialize)]
pub struct TokenResponse<'a> {
    pub access_token: AccessTokenPart<'a>,
    pub refresh_token: Option<RefreshTokenPart<'a>>,
}

#[derive(Debug, Serialize)]
pub struct AccessTokenPart<'a> {
    pub access_token: &'a str,
    pub expires_in: i64,
    pub expires_at: String,
    pub jti: &'a str,
}

#[derive(Debug, Serialize)]
pub struct RefreshTokenPart<'a> {
    pub refresh_token: &'a str,
    pub expires_in: i64,
    pub expires_at: String,
    pub jti: String,
}

/// `DeviceCodeResponse`: `expires_in` is an RFC 3339 time with offset (the crate's type).
#[derive(Debug, Serialize)]
pub struct DeviceCodeResponse<'a> {
    pub device_code: &'a str,
    pub user_code: &'a str,
    pub client_id: &'a str,
    pub verification_uri: String,
    pub expires_in: String,
}

/// `V2TokenResponse`.
#[derive(Debug, Serialize)]
pub struct V2TokenResponse<'a> {
    pub access_token: &'a str,
    pub expires_in: i64,
    pub refresh_token: Option<&'a str>,
}

/// `Profile`.
#[derive(Debug, Serialize)]
pub struct Profile<'a> {
    pub username: &'a str,
    pub given_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub create_time: String,
    pub dn: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub mobile_phone: Option<&'a str>,
    pub uid: Option<&'a str>,
}

/// `Client`; `client_key` only in the answer that creates it.
#[derive(Debug, Serialize)]
pub struct ClientAnswer<'a> {
    pub client_id: &'a str,
    pub client_key: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub tenant_id: &'a str,
    pub callback_url: Option<&'a str>,
    pub create_time: String,
    pub last_update_time: String,
    pub display_name: &'a str,
    pub description: Option<&'a str>,
    pub active: bool,
}

/// `TenantConfig` (lifetimes as i32, which the crate's model is).
#[derive(Debug, Serialize)]
pub struct TenantConfig {
    pub allowable_grant_types: Vec<&'static str>,
    pub use_ldap: bool,
    pub use_token_webapp: bool,
    pub mfa_config: Metadata,
    pub default_access_token_ttl: i64,
    pub default_refresh_token_ttl: i64,
    pub max_access_token_ttl: i64,
    pub max_refresh_token_ttl: i64,
    pub custom_idp_configuration: Metadata,
    pub token_url: String,
    pub impers_oauth_client_id: Option<String>,
    pub impers_oauth_client_secret: Option<String>,
    pub impersadmin_username: Option<String>,
    pub impersadmin_password: Option<String>,
}

/// `OAuth2Metadata`.
#[derive(Debug, Serialize)]
pub struct OAuth2Metadata<'a> {
    pub issuer: &'a str,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub registration_endpoint: String,
    pub grant_types_supported: &'static [&'static str],
}

pub struct TapisError(pub Error);

impl From<Error> for TapisError {
    fn from(e: Error) -> Self {
        TapisError(e)
    }
}

impl IntoResponse for TapisError {
    fn into_response(self) -> Response {
        let retry = crate::extract::retry_after(&self.0);
        let Error { kind, description, .. } = self.0;
        // Tapis answers a bad client or a conflict as a bad request (400), like the real service.
        let status = match kind {
            ErrorKind::InvalidClient | ErrorKind::Conflict => StatusCode::BAD_REQUEST,
            k => crate::status::status_of(k),
        };
        if kind == ErrorKind::Internal {
            tracing::error!(%description, "internal error");
        }
        let message = format!("{}: {description}", kind.code());
        let body = Envelope { result: (), status: "error", message: &message, version: VERSION, metadata: Metadata {} };
        let mut res = (status, axum::Json(body)).into_response();
        if let Some(v) = retry {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}

type TapisResult = Result<Response, TapisError>;

/// A request body; a body over the limit (413) or unreadable gets the Tapis envelope.
struct TapisBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for TapisBody {
    type Rejection = Response;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let body = crate::extract::read_body(req.into_body()).await;
        body.map(TapisBody).map_err(|unread| unread.render(|e| TapisError(e).into_response()))
    }
}

/// A JSON body (the crate always sends JSON); a form body is accepted too, as by the real
/// service.
fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T, Error> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.starts_with("application/x-www-form-urlencoded") {
        let mut map: HashMap<String, String> = HashMap::new();
        for (k, v) in form_urlencoded::parse(bytes) {
            if map.insert(k.clone().into_owned(), v.into_owned()).is_some() {
                return Err(Error::invalid_request(format!("parameter `{k}` is repeated")));
            }
        }
        return serde_json::to_value(map)
            .and_then(serde_json::from_value)
            .map_err(|e| Error::invalid_request(format!("invalid request body: {e}")));
    }
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| Error::invalid_request(format!("invalid JSON body: {e}")))
}

/// Tapis APIs take tokens of the tenant's default audience (Tapis tokens name none of their
/// own): never a token minted for another front (SFTPGo, ICA, DocSpace) or resource.
const ACCEPTS: &[Audience<'static>] = &[Audience::Issuer];

fn tapis_token(headers: &HeaderMap) -> Result<&str, Error> {
    headers
        .get("x-tapis-token")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::invalid_token("the X-Tapis-Token header is required"))
}

/// Who calls, by `X-Tapis-Token`: an active user of the tenant, or a client.
async fn caller(state: &AppState, tenant: &str, headers: &HeaderMap) -> Result<Caller, Error> {
    state.auth.bearer_caller(tenant, tapis_token(headers)?, ACCEPTS).await
}

#[derive(Deserialize, Default)]
struct Page {
    limit: Option<usize>,
    offset: Option<usize>,
}

impl Page {
    fn apply<T>(&self, items: Vec<T>) -> Vec<T> {
        items.into_iter().skip(self.offset.unwrap_or(0)).take(self.limit.unwrap_or(usize::MAX)).collect()
    }
}

// ----- tokens ------------------------------------------------------------------------------

/// The fields of Tapis' `NewToken` this server reads (unknown fields are ignored).
#[derive(Deserialize, Default)]
struct NewToken {
    username: Option<String>,
    password: Option<String>,
    client_id: Option<String>,
    client_key: Option<String>,
    grant_type: Option<String>,
    device_code: Option<String>,
    refresh_token: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
}

/// The calling client as Tapis sends it: `Authorization: Basic` (the real service's way), or
/// `client_id` with `client_key` in the body (the crate's `NewToken`), or a `client_id`
/// alone, which only a public client may send (the core decides).
fn tapis_client_auth(headers: &HeaderMap, id: Option<String>, key: Option<String>) -> Result<ClientAuth, Error> {
    let id = id.filter(|s| !s.is_empty());
    let key = key.filter(|s| !s.is_empty());
    Ok(match (basic_credentials(headers)?, id, key) {
        (Some((basic_id, _)), Some(body_id), _) if body_id != basic_id => {
            return Err(Error::invalid_request("client_id in the body differs from the authenticated client"));
        }
        (Some((id, secret)), _, _) => ClientAuth::Basic { client_id: id, secret },
        (None, Some(id), Some(key)) => ClientAuth::Post { client_id: id, secret: Secret::new(key) },
        (None, Some(id), None) => ClientAuth::None { client_id: id },
        (None, None, Some(_)) => return Err(Error::invalid_request("client_key given without client_id")),
        (None, None, None) => ClientAuth::Absent,
    })
}

fn need(v: Option<String>, name: &str) -> Result<String, Error> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| Error::invalid_request(format!("missing the required {name} parameter")))
}

fn token_result(t: &IssuedTokens) -> TokenResponse<'_> {
    let refresh = t.refresh_token.as_ref().map(|rt| {
        let ttl = t.refresh_expires_in.unwrap_or(0);
        // Refresh tokens are opaque: their id is derived from the stored hash, which names
        // the token without revealing it.
        let jti: String = tessera_core::secret::sha256_b64(rt.expose()).chars().take(22).collect();
        RefreshTokenPart { refresh_token: rt.expose(), expires_in: ttl, expires_at: rfc3339(t.issued_at + ttl), jti }
    });
    TokenResponse {
        access_token: AccessTokenPart {
            access_token: &t.access_token,
            expires_in: t.expires_in,
            expires_at: rfc3339(t.expires_at),
            jti: &t.jti,
        },
        refresh_token: refresh,
    }
}

async fn tokens_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    headers: HeaderMap,
    TapisBody(bytes): TapisBody,
) -> TapisResult {
    let nt: NewToken = body(&headers, &bytes)?;
    let grant_type = need(nt.grant_type, "grant_type")?;
    let auth = tapis_client_auth(&headers, nt.client_id, nt.client_key)?;
    let grant = match grant_type.as_str() {
        "password" => {
            let username = need(nt.username, "username")?;
            let password = Secret::new(need(nt.password, "password")?);
            if matches!(auth, ClientAuth::Absent) {
                let issued =
                    state.auth.password_without_client(&tenant, &username, password, ClaimSet::Tapis, origin).await?;
                crate::metrics_layer::tokens_issued("password").increment(1);
                return Ok(envelope(StatusCode::CREATED, "Token created successfully.", token_result(&issued)));
            }
            Grant::Password { username, password, otp: None }
        }
        "refresh_token" => Grant::RefreshToken { refresh_token: Secret::new(need(nt.refresh_token, "refresh_token")?) },
        "device_code" => Grant::DeviceCode { device_code: Secret::new(need(nt.device_code, "device_code")?) },
        "authorization_code" => Grant::AuthorizationCode {
            code: Secret::new(need(nt.code, "code")?),
            redirect_uri: Some(need(nt.redirect_uri, "redirect_uri")?),
            code_verifier: nt.code_verifier.filter(|v| !v.is_empty()).map(Secret::new),
        },
        other => return Err(Error::unsupported_grant_type(format!("invalid grant_type `{other}`")).into()),
    };
    let label = match &grant {
        Grant::Password { .. } => "password",
        Grant::RefreshToken { .. } => "refresh_token",
        Grant::AuthorizationCode { .. } => "authorization_code",
        _ => "device_code",
    };
    let mut req = TokenRequest::new(grant);
    req.claim_set = ClaimSet::Tapis;
    req.origin = origin;
    let issued = state.auth.token(&tenant, &auth, req).await?;
    crate::metrics_layer::tokens_issued(label).increment(1);
    Ok(envelope(StatusCode::CREATED, "Token created successfully.", token_result(&issued)))
}

#[derive(Deserialize)]
struct RevokeBody {
    token: Option<String>,
}

async fn revoke_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    TapisBody(bytes): TapisBody,
) -> TapisResult {
    let b: RevokeBody = body(&headers, &bytes)?;
    let token = need(b.token, "token")?;
    let message = match state.auth.revoke_by_possession(&tenant, &token).await? {
        Some(id) => format!("Token {id} has been revoked."),
        None => "Token has been revoked.".to_owned(),
    };
    Ok(envelope(StatusCode::OK, &message, ""))
}

/// The crate sends `client_id` only (a public client); a confidential client adds its key,
/// in `client_key` or as `Authorization: Basic`.
#[derive(Deserialize)]
struct DeviceCodeBody {
    client_id: Option<String>,
    client_key: Option<String>,
}

async fn device_code_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Origin(origin): Origin,
    headers: HeaderMap,
    TapisBody(bytes): TapisBody,
) -> TapisResult {
    let b: DeviceCodeBody = body(&headers, &bytes)?;
    let auth = match tapis_client_auth(&headers, b.client_id, b.client_key)? {
        ClientAuth::Absent => return Err(Error::invalid_request("missing the required client_id parameter").into()),
        auth => auth,
    };
    let d = state.auth.device_authorize(&tenant, &auth, None, ClaimSet::Tapis, origin).await?;
    let uri = verification_uri(&state, &tenant);
    let result = DeviceCodeResponse {
        device_code: d.device_code.expose(),
        user_code: &d.user_code,
        client_id: &d.client_id,
        verification_uri: uri,
        // The crate parses this as an RFC 3339 timestamp with offset (CONTRACTS.md 4).
        expires_in: rfc3339(d.expires_at),
    };
    Ok(envelope(StatusCode::OK, "Device code generated successfully.", result))
}

#[derive(Deserialize)]
struct V2Body {
    access_token: Option<String>,
}

async fn v2_token_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    TapisBody(bytes): TapisBody,
) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let b: V2Body = body(&headers, &bytes)?;
    let subject = need(b.access_token, "access_token")?;
    let issued = state.auth.exchange_for_legacy(&tenant, me.claims(), &subject).await?;
    let result =
        V2TokenResponse { access_token: &issued.access_token, expires_in: issued.expires_in, refresh_token: None };
    Ok(envelope(StatusCode::OK, "V2 token generated successfully.", result))
}

// ----- profiles ----------------------------------------------------------------------------

fn profile(u: &User) -> Profile<'_> {
    Profile {
        username: &u.username,
        given_name: u.profile.given_name.as_deref(),
        last_name: u.profile.last_name.as_deref(),
        email: u.profile.email.as_deref(),
        create_time: rfc3339(u.created_at),
        dn: None,
        phone: None,
        mobile_phone: None,
        uid: None,
    }
}

async fn userinfo_get(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    Ok(envelope(StatusCode::OK, "User profile retrieved successfully.", profile(me.actor().user()?)))
}

async fn profile_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(username): Path<String>,
    headers: HeaderMap,
) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let u = state.auth.get_user(&me.actor(), &tenant, &username).await?;
    Ok(envelope(StatusCode::OK, "User profile retrieved successfully.", profile(&u)))
}

async fn profiles_list_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    page: Result<Query<Page>, QueryRejection>,
    headers: HeaderMap,
) -> TapisResult {
    let page = crate::extract::query(page)?;
    let me = caller(&state, &tenant, &headers).await?;
    let users = page.apply(state.auth.list_users(&me.actor(), &tenant).await?);
    let list: Vec<Profile<'_>> = users.iter().map(profile).collect();
    Ok(envelope(StatusCode::OK, "Profiles retrieved successfully.", list))
}

// ----- clients -----------------------------------------------------------------------------

fn client_json<'a>(c: &'a Client, key: Option<&'a Secret>) -> ClientAnswer<'a> {
    ClientAnswer {
        client_id: &c.client_id,
        client_key: key.map(|k| k.expose()),
        owner: c.owner.as_deref(),
        tenant_id: &c.tenant,
        callback_url: c.callback_url.as_deref(),
        create_time: rfc3339(c.created_at),
        last_update_time: rfc3339(c.updated_at),
        display_name: &c.name,
        description: c.description.as_deref(),
        active: true,
    }
}

#[derive(Deserialize, Default)]
struct NewClientBody {
    client_id: Option<String>,
    client_key: Option<String>,
    callback_url: Option<String>,
    display_name: Option<String>,
    description: Option<String>,
}

async fn clients_create_post(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    TapisBody(bytes): TapisBody,
) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let b: NewClientBody = body(&headers, &bytes)?;
    let name = b.display_name.clone().or_else(|| b.client_id.clone()).unwrap_or_else(|| "Tapis client".to_owned());
    let mut spec = NewClient::new(
        &tenant,
        &name,
        vec![GrantType::Password, GrantType::RefreshToken, GrantType::DeviceCode, GrantType::AuthorizationCode],
    );
    spec.client_id = b.client_id.filter(|s| !s.is_empty());
    spec.secret = b.client_key.filter(|s| !s.is_empty()).map(Secret::new);
    spec.callback_url = b.callback_url.filter(|s| !s.is_empty());
    spec.description = b.description;
    // The core decides whether this caller may make (another) client, and owns it to them.
    let (client, key) = state.auth.create_client(&me.actor(), spec).await?;
    Ok(envelope(StatusCode::OK, "Client created successfully.", client_json(&client, key.as_ref())))
}

async fn clients_list_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    page: Result<Query<Page>, QueryRejection>,
    headers: HeaderMap,
) -> TapisResult {
    let page = crate::extract::query(page)?;
    let me = caller(&state, &tenant, &headers).await?;
    let mine = page.apply(state.auth.list_clients(&me.actor(), &tenant).await?);
    let list: Vec<ClientAnswer<'_>> = mine.iter().map(|c| client_json(c, None)).collect();
    Ok(envelope(StatusCode::OK, "Clients retrieved successfully.", list))
}

async fn client_get(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let c = state.auth.get_client(&me.actor(), &tenant, &client_id).await?;
    Ok(envelope(StatusCode::OK, "Client object retrieved successfully.", client_json(&c, None)))
}

#[derive(Deserialize, Default)]
struct UpdateClientBody {
    callback_url: Option<String>,
    display_name: Option<String>,
}

async fn client_put(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    TapisBody(bytes): TapisBody,
) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let b: UpdateClientBody = body(&headers, &bytes)?;
    let update = tessera_core::authority::ClientUpdate {
        name: b.display_name,
        callback_url: b.callback_url,
        ..Default::default()
    };
    let c = state.auth.update_client(&me.actor(), &tenant, &client_id, update).await?;
    Ok(envelope(StatusCode::OK, "Client updated successfully.", client_json(&c, None)))
}

async fn client_delete(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let c = state.auth.delete_client(&me.actor(), &tenant, &client_id).await?;
    // The crate parses `result` of a delete as a Client: answer the deleted object.
    Ok(envelope(StatusCode::OK, "Client deleted successfully.", client_json(&c, None)))
}

// ----- admin config ------------------------------------------------------------------------

fn tapis_grant_name(g: GrantType) -> &'static str {
    match g {
        GrantType::DeviceCode => "device_code",
        GrantType::TokenExchange => "token_exchange",
        other => other.as_str(),
    }
}

fn config_json(state: &AppState, ts: &tessera_core::authority::TenantState) -> TenantConfig {
    let grants: Vec<&str> = match &ts.tenant.allowed_grants {
        Some(list) => list.iter().map(|g| tapis_grant_name(*g)).collect(),
        None => GrantType::SUPPORTED.iter().map(|g| tapis_grant_name(*g)).collect(),
    };
    let clamp = |v: i64| v.min(i64::from(i32::MAX));
    TenantConfig {
        allowable_grant_types: grants,
        use_ldap: false,
        use_token_webapp: true,
        mfa_config: Metadata {},
        default_access_token_ttl: clamp(ts.access_ttl),
        default_refresh_token_ttl: clamp(ts.refresh_ttl),
        max_access_token_ttl: clamp(ts.access_ttl),
        max_refresh_token_ttl: clamp(ts.refresh_ttl),
        custom_idp_configuration: Metadata {},
        token_url: format!("{}/v3/oauth2/tokens", state.auth.settings().public_url.trim_end_matches('/')),
        impers_oauth_client_id: None,
        impers_oauth_client_secret: None,
        impersadmin_username: None,
        impersadmin_password: None,
    }
}

async fn config_get(State(state): State<AppState>, Tenant(tenant): Tenant, headers: HeaderMap) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let ts = state.auth.tenant_settings(&me.actor(), &tenant).await?;
    Ok(envelope(StatusCode::OK, "Tenant config retrieved successfully.", config_json(&state, &ts)))
}

#[derive(Deserialize, Default)]
struct NewTenantConfig {
    allowable_grant_types: Option<Vec<String>>,
    default_access_token_ttl: Option<i64>,
    default_refresh_token_ttl: Option<i64>,
}

async fn config_put(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    TapisBody(bytes): TapisBody,
) -> TapisResult {
    let me = caller(&state, &tenant, &headers).await?;
    let b: NewTenantConfig = body(&headers, &bytes)?;
    let allowed_grants = b
        .allowable_grant_types
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    n.parse::<GrantType>().map_err(|_| Error::invalid_request(format!("unknown grant type `{n}`")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let policy = TenantPolicy {
        access_ttl: b.default_access_token_ttl,
        refresh_ttl: b.default_refresh_token_ttl,
        allowed_grants,
        ..Default::default()
    };
    state.auth.update_tenant_policy(&me.actor(), &tenant, policy).await?;
    let ts = state.auth.tenant(&tenant)?;
    Ok(envelope(StatusCode::OK, "Tenant config updated successfully.", config_json(&state, &ts)))
}

// ----- metadata and health -----------------------------------------------------------------

async fn metadata_get(State(state): State<AppState>, Tenant(tenant): Tenant) -> TapisResult {
    let ts = state.auth.tenant(&tenant)?;
    let public = state.auth.settings().public_url.trim_end_matches('/').to_owned();
    let base = endpoint_base(&public, &tenant);
    let result = OAuth2Metadata {
        issuer: &ts.issuer,
        authorization_endpoint: Some(format!("{public}/v3/oauth2/authorize")),
        token_endpoint: format!("{public}/v3/oauth2/tokens"),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        registration_endpoint: format!("{public}/v3/oauth2/clients"),
        grant_types_supported: &["password", "refresh_token", "device_code", "authorization_code"],
    };
    Ok(envelope(StatusCode::OK, "OAuth2 server metadata retrieved successfully.", result))
}

async fn hello_get() -> Response {
    envelope(StatusCode::OK, "Hello from the Tapis Authenticator API (Tessera).", "hello")
}

async fn ready_get(State(state): State<AppState>) -> TapisResult {
    state.auth.ready().await?;
    Ok(envelope(StatusCode::OK, "Ready.", "ready"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[derive(Debug, serde::Deserialize)]
    struct Fields {
        a: String,
        b: Option<String>,
    }

    #[test]
    fn form_bodies_are_read_and_refuse_repeats() -> Result<(), Error> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        let f: Fields = body(&h, b"a=1&b=x+y%21")?;
        assert_eq!((f.a.as_str(), f.b.as_deref()), ("1", Some("x y!")));
        assert!(body::<Fields>(&h, b"a=1&a=2").is_err());
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let f: Fields = body(&h, br#"{"a":"j"}"#)?;
        assert_eq!((f.a.as_str(), f.b), ("j", None));
        Ok(())
    }
}
