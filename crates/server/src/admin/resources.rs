//! The admin API's resources: tenants, users, clients, API keys, signing keys, sessions.

use super::auth::{Admin, Body};
use super::problem::ApiError;
use super::views::{
    ApiKeyView, AuditView, BrowserSessionView, ClientView, Count, KeyView, PageView, SessionView, TenantView, UserView,
};
use crate::AppState;
use crate::openapi::{Api, doc};
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tessera_core::audit::{AuditFilter, EventKind, Outcome};
use tessera_core::authority::{ClientUpdate, NewClient, TenantPolicy, UserFilter, UserUpdate};
use tessera_core::keys::Alg;
use tessera_core::page::PageRequest;
use tessera_core::principal::{GrantType, Profile};
use tessera_core::secret::Secret;
use tessera_core::{Error, ErrorKind};
use utoipa::ToSchema;

pub type Answer<T> = Result<Json<T>, ApiError>;
pub type Created<T> = Result<(StatusCode, Json<T>), ApiError>;

/// The admin API, each route with its description.
pub fn api() -> Api {
    Api::default()
        .get(
            "/tenants",
            tenants_list_get,
            doc("List tenants").query(PAGING).answers_inline::<PageView<TenantView>, TenantView>(),
        )
        .post("/tenants", tenants_post, doc("Create a tenant").body::<TenantCreate>().answers::<TenantView>(201))
        .get("/tenants/{name}", tenant_get, doc("Read a tenant").answers::<TenantView>(200))
        .patch("/tenants/{name}", tenant_patch, doc("Change a tenant").body::<TenantPatch>().answers::<TenantView>(200))
        .delete("/tenants/{name}", tenant_delete, doc("Delete a tenant and everything in it"))
        .get(
            "/users",
            users_list_get,
            doc("List users").query(USER_QUERY).answers_inline::<PageView<UserView>, UserView>(),
        )
        .post("/users", users_post, doc("Create a user").body::<UserCreate>().answers::<UserView>(201))
        .get("/users/{username}", user_get, doc("Read a user").answers::<UserView>(200))
        .patch(
            "/users/{username}",
            user_patch,
            doc("Change a user's profile or roles").body::<UserPatch>().answers::<UserView>(200),
        )
        .post("/users/{username}/disable", user_disable_post, doc("Disable a user").answers::<UserView>(200))
        .post("/users/{username}/enable", user_enable_post, doc("Enable a user").answers::<UserView>(200))
        .post(
            "/users/{username}/password",
            user_password_post,
            doc("Reset a user's password (ends their sessions)").body::<PasswordReset>(),
        )
        .delete("/users/{username}/totp", user_totp_delete, doc("Remove a user's second factor"))
        .get(
            "/users/{username}/sessions",
            user_sessions_get,
            doc("A user's sessions (refresh families)").answers_inline::<Vec<SessionView>, SessionView>(),
        )
        .delete(
            "/users/{username}/sessions",
            user_sessions_delete,
            doc("End every session of a user").answers::<Count>(200),
        )
        .delete("/users/{username}/sessions/{id}", user_session_delete, doc("End one session of a user"))
        .get(
            "/users/{username}/browser-sessions",
            user_browser_sessions_get,
            doc("A user's browser sessions (signed in at the login page)")
                .answers_inline::<Vec<BrowserSessionView>, BrowserSessionView>(),
        )
        .delete(
            "/users/{username}/browser-sessions/{id}",
            user_browser_session_delete,
            doc("End one browser session of a user"),
        )
        .get(
            "/api-keys",
            api_keys_list_get,
            doc("List API keys").query(KEY_QUERY).answers_inline::<PageView<ApiKeyView>, ApiKeyView>(),
        )
        .delete("/api-keys/{id}", api_key_delete, doc("Revoke an API key"))
        .get(
            "/clients",
            clients_list_get,
            doc("List clients").query(PAGING).answers_inline::<PageView<ClientView>, ClientView>(),
        )
        .post("/clients", clients_post, doc("Register a client").body::<ClientCreate>().answers::<ClientView>(201))
        .get("/clients/{client_id}", client_get, doc("Read a client").answers::<ClientView>(200))
        .patch(
            "/clients/{client_id}",
            client_patch,
            doc("Change a client").body::<ClientPatch>().answers::<ClientView>(200),
        )
        .delete("/clients/{client_id}", client_delete, doc("Delete a client"))
        .post(
            "/clients/{client_id}/secret",
            client_secret_post,
            doc("Rotate a client's secret, with a grace period").body::<SecretRotation>().answers::<ClientView>(200),
        )
        .get("/keys", keys_list_get, doc("List signing keys").answers_inline::<Vec<KeyView>, KeyView>())
        .post("/keys", keys_post, doc("Add a signing key").answers::<KeyView>(201))
        .delete(
            "/keys/{kid}",
            key_delete,
            doc("Retire a key before its time (not the one that signs now)").answers::<KeyView>(200),
        )
        .get(
            "/audit",
            audit_get,
            doc("The audit trail, newest first").query(AUDIT_QUERY).answers_inline::<PageView<AuditView>, AuditView>(),
        )
}

const PAGING: &[&str] = &["cursor", "limit"];
const USER_QUERY: &[&str] = &["cursor", "limit", "role", "disabled", "prefix"];
const KEY_QUERY: &[&str] = &["cursor", "limit", "username"];
const AUDIT_QUERY: &[&str] = &["cursor", "limit", "actor", "subject", "event", "outcome", "since", "until"];

/// A query string, refused as a problem when it does not parse.
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e| ApiError::body(format!("invalid query: {}", e.body_text()), None))
    }
}

/// `cursor` and `limit` of a list.
#[derive(Debug, Deserialize, Default)]
pub struct Paging {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

impl Paging {
    pub fn request(&self) -> PageRequest {
        PageRequest { cursor: self.cursor.clone(), limit: self.limit }
    }
}

pub fn grants(names: &[String]) -> Result<Vec<GrantType>, Error> {
    names
        .iter()
        .map(|g| g.parse::<GrantType>().map_err(|e| Error::invalid_request(e.description).at("grants")))
        .collect()
}

fn alg(name: &str) -> Result<Alg, Error> {
    name.parse::<Alg>().map_err(|e| Error::invalid_request(e.description).at("alg"))
}

// ----- tenants ------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreate {
    pub name: String,
    pub alg: Option<String>,
    pub issuer: Option<String>,
    pub access_ttl: Option<i64>,
    pub refresh_ttl: Option<i64>,
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub alg: Option<String>,
    pub access_ttl: Option<i64>,
    pub refresh_ttl: Option<i64>,
    pub hosts: Option<Vec<String>>,
    pub allowed_grants: Option<Vec<String>>,
    pub max_user_clients: Option<i64>,
    /// Every user must sign in with a second factor (TOTP).
    pub totp_required: Option<bool>,
}

#[derive(Deserialize)]
pub struct TenantPath {
    pub name: String,
}

async fn tenants_list_get(State(s): State<AppState>, a: Admin, Q(p): Q<Paging>) -> Answer<PageView<TenantView>> {
    let page = s.auth.tenants_page(&a.who.actor(), &p.request()).await?;
    Ok(Json(PageView::of(page, |(t, issuer)| TenantView::new(&t, issuer))))
}

async fn tenants_post(State(s): State<AppState>, a: Admin, Body(b): Body<TenantCreate>) -> Created<TenantView> {
    let alg = b.alg.as_deref().map(alg).transpose()?.unwrap_or(Alg::EdDSA);
    let t = s.auth.create_tenant(&a.who.actor(), &b.name, alg, b.issuer, b.access_ttl, b.refresh_ttl, b.hosts).await?;
    let issuer = s.auth.tenant(&t.name)?.issuer.clone();
    Ok((StatusCode::CREATED, Json(TenantView::new(&t, issuer))))
}

async fn tenant_get(State(s): State<AppState>, a: Admin, Path(p): Path<TenantPath>) -> Answer<TenantView> {
    let ts = s.auth.tenant_settings(&a.who.actor(), &p.name).await?;
    Ok(Json(TenantView::new(&ts.tenant, ts.issuer.clone())))
}

async fn tenant_patch(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<TenantPath>,
    Body(b): Body<TenantPatch>,
) -> Answer<TenantView> {
    let policy = TenantPolicy {
        access_ttl: b.access_ttl,
        refresh_ttl: b.refresh_ttl,
        allowed_grants: b.allowed_grants.as_deref().map(grants).transpose()?,
        max_user_clients: b.max_user_clients,
        hosts: b.hosts,
        alg: b.alg.as_deref().map(alg).transpose()?,
        totp_required: b.totp_required,
    };
    let t = s.auth.update_tenant_policy(&a.who.actor(), &p.name, policy).await?;
    let issuer = s.auth.tenant(&t.name)?.issuer.clone();
    Ok(Json(TenantView::new(&t, issuer)))
}

async fn tenant_delete(State(s): State<AppState>, a: Admin, Path(p): Path<TenantPath>) -> Result<StatusCode, ApiError> {
    s.auth.delete_tenant(&a.who.actor(), &p.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- users --------------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct UserQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    pub role: Option<String>,
    pub disabled: Option<bool>,
    /// Usernames beginning with this.
    pub prefix: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Option<Vec<String>>,
    /// Require a second factor of this user (a password alone then only lets them set it up).
    pub totp_required: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordReset {
    pub password: String,
}

#[derive(Deserialize)]
pub struct UserPath {
    pub username: String,
}

#[derive(Deserialize)]
pub struct SessionPath {
    pub username: String,
    pub id: String,
}

async fn users_list_get(State(s): State<AppState>, a: Admin, Q(q): Q<UserQuery>) -> Answer<PageView<UserView>> {
    let filter = UserFilter { role: q.role, disabled: q.disabled, prefix: q.prefix };
    let req = PageRequest { cursor: q.cursor, limit: q.limit };
    let page = s.auth.users_page(&a.who.actor(), &a.tenant, &filter, &req).await?;
    Ok(Json(PageView::of(page, UserView::from)))
}

async fn users_post(State(s): State<AppState>, a: Admin, Body(b): Body<UserCreate>) -> Created<UserView> {
    let profile = Profile { email: b.email, given_name: b.given_name, last_name: b.last_name };
    let u =
        s.auth.create_user(&a.who.actor(), &a.tenant, &b.username, Secret::new(b.password), b.roles, profile).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(u))))
}

async fn user_get(State(s): State<AppState>, a: Admin, Path(p): Path<UserPath>) -> Answer<UserView> {
    Ok(Json(s.auth.get_user(&a.who.actor(), &a.tenant, &p.username).await?.into()))
}

async fn user_patch(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<UserPath>,
    Body(b): Body<UserPatch>,
) -> Answer<UserView> {
    let update = UserUpdate {
        email: b.email,
        given_name: b.given_name,
        last_name: b.last_name,
        roles: b.roles,
        totp_required: b.totp_required,
    };
    Ok(Json(s.auth.update_user(&a.who.actor(), &a.tenant, &p.username, update).await?.into()))
}

async fn set_disabled(s: AppState, a: Admin, username: &str, disabled: bool) -> Answer<UserView> {
    s.auth.set_user_disabled(&a.who.actor(), &a.tenant, username, disabled).await?;
    Ok(Json(s.auth.get_user(&a.who.actor(), &a.tenant, username).await?.into()))
}

async fn user_disable_post(State(s): State<AppState>, a: Admin, Path(p): Path<UserPath>) -> Answer<UserView> {
    set_disabled(s, a, &p.username, true).await
}

async fn user_enable_post(State(s): State<AppState>, a: Admin, Path(p): Path<UserPath>) -> Answer<UserView> {
    set_disabled(s, a, &p.username, false).await
}

async fn user_password_post(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<UserPath>,
    Body(b): Body<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    s.auth.reset_password(&a.who.actor(), &a.tenant, &p.username, Secret::new(b.password)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user_totp_delete(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<UserPath>,
) -> Result<StatusCode, ApiError> {
    s.auth.totp_disable(&a.who.actor(), &a.tenant, &p.username).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user_sessions_get(State(s): State<AppState>, a: Admin, Path(p): Path<UserPath>) -> Answer<Vec<SessionView>> {
    let list = s.auth.user_families(&a.who.actor(), &a.tenant, &p.username).await?;
    Ok(Json(list.into_iter().map(SessionView::from).collect()))
}

async fn user_sessions_delete(State(s): State<AppState>, a: Admin, Path(p): Path<UserPath>) -> Answer<Count> {
    let revoked = s.auth.revoke_user_families(&a.who.actor(), &a.tenant, &p.username).await?;
    Ok(Json(Count { revoked }))
}

async fn user_session_delete(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<SessionPath>,
) -> Result<StatusCode, ApiError> {
    s.auth.revoke_user_family(&a.who.actor(), &a.tenant, &p.username, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn user_browser_sessions_get(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<UserPath>,
) -> Answer<Vec<BrowserSessionView>> {
    let list = s.auth.user_browser_sessions(&a.who.actor(), &a.tenant, &p.username).await?;
    Ok(Json(list.into_iter().map(BrowserSessionView::from).collect()))
}

async fn user_browser_session_delete(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<SessionPath>,
) -> Result<StatusCode, ApiError> {
    s.auth.end_user_browser_session(&a.who.actor(), &a.tenant, &p.username, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- API keys -----------------------------------------------------------------------------

#[derive(Deserialize, Default)]
pub struct ApiKeyQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
    pub username: Option<String>,
}

#[derive(Deserialize)]
pub struct IdPath {
    pub id: String,
}

async fn api_keys_list_get(State(s): State<AppState>, a: Admin, Q(q): Q<ApiKeyQuery>) -> Answer<PageView<ApiKeyView>> {
    let keys = s.auth.list_api_keys(&a.who.actor(), &a.tenant, q.username.as_deref()).await?;
    let req = PageRequest { cursor: q.cursor, limit: q.limit };
    let page = tessera_core::page::page(keys, |k| k.id.as_str(), &req)?;
    Ok(Json(PageView::of(page, |k| ApiKeyView::new(k, None))))
}

async fn api_key_delete(State(s): State<AppState>, a: Admin, Path(p): Path<IdPath>) -> Result<StatusCode, ApiError> {
    s.auth.revoke_api_key(&a.who.actor(), &a.tenant, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- clients ------------------------------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    pub name: String,
    pub grants: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub public: bool,
    pub callback_url: Option<String>,
    pub description: Option<String>,
    /// Exact redirect URIs of the authorization code flow.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the person back.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Skips the consent page.
    #[serde(default)]
    pub first_party: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    pub name: Option<String>,
    pub grants: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub callback_url: Option<String>,
    pub description: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub first_party: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRotation {
    /// How long the replaced secret keeps working, in seconds (default 0: not at all).
    #[serde(default)]
    pub grace_seconds: i64,
}

#[derive(Deserialize)]
pub struct ClientPath {
    pub client_id: String,
}

async fn clients_list_get(State(s): State<AppState>, a: Admin, Q(p): Q<Paging>) -> Answer<PageView<ClientView>> {
    let page = s.auth.clients_page(&a.who.actor(), &a.tenant, &p.request()).await?;
    Ok(Json(PageView::of(page, |c| ClientView::new(c, None))))
}

async fn clients_post(State(s): State<AppState>, a: Admin, Body(b): Body<ClientCreate>) -> Created<ClientView> {
    let mut spec = NewClient::new(&a.tenant, &b.name, grants(&b.grants)?);
    spec.scopes = b.scopes;
    spec.public = b.public;
    spec.callback_url = b.callback_url;
    spec.description = b.description;
    spec.redirect_uris = b.redirect_uris;
    spec.post_logout_redirect_uris = b.post_logout_redirect_uris;
    spec.first_party = b.first_party;
    let (c, secret) = s.auth.create_client(&a.who.actor(), spec).await?;
    let secret = secret.map(|s| s.expose().to_owned());
    Ok((StatusCode::CREATED, Json(ClientView::new(c, secret))))
}

async fn client_get(State(s): State<AppState>, a: Admin, Path(p): Path<ClientPath>) -> Answer<ClientView> {
    Ok(Json(ClientView::new(s.auth.get_client(&a.who.actor(), &a.tenant, &p.client_id).await?, None)))
}

async fn client_patch(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<ClientPath>,
    Body(b): Body<ClientPatch>,
) -> Answer<ClientView> {
    let update = ClientUpdate {
        name: b.name,
        callback_url: b.callback_url,
        description: b.description,
        grants: b.grants.as_deref().map(grants).transpose()?,
        scopes: b.scopes,
        redirect_uris: b.redirect_uris,
        post_logout_redirect_uris: b.post_logout_redirect_uris,
        first_party: b.first_party,
    };
    let c = s.auth.update_client(&a.who.actor(), &a.tenant, &p.client_id, update).await?;
    Ok(Json(ClientView::new(c, None)))
}

async fn client_delete(State(s): State<AppState>, a: Admin, Path(p): Path<ClientPath>) -> Result<StatusCode, ApiError> {
    s.auth.delete_client(&a.who.actor(), &a.tenant, &p.client_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn client_secret_post(
    State(s): State<AppState>,
    a: Admin,
    Path(p): Path<ClientPath>,
    Body(b): Body<SecretRotation>,
) -> Answer<ClientView> {
    let (c, secret) = s.auth.rotate_client_secret(&a.who.actor(), &a.tenant, &p.client_id, b.grace_seconds).await?;
    Ok(Json(ClientView::new(c, Some(secret.expose().to_owned()))))
}

// ----- signing keys -------------------------------------------------------------------------

async fn keys_list_get(State(s): State<AppState>, a: Admin) -> Answer<Vec<KeyView>> {
    Ok(Json(s.auth.list_keys(&a.who.actor(), &a.tenant).await?.into_iter().map(KeyView::from).collect()))
}

async fn keys_post(State(s): State<AppState>, a: Admin) -> Created<KeyView> {
    Ok((StatusCode::CREATED, Json(s.auth.rotate_key(&a.who.actor(), &a.tenant).await?.into())))
}

// ----- audit trail --------------------------------------------------------------------------

/// The filters of `GET /audit`: every one given must match.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub actor: Option<String>,
    pub subject: Option<String>,
    pub event: Option<String>,
    pub outcome: Option<String>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// Before (Unix seconds).
    pub until: Option<i64>,
}

/// Events on a page when the caller does not say.
const AUDIT_PAGE: i64 = 50;

async fn audit_get(State(s): State<AppState>, a: Admin, Q(q): Q<AuditQuery>) -> Answer<PageView<AuditView>> {
    let filter = AuditFilter {
        actor: q.actor,
        subject: q.subject,
        event: q.event.as_deref().map(EventKind::parse).transpose().map_err(|e| e.at("event"))?,
        outcome: q.outcome.as_deref().map(Outcome::parse).transpose().map_err(|e| e.at("outcome"))?,
        since: q.since,
        until: q.until,
    };
    let limit = q.limit.unwrap_or(AUDIT_PAGE);
    let page = s.auth.audit_events(&a.who.actor(), &a.tenant, &filter, q.cursor.as_deref(), limit).await?;
    Ok(Json(PageView { items: page.events.into_iter().map(AuditView::from).collect(), next_cursor: page.next }))
}

#[derive(Deserialize)]
pub struct KidPath {
    pub kid: String,
}

async fn key_delete(State(s): State<AppState>, a: Admin, Path(p): Path<KidPath>) -> Answer<KeyView> {
    Ok(Json(s.auth.retire_key(&a.who.actor(), &a.tenant, &p.kid).await?.into()))
}

/// An unknown route under the API's prefix, answered as a problem.
pub async fn not_found() -> ApiError {
    Error::new(ErrorKind::NotFound, "no such resource").into()
}
