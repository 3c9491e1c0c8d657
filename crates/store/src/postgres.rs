//! The PostgreSQL backend: one database shared by every node of a deployment. The rules that
//! SQLite gets from its single writer are made explicit here: a refresh family is locked
//! (`FOR UPDATE`) while one of its tokens is rotated or the family is revoked, and writers of
//! the revocation list and the change feed serialise on a transaction advisory lock so that
//! sequence numbers become visible in commit order (readers follow them with a cursor and
//! must never see 7 before 6). Those transactions also `NOTIFY` the other nodes.

use crate::{ATTEMPT_CLEAR_SQL, ATTEMPT_COUNT_SQL, ATTEMPT_RELEASE_SQL, attempt_release_plan};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Postgres, Row};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tessera_core::keys::{Alg, KeyRecord};
use tessera_core::principal::{ApiKey, Client, GrantType, Profile, TotpState, User};
use tessera_core::store::{
    Change, DevicePoll, DeviceRecord, DeviceStatus, LegacyRecord, NewRefresh, RefreshRecord, Revocation, Rotation,
    Store, StoreError, StoreResult, join_words, split_words,
};
use tessera_core::tenant::Tenant;
use tessera_core::throttle::Counter;
use tessera_core::token::ClaimSet;
use tokio::sync::Notify;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The channel every write to the revocation list or the change feed notifies; the payload
/// is the writer's schema, so deployments sharing one database (tests do) ignore each other.
pub const CHANNEL: &str = "tessera_changes";

/// Advisory lock classes (the other key is a hash of the schema name).
const LOCK_REVOCATIONS: i32 = 1;
const LOCK_CHANGES: i32 = 2;

/// Connection settings beyond the URL.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// Connections per node.
    pub pool_size: u32,
    /// Bound on each statement (server side) and on waiting for a connection (client side):
    /// with the database gone, an operation fails with `Unavailable` after about this long.
    pub timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings { pool_size: 16, timeout: Duration::from_secs(5) }
    }
}

#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    shared: Arc<Shared>,
}

struct Shared {
    connect: PgConnectOptions,
    timeout: Duration,
    /// The longest any one store operation may take, whatever the network does.
    deadline: Duration,
    schema: String,
    listener: OnceLock<Listener>,
}

struct Listener {
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => return StoreError::Conflict("record".into()),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            return StoreError::NotFound("referenced record".into());
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) | sqlx::Error::ColumnNotFound(_) => {
            return StoreError::Corrupt(e.to_string());
        }
        _ => {}
    }
    // Connection refused or lost, pool timeout, statement timeout (57014), serialization
    // failure or deadlock (40001, 40P01), server shutting down (57P01): all "try again".
    tracing::warn!(error = %e, "postgres error");
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn get<'r, T>(r: &'r PgRow, col: &str) -> StoreResult<T>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    r.try_get(col).map_err(db_err)
}

/// Is this a PostgreSQL connection URL?
pub fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl PgStore {
    /// Connect (TLS per the URL's `sslmode`, schema per its `options=-csearch_path=...`) and
    /// bring the schema up to date. Several nodes may do this at once: sqlx's migrator takes
    /// an advisory lock.
    pub async fn open(url: &str, settings: &PgSettings) -> StoreResult<Self> {
        let mut connect: PgConnectOptions =
            url.parse().map_err(|e| StoreError::Unavailable(format!("invalid database URL: {e}")))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("tessera");
        }
        let ms = settings.timeout.as_millis().max(1);
        // NOTICEs ("relation already exists, skipping" from the migrator) are not news.
        connect = connect.options([("statement_timeout", ms.to_string().as_str()), ("client_min_messages", "warning")]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size.max(1))
            .min_connections(0)
            .acquire_timeout(settings.timeout)
            // sqlx pings every connection on release already; pinging on acquire too would
            // add a round trip to every query. Only a connection that sat idle (and so may
            // have been cut by a database restart) is checked before it is handed out.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > Duration::from_secs(1) {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(db_err)?;
        // Migrations may rewrite big tables: no statement timeout for them, on a connection
        // that is closed afterwards rather than returned to the pool.
        let mut conn = pool.acquire().await.map_err(db_err)?.detach();
        sqlx::query("SET statement_timeout = 0").execute(&mut conn).await.map_err(db_err)?;
        MIGRATOR.run(&mut conn).await.map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        let _ = sqlx::Connection::close(conn).await;
        let schema: String =
            sqlx::query_scalar("SELECT current_schema()::text").fetch_one(&pool).await.map_err(db_err)?;
        Ok(PgStore {
            pool,
            shared: Arc::new(Shared {
                connect,
                timeout: settings.timeout,
                // A connection wait plus a statement, and some slack.
                deadline: settings.timeout * 2 + Duration::from_secs(1),
                schema,
                listener: OnceLock::new(),
            }),
        })
    }

    /// The schema this store works in (`public` unless the URL sets a search path).
    pub fn schema(&self) -> &str {
        &self.shared.schema
    }

    /// Wake-ups for the sync loop: the returned `Notify` is signalled (`notify_one`, so a
    /// signal given while nobody waits is kept) whenever any node commits a revocation or a
    /// change, and after the listening connection is (re)established, since notifications
    /// sent while it was down are lost. One task per store listens on its own connection and
    /// reconnects by itself; it stops when the last clone of this store is dropped. Call
    /// within a Tokio runtime. Every call returns the same `Notify`: it has one consumer.
    pub fn listen(&self) -> Arc<Notify> {
        self.shared
            .listener
            .get_or_init(|| {
                let wake = Arc::new(Notify::new());
                let task = tokio::spawn(listen_loop(
                    self.shared.connect.clone(),
                    self.shared.timeout,
                    self.shared.schema.clone(),
                    wake.clone(),
                ));
                Listener { wake, task }
            })
            .wake
            .clone()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Run one store operation under the client-side deadline. The server-side statement
    /// timeout and the pool's acquire timeout cover a database that is down or slow; this
    /// covers one that vanished mid-query without closing the connection (a network
    /// partition), where a read would otherwise wait for TCP to give up, for many minutes.
    async fn bounded<T>(&self, op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        match tokio::time::timeout(self.shared.deadline, op).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(deadline = ?self.shared.deadline, "postgres operation timed out");
                Err(StoreError::Unavailable("database operation timed out".into()))
            }
        }
    }
}

async fn listen_loop(connect: PgConnectOptions, timeout: Duration, schema: String, wake: Arc<Notify>) {
    // Its own one-connection pool: the listening connection is never handed to a query.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .acquire_timeout(timeout)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(connect);
    let mut failures = 0u32;
    loop {
        let err = listen_session(&pool, &schema, &wake, &mut failures).await;
        failures += 1;
        if failures == 1 {
            tracing::warn!(error = %err, "lost the postgres notification channel; reconnecting (polling continues)");
        } else {
            tracing::debug!(error = %err, failures, "postgres notification channel still down");
        }
        let backoff = Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
        tokio::time::sleep(backoff).await;
    }
}

async fn listen_session(pool: &PgPool, schema: &str, wake: &Notify, failures: &mut u32) -> sqlx::Error {
    let mut listener = match PgListener::connect_with(pool).await {
        Ok(l) => l,
        Err(e) => return e,
    };
    listener.ignore_pool_close_event(true);
    if let Err(e) = listener.listen(CHANNEL).await {
        return e;
    }
    if *failures > 0 {
        tracing::info!("postgres notification channel restored");
    }
    *failures = 0;
    // Whatever was committed while nobody listened is picked up by a sync now.
    wake.notify_one();
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) if n.payload() == schema => wake.notify_one(),
            Ok(Some(_)) => {}
            // The connection dropped and was re-established: notifications may be lost.
            Ok(None) => wake.notify_one(),
            Err(e) => return e,
        }
    }
}

/// End a transaction that changed nothing, releasing its row locks now rather than when
/// the pool gets round to it. The answer stands even if the rollback fails.
async fn release<T>(tx: sqlx::Transaction<'_, Postgres>, answer: T) -> StoreResult<T> {
    let _ = tx.rollback().await;
    Ok(answer)
}

/// Take the feed's lock (held until commit, so sequence numbers are visible in commit order)
/// and queue the notification (delivered at commit, dropped on rollback).
async fn feed_lock(conn: &mut PgConnection, class: i32) -> StoreResult<()> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext(current_schema()::text), $1), pg_notify($2, current_schema()::text)",
    )
    .bind(class)
    .bind(CHANNEL)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

async fn record_change(
    conn: &mut PgConnection,
    kind: &'static str,
    tenant: &str,
    subject: Option<&str>,
) -> StoreResult<()> {
    feed_lock(conn, LOCK_CHANGES).await?;
    sqlx::query("INSERT INTO changes (kind, tenant, subject) VALUES ($1, $2, $3)")
        .bind(kind)
        .bind(tenant)
        .bind(subject)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn parse_list(s: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(s).map_err(|_| corrupt("list column"))
}

fn parse_grants(s: &str) -> StoreResult<Vec<GrantType>> {
    parse_list(s)?.iter().map(|g| g.parse::<GrantType>().map_err(|_| corrupt("grant"))).collect()
}

fn grants_json(g: &[GrantType]) -> String {
    json_list(&g.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>())
}

fn tenant_from_row(r: &PgRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        name: get(r, "name")?,
        alg: get::<String>(r, "alg")?.parse().map_err(|_| corrupt("tenant alg"))?,
        issuer: get(r, "issuer")?,
        access_ttl: get(r, "access_ttl")?,
        refresh_ttl: get(r, "refresh_ttl")?,
        hosts: parse_list(&get::<String>(r, "hosts")?)?,
        allowed_grants: get::<Option<String>>(r, "allowed_grants")?.map(|s| parse_grants(&s)).transpose()?,
        created_at: get(r, "created_at")?,
        max_user_clients: get(r, "max_user_clients")?,
        longest_access_ttl: get(r, "longest_access_ttl")?,
    })
}

fn claim_set(r: &PgRow) -> StoreResult<ClaimSet> {
    ClaimSet::parse(&get::<String>(r, "claim_set")?).ok_or_else(|| corrupt("claim set"))
}

fn key_from_row(r: &PgRow) -> StoreResult<KeyRecord> {
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

fn user_from_row(r: &PgRow) -> StoreResult<User> {
    Ok(User {
        tenant: get(r, "tenant")?,
        username: get(r, "username")?,
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
        },
    })
}

fn api_key_from_row(r: &PgRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: get(r, "id")?,
        tenant: get(r, "tenant")?,
        username: get(r, "username")?,
        name: get(r, "name")?,
        scopes: parse_list(&get::<String>(r, "scopes")?)?,
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        revoked_at: get(r, "revoked_at")?,
        last_used_at: get(r, "last_used_at")?,
    })
}

fn client_from_row(r: &PgRow) -> StoreResult<Client> {
    let created_at: i64 = get(r, "created_at")?;
    Ok(Client {
        tenant: get(r, "tenant")?,
        client_id: get(r, "client_id")?,
        name: get(r, "name")?,
        secret_hash: get(r, "secret_hash")?,
        grants: parse_grants(&get::<String>(r, "grants")?)?,
        scopes: parse_list(&get::<String>(r, "scopes")?)?,
        owner: get(r, "owner")?,
        callback_url: get(r, "callback_url")?,
        description: get(r, "description")?,
        created_at,
        updated_at: get::<Option<i64>>(r, "updated_at")?.unwrap_or(created_at),
    })
}

fn refresh_from_row(r: &PgRow) -> StoreResult<RefreshRecord> {
    Ok(RefreshRecord {
        token_hash: get(r, "token_hash")?,
        family_id: get(r, "family_id")?,
        tenant: get(r, "tenant")?,
        client_id: get(r, "client_id")?,
        subject: get(r, "subject")?,
        username: get(r, "username")?,
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
        grant_type: get(r, "grant_type")?,
        auth_time: get(r, "auth_time")?,
        amr: split_words(get(r, "amr")?),
    })
}

fn device_from_row(r: &PgRow) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        device_code_hash: get(r, "device_code_hash")?,
        user_code: get(r, "user_code")?,
        tenant: get(r, "tenant")?,
        client_id: get(r, "client_id")?,
        scope: get(r, "scope")?,
        claim_set: claim_set(r)?,
        created_at: get(r, "created_at")?,
        expires_at: get(r, "expires_at")?,
        interval: get(r, "interval_secs")?,
        last_poll_at: get(r, "last_poll_at")?,
        status: DeviceStatus::parse(&get::<String>(r, "status")?).ok_or_else(|| corrupt("device status"))?,
        username: get(r, "username")?,
    })
}

fn legacy_from_row(r: &PgRow) -> StoreResult<LegacyRecord> {
    Ok(LegacyRecord {
        token_hash: get(r, "token_hash")?,
        jti: get(r, "jti")?,
        tenant: get(r, "tenant")?,
        subject: get(r, "subject")?,
        username: get(r, "username")?,
        client_id: get(r, "client_id")?,
        scope: get(r, "scope")?,
        issued_at: get(r, "issued_at")?,
        expires_at: get(r, "expires_at")?,
        chain: split_words(get(r, "chain")?),
    })
}

fn revocation_from_row(r: &PgRow) -> StoreResult<Revocation> {
    Ok(Revocation { tenant: get(r, "tenant")?, jti: get(r, "jti")?, expires_at: get(r, "expires_at")? })
}

macro_rules! refresh_select {
    () => {
        "SELECT t.token_hash, t.family_id, t.tenant, t.client_id, t.subject, t.username, t.scope, t.audience, \
         t.issued_at, t.expires_at, t.used_at, t.access_jti, t.access_exp, t.claim_set, t.refresh_count, \
         t.grant_type, f.revoked_at, f.auth_time, f.amr \
         FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id WHERE t.token_hash = $1"
    };
}

/// Revoke the families (their rows must be locked or about to be, by this transaction) and
/// every live access token issued from them; returns those tokens.
async fn revoke_families(conn: &mut PgConnection, families: &[String], now: i64) -> StoreResult<Vec<Revocation>> {
    if families.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("UPDATE refresh_families SET revoked_at = $1 WHERE family_id = ANY($2) AND revoked_at IS NULL")
        .bind(now)
        .bind(families)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    let rows = sqlx::query(
        "SELECT tenant, access_jti AS jti, access_exp AS expires_at FROM refresh_tokens \
         WHERE family_id = ANY($1) AND access_exp > $2",
    )
    .bind(families)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(db_err)?;
    let out = rows.iter().map(revocation_from_row).collect::<StoreResult<Vec<_>>>()?;
    if !out.is_empty() {
        feed_lock(conn, LOCK_REVOCATIONS).await?;
        sqlx::query(
            "INSERT INTO revocations (tenant, jti, expires_at) \
             SELECT tenant, access_jti, access_exp FROM refresh_tokens WHERE family_id = ANY($1) AND access_exp > $2 \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(families)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    }
    Ok(out)
}

async fn insert_key(conn: &mut PgConnection, k: &KeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, tenant, alg, private_sealed, public_jwk, created_at, activates_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&k.kid)
    .bind(&k.tenant)
    .bind(k.alg.as_str())
    .bind(&k.private_sealed)
    .bind(&k.public_jwk)
    .bind(k.created_at)
    .bind(k.activates_at)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Insert the successor of `parent` (same family, user, scope, claims; one more rotation).
async fn insert_successor(conn: &mut PgConnection, parent: &str, next: &NewRefresh) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (token_hash, family_id, tenant, client_id, subject, username, scope, audience, \
         issued_at, expires_at, used_at, access_jti, access_exp, claim_set, refresh_count, grant_type) \
         SELECT $1, family_id, tenant, client_id, subject, username, scope, audience, $2, $3, NULL, $4, $5, \
         claim_set, refresh_count + 1, grant_type FROM refresh_tokens WHERE token_hash = $6",
    )
    .bind(&next.token_hash)
    .bind(next.issued_at)
    .bind(next.expires_at)
    .bind(&next.access_jti)
    .bind(next.access_exp)
    .bind(parent)
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        self.bounded(async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn tenant_insert(&self, t: &Tenant, first_key: &KeyRecord) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO tenants (name, alg, issuer, access_ttl, refresh_ttl, hosts, allowed_grants, created_at, \
                 max_user_clients, longest_access_ttl) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&t.name)
            .bind(t.alg.as_str())
            .bind(&t.issuer)
            .bind(t.access_ttl)
            .bind(t.refresh_ttl)
            .bind(json_list(&t.hosts))
            .bind(t.allowed_grants.as_deref().map(grants_json))
            .bind(t.created_at)
            .bind(t.max_user_clients)
            .bind(t.longest_access_ttl)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            insert_key(&mut tx, first_key).await?;
            record_change(&mut tx, "tenant", &t.name, None).await?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn tenant_get(&self, name: &str) -> StoreResult<Option<Tenant>> {
        self.bounded(async {
            let row = sqlx::query("SELECT * FROM tenants WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(tenant_from_row).transpose()
        })
        .await
    }

    async fn tenant_list(&self) -> StoreResult<Vec<Tenant>> {
        self.bounded(async {
            let rows =
                sqlx::query("SELECT * FROM tenants ORDER BY name").fetch_all(&self.pool).await.map_err(db_err)?;
            rows.iter().map(tenant_from_row).collect()
        })
        .await
    }

    async fn tenant_update(&self, t: &Tenant) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let n = sqlx::query(
                "UPDATE tenants SET issuer = $1, access_ttl = $2, refresh_ttl = $3, hosts = $4, allowed_grants = $5, \
                 max_user_clients = $6, longest_access_ttl = $7 WHERE name = $8",
            )
            .bind(&t.issuer)
            .bind(t.access_ttl)
            .bind(t.refresh_ttl)
            .bind(json_list(&t.hosts))
            .bind(t.allowed_grants.as_deref().map(grants_json))
            .bind(t.max_user_clients)
            .bind(t.longest_access_ttl)
            .bind(&t.name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound(format!("tenant {}", t.name)));
            }
            record_change(&mut tx, "tenant", &t.name, None).await?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn key_insert(&self, key: &KeyRecord) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            insert_key(&mut tx, key).await?;
            record_change(&mut tx, "key", &key.tenant, Some(&key.kid)).await?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn key_list(&self, tenant: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
        self.bounded(async {
            let rows = match tenant {
                Some(t) => {
                    sqlx::query("SELECT * FROM signing_keys WHERE tenant = $1 ORDER BY activates_at, created_at")
                        .bind(t)
                        .fetch_all(&self.pool)
                        .await
                }
                None => {
                    sqlx::query("SELECT * FROM signing_keys ORDER BY tenant, activates_at").fetch_all(&self.pool).await
                }
            }
            .map_err(db_err)?;
            rows.iter().map(key_from_row).collect()
        })
        .await
    }

    async fn user_insert(&self, u: &User) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO users (tenant, username, password_hash, roles, disabled, created_at, email, given_name, \
                 last_name) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&u.tenant)
            .bind(&u.username)
            .bind(&u.password_hash)
            .bind(json_list(&u.roles))
            .bind(u.disabled)
            .bind(u.created_at)
            .bind(&u.profile.email)
            .bind(&u.profile.given_name)
            .bind(&u.profile.last_name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            record_change(&mut tx, "user", &u.tenant, Some(&u.username)).await?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn user_get(&self, tenant: &str, username: &str) -> StoreResult<Option<User>> {
        self.bounded(async {
            let row = sqlx::query("SELECT * FROM users WHERE tenant = $1 AND username = $2")
                .bind(tenant)
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(user_from_row).transpose()
        })
        .await
    }

    async fn user_list(&self, tenant: &str) -> StoreResult<Vec<User>> {
        self.bounded(async {
            let rows = sqlx::query("SELECT * FROM users WHERE tenant = $1 ORDER BY username")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(user_from_row).collect()
        })
        .await
    }

    async fn user_totp_set(
        &self,
        tenant: &str,
        username: &str,
        sealed: Option<&[u8]>,
        enabled: bool,
    ) -> StoreResult<bool> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let n = sqlx::query(
                "UPDATE users SET totp_secret = $1, totp_enabled = $2, totp_last_step = NULL \
                 WHERE tenant = $3 AND username = $4",
            )
            .bind(sealed)
            .bind(enabled)
            .bind(tenant)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if n > 0 {
                record_change(&mut tx, "user", tenant, Some(username)).await?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn user_totp_accept_step(&self, tenant: &str, username: &str, step: i64) -> StoreResult<bool> {
        self.bounded(async {
            // One conditional statement: of two nodes accepting the same code, one updates the row.
            let n = sqlx::query(
                "UPDATE users SET totp_last_step = $1 \
                 WHERE tenant = $2 AND username = $3 AND (totp_last_step IS NULL OR totp_last_step < $1)",
            )
            .bind(step)
            .bind(tenant)
            .bind(username)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn recovery_codes_set(&self, tenant: &str, username: &str, hashes: &[String]) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query("DELETE FROM recovery_codes WHERE tenant = $1 AND username = $2")
                .bind(tenant)
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO recovery_codes (tenant, username, code_hash) SELECT $1, $2, h FROM UNNEST($3::text[]) AS h",
            )
            .bind(tenant)
            .bind(username)
            .bind(hashes)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
            })
        .await
    }

    async fn recovery_code_use(&self, tenant: &str, username: &str, hash: &str, now: i64) -> StoreResult<bool> {
        self.bounded(async {
            let n = sqlx::query(
                "UPDATE recovery_codes SET used_at = $1 \
                 WHERE tenant = $2 AND username = $3 AND code_hash = $4 AND used_at IS NULL",
            )
            .bind(now)
            .bind(tenant)
            .bind(username)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn api_key_insert(&self, k: &ApiKey, key_hash: &str) -> StoreResult<()> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO api_keys (key_hash, id, tenant, username, name, scopes, created_at, expires_at, revoked_at, \
                 last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(key_hash)
            .bind(&k.id)
            .bind(&k.tenant)
            .bind(&k.username)
            .bind(&k.name)
            .bind(json_list(&k.scopes))
            .bind(k.created_at)
            .bind(k.expires_at)
            .bind(k.revoked_at)
            .bind(k.last_used_at)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
            })
        .await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.bounded(async {
            let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = $1")
                .bind(key_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(api_key_from_row).transpose()
        })
        .await
    }

    async fn api_key_list(&self, tenant: &str, username: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        self.bounded(async {
            let rows = match username {
                Some(u) => {
                    sqlx::query("SELECT * FROM api_keys WHERE tenant = $1 AND username = $2 ORDER BY created_at, id")
                        .bind(tenant)
                        .bind(u)
                        .fetch_all(&self.pool)
                        .await
                }
                None => {
                    sqlx::query("SELECT * FROM api_keys WHERE tenant = $1 ORDER BY username, created_at, id")
                        .bind(tenant)
                        .fetch_all(&self.pool)
                        .await
                }
            }
            .map_err(db_err)?;
            rows.iter().map(api_key_from_row).collect()
        })
        .await
    }

    async fn api_key_revoke(&self, tenant: &str, id: &str, now: i64) -> StoreResult<bool> {
        self.bounded(async {
            let n =
                sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE tenant = $2 AND id = $3 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(tenant)
                    .bind(id)
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?
                    .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn api_key_touch(&self, id: &str, now: i64) -> StoreResult<()> {
        self.bounded(async {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn user_set_disabled(&self, tenant: &str, username: &str, disabled: bool) -> StoreResult<bool> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let n = sqlx::query("UPDATE users SET disabled = $1 WHERE tenant = $2 AND username = $3")
                .bind(disabled)
                .bind(tenant)
                .bind(username)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if n > 0 {
                record_change(&mut tx, "user", tenant, Some(username)).await?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn client_insert(&self, c: &Client) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO clients (tenant, client_id, name, secret_hash, grants, scopes, owner, created_at, \
                 callback_url, description, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&c.tenant)
            .bind(&c.client_id)
            .bind(&c.name)
            .bind(&c.secret_hash)
            .bind(grants_json(&c.grants))
            .bind(json_list(&c.scopes))
            .bind(&c.owner)
            .bind(c.created_at)
            .bind(&c.callback_url)
            .bind(&c.description)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            record_change(&mut tx, "client", &c.tenant, Some(&c.client_id)).await?;
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn client_get(&self, tenant: &str, client_id: &str) -> StoreResult<Option<Client>> {
        self.bounded(async {
            let row = sqlx::query("SELECT * FROM clients WHERE tenant = $1 AND client_id = $2")
                .bind(tenant)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(client_from_row).transpose()
        })
        .await
    }

    async fn client_list(&self, tenant: &str) -> StoreResult<Vec<Client>> {
        self.bounded(async {
            let rows = sqlx::query("SELECT * FROM clients WHERE tenant = $1 ORDER BY created_at, client_id")
                .bind(tenant)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(client_from_row).collect()
        })
        .await
    }

    async fn client_update(&self, c: &Client) -> StoreResult<bool> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let n = sqlx::query(
                "UPDATE clients SET name = $1, callback_url = $2, description = $3, updated_at = $4 \
                 WHERE tenant = $5 AND client_id = $6",
            )
            .bind(&c.name)
            .bind(&c.callback_url)
            .bind(&c.description)
            .bind(c.updated_at)
            .bind(&c.tenant)
            .bind(&c.client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
            if n > 0 {
                record_change(&mut tx, "client", &c.tenant, Some(&c.client_id)).await?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn client_delete(&self, tenant: &str, client_id: &str, now: i64) -> StoreResult<bool> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let n = sqlx::query("DELETE FROM clients WHERE tenant = $1 AND client_id = $2")
                .bind(tenant)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            if n > 0 {
                // The client's sessions end with it. Lock its live families in one statement
                // (before the revocation list's lock, the order every writer follows).
                let families: Vec<String> = sqlx::query_scalar(
                    "SELECT family_id FROM refresh_families WHERE tenant = $1 AND client_id = $2 AND revoked_at IS NULL \
                     ORDER BY family_id FOR UPDATE",
                )
                .bind(tenant)
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
                revoke_families(&mut tx, &families, now).await?;
                record_change(&mut tx, "client", tenant, Some(client_id)).await?;
            }
            tx.commit().await.map_err(db_err)?;
            Ok(n > 0)
            })
        .await
    }

    async fn refresh_insert(&self, r: &RefreshRecord) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query(
                "INSERT INTO refresh_families (family_id, tenant, client_id, created_at, auth_time, amr) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.family_id)
            .bind(&r.tenant)
            .bind(&r.client_id)
            .bind(r.issued_at)
            .bind(r.auth_time)
            .bind(join_words(&r.amr))
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            sqlx::query(
                "INSERT INTO refresh_tokens (token_hash, family_id, tenant, client_id, subject, username, scope, audience, \
                 issued_at, expires_at, used_at, access_jti, access_exp, claim_set, refresh_count, grant_type) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13, $14, $15)",
            )
            .bind(&r.token_hash)
            .bind(&r.family_id)
            .bind(&r.tenant)
            .bind(&r.client_id)
            .bind(&r.subject)
            .bind(&r.username)
            .bind(&r.scope)
            .bind(&r.audience)
            .bind(r.issued_at)
            .bind(r.expires_at)
            .bind(&r.access_jti)
            .bind(r.access_exp)
            .bind(r.claim_set.as_str())
            .bind(r.refresh_count)
            .bind(&r.grant_type)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)
            })
        .await
    }

    async fn refresh_get(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>> {
        self.bounded(async {
            let row =
                sqlx::query(refresh_select!()).bind(token_hash).fetch_optional(&self.pool).await.map_err(db_err)?;
            row.as_ref().map(refresh_from_row).transpose()
        })
        .await
    }

    async fn refresh_rotate(
        &self,
        token_hash: &str,
        client_id: &str,
        now: i64,
        grace_secs: i64,
        next: &NewRefresh,
    ) -> StoreResult<Rotation> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            // Every rotation and revocation of a family holds the family's row lock, so a token
            // cannot be rotated while its family is being killed (which would leave the new access
            // token off the revocation list). After waiting for the lock, PostgreSQL re-reads the
            // family row (`revoked_at` is current) but not the token row: `used_at` is decided by
            // the conditional UPDATE below, not by this read.
            let row = sqlx::query(concat!(refresh_select!(), " FOR UPDATE OF f"))
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(cur) = row.as_ref().map(refresh_from_row).transpose()? else {
                return release(tx, Rotation::Invalid).await;
            };
            if cur.client_id != client_id || cur.family_revoked || cur.expires_at <= now {
                return release(tx, Rotation::Invalid).await;
            }
            let won = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(token_hash)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected()
                == 1;
            let outcome = if won {
                Rotation::Rotated
            } else {
                let used: Option<i64> = sqlx::query_scalar("SELECT used_at FROM refresh_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?
                    .flatten();
                match used {
                    Some(used) if grace_secs > 0 && now - used <= grace_secs => Rotation::WithinGrace,
                    Some(_) => {
                        let revoked = revoke_families(&mut tx, std::slice::from_ref(&cur.family_id), now).await?;
                        tx.commit().await.map_err(db_err)?;
                        return Ok(Rotation::Reused { revoked });
                    }
                    // Purged meanwhile.
                    None => return release(tx, Rotation::Invalid).await,
                }
            };
            insert_successor(&mut tx, token_hash, next).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(outcome)
        })
        .await
    }

    async fn refresh_revoke_family(&self, family_id: &str, now: i64) -> StoreResult<Vec<Revocation>> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            sqlx::query("SELECT 1 FROM refresh_families WHERE family_id = $1 FOR UPDATE")
                .bind(family_id)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            let out = revoke_families(&mut tx, &[family_id.to_owned()], now).await?;
            tx.commit().await.map_err(db_err)?;
            Ok(out)
        })
        .await
    }

    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            feed_lock(&mut tx, LOCK_REVOCATIONS).await?;
            sqlx::query(
                "INSERT INTO revocations (tenant, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING",
            )
            .bind(&r.tenant)
            .bind(&r.jti)
            .bind(r.expires_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            // Acknowledged only once committed (synchronous_commit, the server's default).
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn revocations_since(&self, after: i64) -> StoreResult<Vec<(i64, Revocation)>> {
        self.bounded(async {
            let rows = sqlx::query("SELECT seq, tenant, jti, expires_at FROM revocations WHERE seq > $1 ORDER BY seq")
                .bind(after)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            rows.iter().map(|r| Ok((get(r, "seq")?, revocation_from_row(r)?))).collect()
        })
        .await
    }

    async fn attempt_reserve(&self, counters: &[Counter], now: i64, window: i64) -> StoreResult<Option<i64>> {
        // Each counted row stays locked until the transaction ends, so concurrent reservations
        // of one key (at any node) take turns and each sees the others' counts. Rows are
        // locked in key order, the same in every transaction: no deadlock.
        let mut sorted: Vec<&Counter> = counters.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let mut wait = None;
            for c in sorted {
                let (count, start): (i64, i64) = sqlx::query_as(ATTEMPT_COUNT_SQL)
                    .bind(&c.key)
                    .bind(now)
                    .bind(now - window)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if count > c.cap {
                    wait = wait.max(Some((start + window - now).max(1)));
                }
            }
            match wait {
                // Past a cap: nothing is counted.
                Some(_) => release(tx, wait).await,
                None => tx.commit().await.map(|()| None).map_err(db_err),
            }
        })
        .await
    }

    async fn attempt_release(&self, release: &[&str], clear: &[&str], reserved_at: i64) -> StoreResult<()> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            for (key, released) in attempt_release_plan(release, clear) {
                let q = match released {
                    true => sqlx::query(ATTEMPT_RELEASE_SQL).bind(key).bind(reserved_at),
                    false => sqlx::query(ATTEMPT_CLEAR_SQL).bind(key),
                };
                q.execute(&mut *tx).await.map_err(db_err)?;
            }
            tx.commit().await.map_err(db_err)
        })
        .await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            let a = sqlx::query("DELETE FROM revocations WHERE expires_at <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            let b = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1 AND access_exp <= $1")
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
            sqlx::query("DELETE FROM login_failures WHERE window_start <= $1")
                .bind(now - 86_400)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
            for sql in
                ["DELETE FROM device_codes WHERE expires_at <= $1", "DELETE FROM legacy_tokens WHERE expires_at <= $1"]
            {
                sqlx::query(sql).bind(now).execute(&mut *tx).await.map_err(db_err)?;
            }
            sqlx::query(
                "DELETE FROM refresh_families f WHERE NOT EXISTS \
                 (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.family_id)",
            )
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            tx.commit().await.map_err(db_err)?;
            Ok(a + b)
        })
        .await
    }

    async fn device_insert(&self, d: &DeviceRecord) -> StoreResult<()> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO device_codes (device_code_hash, user_code, tenant, client_id, scope, claim_set, created_at, \
                 expires_at, interval_secs, last_poll_at, status, username) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(&d.device_code_hash)
            .bind(&d.user_code)
            .bind(&d.tenant)
            .bind(&d.client_id)
            .bind(&d.scope)
            .bind(d.claim_set.as_str())
            .bind(d.created_at)
            .bind(d.expires_at)
            .bind(d.interval)
            .bind(d.last_poll_at)
            .bind(d.status.as_str())
            .bind(&d.username)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
            })
        .await
    }

    async fn device_get_by_user_code(&self, tenant: &str, user_code: &str) -> StoreResult<Option<DeviceRecord>> {
        self.bounded(async {
            let row = sqlx::query("SELECT * FROM device_codes WHERE tenant = $1 AND user_code = $2")
                .bind(tenant)
                .bind(user_code)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(device_from_row).transpose()
        })
        .await
    }

    async fn device_decide(
        &self,
        tenant: &str,
        user_code: &str,
        username: &str,
        approve: bool,
        now: i64,
    ) -> StoreResult<bool> {
        self.bounded(async {
            let status = if approve { DeviceStatus::Approved } else { DeviceStatus::Denied };
            let n = sqlx::query(
                "UPDATE device_codes SET status = $1, username = $2 \
                 WHERE tenant = $3 AND user_code = $4 AND status = 'pending' AND expires_at > $5",
            )
            .bind(status.as_str())
            .bind(username)
            .bind(tenant)
            .bind(user_code)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
            Ok(n == 1)
        })
        .await
    }

    async fn device_poll(&self, device_code_hash: &str, client_id: &str, now: i64) -> StoreResult<DevicePoll> {
        self.bounded(async {
            let mut tx = self.pool.begin().await.map_err(db_err)?;
            // The row lock makes "approved -> consumed" happen once across nodes and serialises
            // the slow-down bookkeeping of concurrent polls.
            let row = sqlx::query("SELECT * FROM device_codes WHERE device_code_hash = $1 FOR UPDATE")
                .bind(device_code_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
            let Some(d) = row.as_ref().map(device_from_row).transpose()? else {
                return release(tx, DevicePoll::Invalid).await;
            };
            if d.client_id != client_id {
                return release(tx, DevicePoll::Invalid).await;
            }
            let outcome = match d.status {
                DeviceStatus::Consumed => DevicePoll::Invalid,
                _ if d.expires_at <= now => DevicePoll::Expired,
                DeviceStatus::Denied => DevicePoll::Denied,
                DeviceStatus::Approved => {
                    sqlx::query(
                        "UPDATE device_codes SET status = 'consumed' WHERE device_code_hash = $1 AND status = 'approved'",
                    )
                    .bind(device_code_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    DevicePoll::Approved(d)
                }
                DeviceStatus::Pending => {
                    let too_soon = d.last_poll_at.is_some_and(|last| now - last < d.interval);
                    // RFC 8628 section 3.5: slow_down adds 5 seconds to the interval for good.
                    let interval = if too_soon { d.interval + 5 } else { d.interval };
                    sqlx::query(
                        "UPDATE device_codes SET last_poll_at = $1, interval_secs = $2 WHERE device_code_hash = $3",
                    )
                    .bind(now)
                    .bind(interval)
                    .bind(device_code_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    if too_soon { DevicePoll::SlowDown } else { DevicePoll::Pending }
                }
            };
            tx.commit().await.map_err(db_err)?;
            Ok(outcome)
            })
        .await
    }

    async fn legacy_insert(&self, r: &LegacyRecord) -> StoreResult<()> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO legacy_tokens (token_hash, jti, tenant, subject, username, client_id, scope, issued_at, \
                 expires_at, chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&r.token_hash)
            .bind(&r.jti)
            .bind(&r.tenant)
            .bind(&r.subject)
            .bind(&r.username)
            .bind(&r.client_id)
            .bind(&r.scope)
            .bind(r.issued_at)
            .bind(r.expires_at)
            .bind(join_words(&r.chain))
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn legacy_get(&self, token_hash: &str) -> StoreResult<Option<LegacyRecord>> {
        self.bounded(async {
            let row = sqlx::query("SELECT * FROM legacy_tokens WHERE token_hash = $1")
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
            row.as_ref().map(legacy_from_row).transpose()
        })
        .await
    }

    async fn changes_since(&self, after: i64) -> StoreResult<Vec<(i64, Change)>> {
        self.bounded(async {
            let rows = sqlx::query("SELECT seq, kind, tenant, subject FROM changes WHERE seq > $1 ORDER BY seq")
                .bind(after)
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let seq: i64 = get(&r, "seq")?;
                let kind: String = get(&r, "kind")?;
                let tenant: String = get(&r, "tenant")?;
                let subject: Option<String> = get(&r, "subject")?;
                let change = match kind.as_str() {
                    "tenant" => Change::Tenant { tenant },
                    "key" => Change::Key { tenant },
                    "client" => Change::Client { tenant, client_id: subject.unwrap_or_default() },
                    "user" => Change::User { tenant, username: subject.unwrap_or_default() },
                    _ => return Err(corrupt("change kind")),
                };
                out.push((seq, change));
            }
            Ok(out)
        })
        .await
    }

    async fn heads(&self) -> StoreResult<(i64, i64)> {
        self.bounded(async {
            let row = sqlx::query(
                "SELECT (SELECT COALESCE(MAX(seq), 0) FROM changes) AS c, (SELECT COALESCE(MAX(seq), 0) FROM revocations) AS r",
            )
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)?;
            Ok((get(&row, "c")?, get(&row, "r")?))
            })
        .await
    }
}
