//! Rows to records, once for both backends: every mapper reads columns through [`get`],
//! which any sqlx row whose database decodes the column types ([`Cols`]) provides.

use crate::error::{DbResult, corrupt};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tessera_core::audit::{ActorKind, AuditEvent, AuditRecord, EventKind, Outcome};
use tessera_core::keys::{Alg, KeyRecord};
use tessera_core::principal::{ApiKey, Client, GrantType, Profile, TotpState, User};
use tessera_core::store::{
    BrowserSession, Change, CodeRecord, DeviceRecord, DeviceStatus, FamilyInfo, LegacyRecord, RefreshRecord,
    Revocation, StoreResult, split_words,
};
use tessera_core::tenant::Tenant;
use tessera_core::token::ClaimSet;
use tessera_core::{RedirectUri, Username};

/// A row whose columns can be read as the types the schema uses. SQLite's INTEGER 0/1
/// columns decode as `bool` too, so one mapper serves both backends.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, col: &str) -> StoreResult<Option<bool>>;
    fn bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>>;
}

impl<R> Cols for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> StoreResult<Option<String>> {
        self.try_get(col).db()
    }
    fn int(&self, col: &str) -> StoreResult<Option<i64>> {
        self.try_get(col).db()
    }
    fn flag(&self, col: &str) -> StoreResult<Option<bool>> {
        self.try_get(col).db()
    }
    fn bytes(&self, col: &str) -> StoreResult<Option<Vec<u8>>> {
        self.try_get(col).db()
    }
}

/// A column type: read as nullable, then required (a NULL where the schema allows none is
/// an undecodable row, `Corrupt`, on both backends).
pub(crate) trait Col: Sized {
    fn read(r: &impl Cols, col: &str) -> StoreResult<Option<Self>>;
}

impl Col for String {
    fn read(r: &impl Cols, col: &str) -> StoreResult<Option<Self>> {
        r.text(col)
    }
}
impl Col for i64 {
    fn read(r: &impl Cols, col: &str) -> StoreResult<Option<Self>> {
        r.int(col)
    }
}
impl Col for bool {
    fn read(r: &impl Cols, col: &str) -> StoreResult<Option<Self>> {
        r.flag(col)
    }
}
impl Col for Vec<u8> {
    fn read(r: &impl Cols, col: &str) -> StoreResult<Option<Self>> {
        r.bytes(col)
    }
}

/// A value read from a row: `T` for a NOT NULL column, `Option<T>` for a nullable one.
pub(crate) trait Value: Sized {
    fn from_row(r: &impl Cols, col: &str) -> StoreResult<Self>;
}

impl<T: Col> Value for T {
    fn from_row(r: &impl Cols, col: &str) -> StoreResult<Self> {
        T::read(r, col)?.ok_or_else(|| corrupt(&format!("NULL in column {col}")))
    }
}

impl<T: Col> Value for Option<T> {
    fn from_row(r: &impl Cols, col: &str) -> StoreResult<Self> {
        T::read(r, col)
    }
}

pub(crate) fn get<T: Value>(r: &impl Cols, col: &str) -> StoreResult<T> {
    T::from_row(r, col)
}

pub(crate) fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|_| corrupt("list column"))
}

fn parse_grants(s: &str) -> StoreResult<Vec<GrantType>> {
    parse_list(s)?.iter().map(|g| g.parse::<GrantType>().map_err(|_| corrupt("grant"))).collect()
}

pub(crate) fn grants_json(g: &[GrantType]) -> String {
    json_list(&g.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>())
}

/// A stored name, checked again as it is read (a name that breaks the rules is corrupt data).
fn name<N: TryFrom<String>>(r: &impl Cols, col: &str) -> StoreResult<N> {
    N::try_from(get::<String>(r, col)?).map_err(|_| corrupt("name"))
}

/// A stored optional name, checked again as it is read.
fn opt_name<N: TryFrom<String>>(r: &impl Cols, col: &str) -> StoreResult<Option<N>> {
    get::<Option<String>>(r, col)?.map(|s| N::try_from(s).map_err(|_| corrupt("name"))).transpose()
}

fn claim_set(r: &impl Cols) -> StoreResult<ClaimSet> {
    ClaimSet::parse(&get::<String>(r, "claim_set")?).ok_or_else(|| corrupt("claim set"))
}

pub(crate) fn tenant(r: &impl Cols) -> StoreResult<Tenant> {
    Ok(Tenant {
        name: name(r, "name")?,
        alg: get::<String>(r, "alg")?.parse().map_err(|_| corrupt("tenant alg"))?,
        issuer: get(r, "issuer")?,
        access_ttl: get(r, "access_ttl")?,
        refresh_ttl: get(r, "refresh_ttl")?,
        hosts: parse_list(&get::<String>(r, "hosts")?)?,
        allowed_grants: get::<Option<String>>(r, "allowed_grants")?.map(|s| parse_grants(&s)).transpose()?,
        created_at: get(r, "created_at")?,
        max_user_clients: get(r, "max_user_clients")?,
        longest_access_ttl: get(r, "longest_access_ttl")?,
        totp_required: get(r, "totp_required")?,
    })
}

pub(crate) fn key(r: &impl Cols) -> StoreResult<KeyRecord> {
    Ok(KeyRecord {
        kid: get(r, "kid")?,
        tenant: get(r, "tenant")?,
        alg: get::<String>(r, "alg")?.parse::<Alg>().map_err(|_| corrupt("key alg"))?,
        private_sealed: get(r, "private_sealed")?,
        public_jwk: get(r, "public_jwk")?,
        created_at: get(r, "created_at")?,
        activates_at: get(r, "activates_at")?,
    })
}

pub(crate) fn user(r: &impl Cols) -> StoreResult<User> {
    Ok(User {
        tenant: name(r, "tenant")?,
        username: name(r, "username")?,
        password_hash: get(r, "password_hash")?,
        roles: parse_list(&get::<String>(r, "roles")?)?,
        disabled: get(r, "disabled")?,
        created_at: get(r, "created_at")?,
        profile: Profile {
            email: get(r, "email")?,
            given_name: get(r, "given_name")?,
            last_name: get(r, "last_name")?,
        },
        totp: TotpState {
            sealed_secret: get(r, "totp_secret")?,
            enabled: get(r, "totp_enabled")?,
            last_step: get(r, "totp_last_step")?,
            required: get(r, "totp_required")?,
        },
    })
}

pub(crate) fn api_key(r: &impl Cols) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: get(r, "id")?,
        tenant: name(r, "tenant")?,
        username: name(r, "username")?,
        name: get(r, "name")?,
        scopes: parse_list(&get::<String>(r, "scopes")?)?,
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        revoked_at: get(r, "revoked_at")?,
        last_used_at: get(r, "last_used_at")?,
    })
}

pub(crate) fn client(r: &impl Cols) -> StoreResult<Client> {
    let created_at: i64 = get(r, "created_at")?;
    Ok(Client {
        tenant: name(r, "tenant")?,
        client_id: name(r, "client_id")?,
        name: get(r, "name")?,
        secret_hash: get(r, "secret_hash")?,
        grants: parse_grants(&get::<String>(r, "grants")?)?,
        scopes: parse_list(&get::<String>(r, "scopes")?)?,
        owner: get::<Option<String>>(r, "owner")?.map(Username::try_from).transpose().map_err(|_| corrupt("name"))?,
        callback_url: get::<Option<String>>(r, "callback_url")?
            .map(RedirectUri::try_from)
            .transpose()
            .map_err(|_| corrupt("callback URL"))?,
        redirect_uris: uri_list(r, "redirect_uris")?,
        post_logout_redirect_uris: uri_list(r, "post_logout_redirect_uris")?,
        first_party: get(r, "first_party")?,
        description: get(r, "description")?,
        created_at,
        updated_at: get::<Option<i64>>(r, "updated_at")?.unwrap_or(created_at),
        previous_secret: match (get(r, "previous_secret_hash")?, get(r, "previous_secret_until")?) {
            (Some(h), Some(until)) => Some((h, until)),
            _ => None,
        },
    })
}

pub(crate) fn family(r: &impl Cols) -> StoreResult<FamilyInfo> {
    Ok(FamilyInfo {
        family_id: get(r, "family_id")?,
        client_id: get(r, "client_id")?,
        created_at: get(r, "created_at")?,
        auth_time: get(r, "auth_time")?,
        expires_at: get(r, "expires_at")?,
        last_used_at: get(r, "last_used_at")?,
    })
}

fn uri_list(r: &impl Cols, col: &str) -> StoreResult<Vec<RedirectUri>> {
    parse_list(&get::<String>(r, col)?)?
        .into_iter()
        .map(|u| RedirectUri::try_from(u).map_err(|_| corrupt("redirect URI")))
        .collect()
}

pub(crate) fn code(r: &impl Cols) -> StoreResult<CodeRecord> {
    Ok(CodeRecord {
        code_hash: get(r, "code_hash")?,
        tenant: get(r, "tenant")?,
        client_id: get(r, "client_id")?,
        redirect_uri: get(r, "redirect_uri")?,
        code_challenge: get(r, "code_challenge")?,
        nonce: get(r, "nonce")?,
        scope: get(r, "scope")?,
        username: get(r, "username")?,
        auth_time: get(r, "auth_time")?,
        amr: split_words(get(r, "amr")?),
        sid: get(r, "sid")?,
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        used_at: get(r, "used_at")?,
        family_id: get(r, "family_id")?,
    })
}

pub(crate) fn browser_session(r: &impl Cols) -> StoreResult<BrowserSession> {
    Ok(BrowserSession {
        token_hash: get(r, "token_hash")?,
        sid: get(r, "sid")?,
        tenant: get(r, "tenant")?,
        username: get(r, "username")?,
        auth_time: get(r, "auth_time")?,
        amr: split_words(get(r, "amr")?),
        created_at: get(r, "created_at")?,
        last_seen_at: get(r, "last_seen_at")?,
        expires_at: get(r, "expires_at")?,
        revoked_at: get(r, "revoked_at")?,
    })
}

pub(crate) fn refresh(r: &impl Cols) -> StoreResult<RefreshRecord> {
    Ok(RefreshRecord {
        token_hash: get(r, "token_hash")?,
        family_id: get(r, "family_id")?,
        tenant: name(r, "tenant")?,
        client_id: name(r, "client_id")?,
        subject: get(r, "subject")?,
        username: opt_name(r, "username")?,
        scope: get(r, "scope")?,
        audience: get(r, "audience")?,
        issued_at: get(r, "issued_at")?,
        expires_at: get(r, "expires_at")?,
        used_at: get(r, "used_at")?,
        family_revoked: get::<Option<i64>>(r, "revoked_at")?.is_some(),
        access_jti: get(r, "access_jti")?,
        access_exp: get(r, "access_exp")?,
        claim_set: claim_set(r)?,
        refresh_count: get(r, "refresh_count")?,
        grant_type: GrantType::from_short_name(&get::<String>(r, "grant_type")?)
            .ok_or_else(|| corrupt("grant type"))?,
        auth_time: get(r, "auth_time")?,
        amr: split_words(get(r, "amr")?),
        user_barred: get(r, "user_barred")?,
    })
}

pub(crate) fn device(r: &impl Cols) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        device_code_hash: get(r, "device_code_hash")?,
        user_code: get(r, "user_code")?,
        tenant: name(r, "tenant")?,
        client_id: name(r, "client_id")?,
        scope: get(r, "scope")?,
        claim_set: claim_set(r)?,
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        interval: get(r, "interval_secs")?,
        last_poll_at: get(r, "last_poll_at")?,
        status: DeviceStatus::parse(&get::<String>(r, "status")?).ok_or_else(|| corrupt("device status"))?,
        username: opt_name(r, "username")?,
    })
}

pub(crate) fn legacy(r: &impl Cols) -> StoreResult<LegacyRecord> {
    Ok(LegacyRecord {
        token_hash: get(r, "token_hash")?,
        jti: get(r, "jti")?,
        tenant: name(r, "tenant")?,
        subject: get(r, "subject")?,
        username: opt_name(r, "username")?,
        client_id: opt_name(r, "client_id")?,
        scope: get(r, "scope")?,
        issued_at: get(r, "issued_at")?,
        expires_at: get(r, "expires_at")?,
        chain: split_words(get(r, "chain")?),
    })
}

/// From a row with `tenant`, `jti` and `expires_at`.
pub(crate) fn revocation(r: &impl Cols) -> StoreResult<Revocation> {
    Ok(Revocation { tenant: name(r, "tenant")?, jti: get(r, "jti")?, expires_at: get(r, "expires_at")? })
}

/// From a row of the change feed (`kind`, `tenant`, `subject`).
pub(crate) fn change(r: &impl Cols) -> StoreResult<Change> {
    let tenant = name(r, "tenant")?;
    Ok(match get::<String>(r, "kind")?.as_str() {
        "tenant" => Change::Tenant { tenant },
        "key" => Change::Key { tenant },
        "client" => Change::Client { tenant, client_id: name(r, "subject")? },
        "user" => Change::User { tenant, username: name(r, "subject")? },
        _ => return Err(corrupt("change kind")),
    })
}

/// From a row of `audit_events`.
pub(crate) fn audit(r: &impl Cols) -> StoreResult<AuditRecord> {
    let event = EventKind::parse(&get::<String>(r, "event")?).map_err(|_| corrupt("audit event kind"))?;
    let outcome = Outcome::parse(&get::<String>(r, "outcome")?).map_err(|_| corrupt("audit outcome"))?;
    let actor = ActorKind::parse(&get::<String>(r, "actor_kind")?).ok_or_else(|| corrupt("audit actor kind"))?;
    Ok(AuditRecord {
        id: get(r, "id")?,
        event: AuditEvent {
            at: get(r, "at")?,
            tenant: get(r, "tenant")?,
            event,
            actor,
            actor_name: get(r, "actor_name")?,
            subject: get(r, "subject")?,
            client_id: get(r, "client_id")?,
            address: get(r, "address")?,
            outcome,
            request_id: get(r, "request_id")?,
            detail: get(r, "detail")?,
        },
    })
}
