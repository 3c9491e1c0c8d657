//! Self-service (`/me`): a user's own profile, password, second factor, API keys and sessions,
//! with any valid token (or API key) of the user's tenant.

use super::auth::{Body, Me};
use super::problem::ApiError;
use super::resources::{Answer, Created, IdPath};
use super::views::{ApiKeyView, BrowserSessionView, Count, RecoveryCodes, SessionView, TotpEnrolmentView, UserView};
use crate::AppState;
use crate::openapi::{Api, doc};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use tessera_core::authority::UserUpdate;
use tessera_core::principal::User;
use tessera_core::secret::Secret;
use utoipa::ToSchema;

/// Self-service, each route with its description.
pub fn api() -> Api {
    Api::default()
        .get("/", me_get, doc("Your profile").answers::<UserView>(200))
        .patch("/", me_patch, doc("Change your profile").body::<ProfilePatch>().answers::<UserView>(200))
        .post("/password", password_post, doc("Change your password (ends your sessions)").body::<PasswordChange>())
        .post("/totp", totp_post, doc("Start TOTP enrolment").answers::<TotpEnrolmentView>(201))
        .delete("/totp", totp_delete, doc("Remove your second factor"))
        .post(
            "/totp/confirm",
            totp_confirm_post,
            doc("Confirm TOTP with a first code").body::<TotpCode>().answers::<RecoveryCodes>(200),
        )
        .post("/recovery-codes", recovery_codes_post, doc("New recovery codes").answers::<RecoveryCodes>(200))
        .get("/api-keys", api_keys_get, doc("Your API keys").answers_inline::<Vec<ApiKeyView>, ApiKeyView>())
        .post(
            "/api-keys",
            api_keys_post,
            doc("Create an API key (shown once)").body::<ApiKeyCreate>().answers::<ApiKeyView>(201),
        )
        .delete("/api-keys/{id}", api_key_delete, doc("Revoke one of your API keys"))
        .get("/sessions", sessions_get, doc("Your sessions").answers_inline::<Vec<SessionView>, SessionView>())
        .delete("/sessions", sessions_delete, doc("End all your sessions").answers::<Count>(200))
        .delete("/sessions/{id}", session_delete, doc("End one of your sessions"))
        .get(
            "/browser-sessions",
            browser_sessions_get,
            doc("Your browser sessions").answers_inline::<Vec<BrowserSessionView>, BrowserSessionView>(),
        )
        .delete("/browser-sessions/{id}", browser_session_delete, doc("End one of your browser sessions"))
}

impl Me {
    /// The user asking (a client's machine token is refused by the core).
    fn user(&self) -> Result<&User, ApiError> {
        Ok(self.who.actor().user()?)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub old_password: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    pub code: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyCreate {
    #[serde(default)]
    pub name: String,
    /// Lifetime in seconds; none: no expiry.
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

async fn me_get(State(s): State<AppState>, me: Me) -> Answer<UserView> {
    let name = me.user()?.username.clone();
    Ok(Json(s.auth.get_user(&me.who.actor(), &me.tenant, &name).await?.into()))
}

async fn me_patch(State(s): State<AppState>, me: Me, Body(b): Body<ProfilePatch>) -> Answer<UserView> {
    let name = me.user()?.username.clone();
    let update = UserUpdate {
        email: b.email,
        given_name: b.given_name,
        last_name: b.last_name,
        roles: None,
        totp_required: None,
    };
    Ok(Json(s.auth.update_user(&me.who.actor(), &me.tenant, &name, update).await?.into()))
}

async fn password_post(
    State(s): State<AppState>,
    me: Me,
    Body(b): Body<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    let (old, new) = (Secret::new(b.old_password), Secret::new(b.new_password));
    s.auth.change_password(&me.who.actor(), &me.tenant, old, new).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn totp_post(State(s): State<AppState>, me: Me) -> Created<TotpEnrolmentView> {
    let name = me.user()?.username.clone();
    let e = s.auth.totp_enroll(&me.who.actor(), &me.tenant, &name).await?;
    Ok((StatusCode::CREATED, Json(TotpEnrolmentView { otpauth_uri: e.otpauth_uri, secret: e.secret_base32 })))
}

async fn totp_confirm_post(State(s): State<AppState>, me: Me, Body(b): Body<TotpCode>) -> Answer<RecoveryCodes> {
    let name = me.user()?.username.clone();
    let recovery_codes = s.auth.totp_confirm(&me.who.actor(), &me.tenant, &name, &b.code).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

async fn totp_delete(State(s): State<AppState>, me: Me) -> Result<StatusCode, ApiError> {
    let name = me.user()?.username.clone();
    s.auth.totp_disable(&me.who.actor(), &me.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn recovery_codes_post(State(s): State<AppState>, me: Me) -> Answer<RecoveryCodes> {
    let name = me.user()?.username.clone();
    let recovery_codes = s.auth.regenerate_recovery_codes(&me.who.actor(), &me.tenant, &name).await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

async fn api_keys_get(State(s): State<AppState>, me: Me) -> Answer<Vec<ApiKeyView>> {
    let name = me.user()?.username.clone();
    let keys = s.auth.list_api_keys(&me.who.actor(), &me.tenant, Some(&name)).await?;
    Ok(Json(keys.into_iter().map(|k| ApiKeyView::new(k, None)).collect()))
}

async fn api_keys_post(State(s): State<AppState>, me: Me, Body(b): Body<ApiKeyCreate>) -> Created<ApiKeyView> {
    let name = me.user()?.username.clone();
    let (k, key) = s.auth.create_api_key(&me.who.actor(), &me.tenant, &name, &b.name, b.expires_in, b.scopes).await?;
    Ok((StatusCode::CREATED, Json(ApiKeyView::new(k, Some(key.expose().to_owned())))))
}

async fn api_key_delete(State(s): State<AppState>, me: Me, Path(p): Path<IdPath>) -> Result<StatusCode, ApiError> {
    let name = me.user()?.username.clone();
    // Only the user's own keys: another user's is as unknown as a missing one.
    let own = s.auth.list_api_keys(&me.who.actor(), &me.tenant, Some(&name)).await?;
    if !own.iter().any(|k| k.id == p.id && k.revoked_at.is_none()) {
        return Err(tessera_core::Error::not_found(format!("no live API key `{}`", p.id)).into());
    }
    s.auth.revoke_api_key(&me.who.actor(), &me.tenant, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn sessions_get(State(s): State<AppState>, me: Me) -> Answer<Vec<SessionView>> {
    let name = me.user()?.username.clone();
    let list = s.auth.user_families(&me.who.actor(), &me.tenant, &name).await?;
    Ok(Json(list.into_iter().map(SessionView::from).collect()))
}

async fn sessions_delete(State(s): State<AppState>, me: Me) -> Answer<Count> {
    let name = me.user()?.username.clone();
    let revoked = s.auth.revoke_user_families(&me.who.actor(), &me.tenant, &name).await?;
    Ok(Json(Count { revoked }))
}

async fn session_delete(State(s): State<AppState>, me: Me, Path(p): Path<IdPath>) -> Result<StatusCode, ApiError> {
    let name = me.user()?.username.clone();
    s.auth.revoke_user_family(&me.who.actor(), &me.tenant, &name, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn browser_sessions_get(State(s): State<AppState>, me: Me) -> Answer<Vec<BrowserSessionView>> {
    let name = me.user()?.username.clone();
    let list = s.auth.user_browser_sessions(&me.who.actor(), &me.tenant, &name).await?;
    Ok(Json(list.into_iter().map(BrowserSessionView::from).collect()))
}

async fn browser_session_delete(
    State(s): State<AppState>,
    me: Me,
    Path(p): Path<IdPath>,
) -> Result<StatusCode, ApiError> {
    let name = me.user()?.username.clone();
    s.auth.end_user_browser_session(&me.who.actor(), &me.tenant, &name, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
