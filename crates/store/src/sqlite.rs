//! The SQLite backend: one file in the data dir, WAL mode so that admin commands and the
//! server can use it at the same time, `synchronous = FULL` so that an acknowledged write
//! (a revocation, a rotation) survives a crash.

use crate::{ATTEMPT_CLEAR_SQL, ATTEMPT_COUNT_SQL, ATTEMPT_RELEASE_SQL, attempt_release_plan};
use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn db_err(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return StoreError::Conflict("record".into());
    }
    tracing::warn!(error = %e, "sqlite error");
    StoreError::Unavailable(e.to_string())
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

impl SqliteStore {
    /// Open (creating if needed) the database file and bring its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(db_err)?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
        Ok(SqliteStore { pool })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

async fn record_change(
    tx: &mut sqlx::SqliteConnection,
    kind: &'static str,
    tenant: &str,
    subject: Option<&str>,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO changes (kind, tenant, subject) VALUES (?, ?, ?)")
        .bind(kind)
        .bind(tenant)
        .bind(subject)
        .execute(&mut *tx)
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

fn tenant_from_row(r: &SqliteRow) -> StoreResult<Tenant> {
    let alg: String = r.try_get("alg").map_err(db_err)?;
    Ok(Tenant {
        name: r.try_get("name").map_err(db_err)?,
        alg: alg.parse().map_err(|_| corrupt("tenant alg"))?,
        issuer: r.try_get("issuer").map_err(db_err)?,
        access_ttl: r.try_get("access_ttl").map_err(db_err)?,
        refresh_ttl: r.try_get("refresh_ttl").map_err(db_err)?,
        hosts: parse_list(&r.try_get::<String, _>("hosts").map_err(db_err)?)?,
        allowed_grants: r
            .try_get::<Option<String>, _>("allowed_grants")
            .map_err(db_err)?
            .map(|s| parse_grants(&s))
            .transpose()?,
        created_at: r.try_get("created_at").map_err(db_err)?,
        max_user_clients: r.try_get("max_user_clients").map_err(db_err)?,
        longest_access_ttl: r.try_get("longest_access_ttl").map_err(db_err)?,
    })
}

fn parse_grants(s: &str) -> StoreResult<Vec<GrantType>> {
    parse_list(s)?.iter().map(|g| g.parse::<GrantType>().map_err(|_| corrupt("grant"))).collect()
}

fn grants_json(g: &[GrantType]) -> String {
    json_list(&g.iter().map(|g| g.as_str().to_owned()).collect::<Vec<_>>())
}

fn claim_set(r: &SqliteRow) -> StoreResult<ClaimSet> {
    ClaimSet::parse(&r.try_get::<String, _>("claim_set").map_err(db_err)?).ok_or_else(|| corrupt("claim set"))
}

fn key_from_row(r: &SqliteRow) -> StoreResult<KeyRecord> {
    let alg: String = r.try_get("alg").map_err(db_err)?;
    Ok(KeyRecord {
        kid: r.try_get("kid").map_err(db_err)?,
        tenant: r.try_get("tenant").map_err(db_err)?,
        alg: alg.parse::<Alg>().map_err(|_| corrupt("key alg"))?,
        private_sealed: r.try_get("private_sealed").map_err(db_err)?,
        public_jwk: r.try_get("public_jwk").map_err(db_err)?,
        created_at: r.try_get("created_at").map_err(db_err)?,
        activates_at: r.try_get("activates_at").map_err(db_err)?,
    })
}

fn user_from_row(r: &SqliteRow) -> StoreResult<User> {
    Ok(User {
        tenant: r.try_get("tenant").map_err(db_err)?,
        username: r.try_get("username").map_err(db_err)?,
        password_hash: r.try_get("password_hash").map_err(db_err)?,
        roles: parse_list(&r.try_get::<String, _>("roles").map_err(db_err)?)?,
        disabled: r.try_get::<i64, _>("disabled").map_err(db_err)? != 0,
        created_at: r.try_get("created_at").map_err(db_err)?,
        profile: Profile {
            email: r.try_get("email").map_err(db_err)?,
            given_name: r.try_get("given_name").map_err(db_err)?,
            last_name: r.try_get("last_name").map_err(db_err)?,
        },
        totp: TotpState {
            sealed_secret: r.try_get("totp_secret").map_err(db_err)?,
            enabled: r.try_get::<i64, _>("totp_enabled").map_err(db_err)? != 0,
            last_step: r.try_get("totp_last_step").map_err(db_err)?,
        },
    })
}

fn api_key_from_row(r: &SqliteRow) -> StoreResult<ApiKey> {
    Ok(ApiKey {
        id: r.try_get("id").map_err(db_err)?,
        tenant: r.try_get("tenant").map_err(db_err)?,
        username: r.try_get("username").map_err(db_err)?,
        name: r.try_get("name").map_err(db_err)?,
        scopes: parse_list(&r.try_get::<String, _>("scopes").map_err(db_err)?)?,
        created_at: r.try_get("created_at").map_err(db_err)?,
        expires_at: r.try_get("expires_at").map_err(db_err)?,
        revoked_at: r.try_get("revoked_at").map_err(db_err)?,
        last_used_at: r.try_get("last_used_at").map_err(db_err)?,
    })
}

fn client_from_row(r: &SqliteRow) -> StoreResult<Client> {
    let grants = parse_grants(&r.try_get::<String, _>("grants").map_err(db_err)?)?;
    let created_at: i64 = r.try_get("created_at").map_err(db_err)?;
    Ok(Client {
        tenant: r.try_get("tenant").map_err(db_err)?,
        client_id: r.try_get("client_id").map_err(db_err)?,
        name: r.try_get("name").map_err(db_err)?,
        secret_hash: r.try_get("secret_hash").map_err(db_err)?,
        grants,
        scopes: parse_list(&r.try_get::<String, _>("scopes").map_err(db_err)?)?,
        owner: r.try_get("owner").map_err(db_err)?,
        callback_url: r.try_get("callback_url").map_err(db_err)?,
        description: r.try_get("description").map_err(db_err)?,
        created_at,
        updated_at: r.try_get::<Option<i64>, _>("updated_at").map_err(db_err)?.unwrap_or(created_at),
    })
}

fn refresh_from_row(r: &SqliteRow) -> StoreResult<RefreshRecord> {
    Ok(RefreshRecord {
        token_hash: r.try_get("token_hash").map_err(db_err)?,
        family_id: r.try_get("family_id").map_err(db_err)?,
        tenant: r.try_get("tenant").map_err(db_err)?,
        client_id: r.try_get("client_id").map_err(db_err)?,
        subject: r.try_get("subject").map_err(db_err)?,
        username: r.try_get("username").map_err(db_err)?,
        scope: r.try_get("scope").map_err(db_err)?,
        audience: r.try_get("audience").map_err(db_err)?,
        issued_at: r.try_get("issued_at").map_err(db_err)?,
        expires_at: r.try_get("expires_at").map_err(db_err)?,
        used_at: r.try_get("used_at").map_err(db_err)?,
        family_revoked: r.try_get::<Option<i64>, _>("revoked_at").map_err(db_err)?.is_some(),
        access_jti: r.try_get("access_jti").map_err(db_err)?,
        access_exp: r.try_get("access_exp").map_err(db_err)?,
        claim_set: claim_set(r)?,
        refresh_count: r.try_get("refresh_count").map_err(db_err)?,
        grant_type: r.try_get("grant_type").map_err(db_err)?,
        auth_time: r.try_get("auth_time").map_err(db_err)?,
        amr: split_words(r.try_get("amr").map_err(db_err)?),
    })
}

fn device_from_row(r: &SqliteRow) -> StoreResult<DeviceRecord> {
    Ok(DeviceRecord {
        device_code_hash: r.try_get("device_code_hash").map_err(db_err)?,
        user_code: r.try_get("user_code").map_err(db_err)?,
        tenant: r.try_get("tenant").map_err(db_err)?,
        client_id: r.try_get("client_id").map_err(db_err)?,
        scope: r.try_get("scope").map_err(db_err)?,
        claim_set: claim_set(r)?,
        created_at: r.try_get("created_at").map_err(db_err)?,
        expires_at: r.try_get("expires_at").map_err(db_err)?,
        interval: r.try_get("interval_secs").map_err(db_err)?,
        last_poll_at: r.try_get("last_poll_at").map_err(db_err)?,
        status: DeviceStatus::parse(&r.try_get::<String, _>("status").map_err(db_err)?)
            .ok_or_else(|| corrupt("device status"))?,
        username: r.try_get("username").map_err(db_err)?,
    })
}

fn legacy_from_row(r: &SqliteRow) -> StoreResult<LegacyRecord> {
    Ok(LegacyRecord {
        token_hash: r.try_get("token_hash").map_err(db_err)?,
        jti: r.try_get("jti").map_err(db_err)?,
        tenant: r.try_get("tenant").map_err(db_err)?,
        subject: r.try_get("subject").map_err(db_err)?,
        username: r.try_get("username").map_err(db_err)?,
        client_id: r.try_get("client_id").map_err(db_err)?,
        scope: r.try_get("scope").map_err(db_err)?,
        issued_at: r.try_get("issued_at").map_err(db_err)?,
        expires_at: r.try_get("expires_at").map_err(db_err)?,
        chain: split_words(r.try_get("chain").map_err(db_err)?),
    })
}

const REFRESH_SELECT: &str = "SELECT t.token_hash, t.family_id, t.tenant, t.client_id, t.subject, t.username, \
     t.scope, t.audience, t.issued_at, t.expires_at, t.used_at, t.access_jti, t.access_exp, t.claim_set, \
     t.refresh_count, t.grant_type, f.revoked_at, f.auth_time, f.amr \
     FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id WHERE t.token_hash = ?";

async fn revoke_family(tx: &mut sqlx::SqliteConnection, family_id: &str, now: i64) -> StoreResult<Vec<Revocation>> {
    sqlx::query("UPDATE refresh_families SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL")
        .bind(now)
        .bind(family_id)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    let rows =
        sqlx::query("SELECT tenant, access_jti, access_exp FROM refresh_tokens WHERE family_id = ? AND access_exp > ?")
            .bind(family_id)
            .bind(now)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let rev = Revocation {
            tenant: r.try_get("tenant").map_err(db_err)?,
            jti: r.try_get("access_jti").map_err(db_err)?,
            expires_at: r.try_get("access_exp").map_err(db_err)?,
        };
        insert_revocation(tx, &rev).await?;
        out.push(rev);
    }
    Ok(out)
}

async fn insert_revocation(tx: &mut sqlx::SqliteConnection, r: &Revocation) -> StoreResult<()> {
    sqlx::query("INSERT INTO revocations (tenant, jti, expires_at) VALUES (?, ?, ?) ON CONFLICT (jti) DO NOTHING")
        .bind(&r.tenant)
        .bind(&r.jti)
        .bind(r.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map_err(db_err)?;
        Ok(())
    }

    async fn tenant_insert(&self, t: &Tenant, first_key: &KeyRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO tenants (name, alg, issuer, access_ttl, refresh_ttl, hosts, allowed_grants, created_at, \
             max_user_clients, longest_access_ttl) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    }

    async fn tenant_get(&self, name: &str) -> StoreResult<Option<Tenant>> {
        let row = sqlx::query("SELECT * FROM tenants WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn tenant_list(&self) -> StoreResult<Vec<Tenant>> {
        let rows = sqlx::query("SELECT * FROM tenants ORDER BY name").fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(tenant_from_row).collect()
    }

    async fn tenant_update(&self, t: &Tenant) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let n = sqlx::query(
            "UPDATE tenants SET issuer = ?, access_ttl = ?, refresh_ttl = ?, hosts = ?, allowed_grants = ?, \
             max_user_clients = ?, longest_access_ttl = ? WHERE name = ?",
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
    }

    async fn key_insert(&self, key: &KeyRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        insert_key(&mut tx, key).await?;
        record_change(&mut tx, "key", &key.tenant, Some(&key.kid)).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn key_list(&self, tenant: Option<&str>) -> StoreResult<Vec<KeyRecord>> {
        let rows = match tenant {
            Some(t) => {
                sqlx::query("SELECT * FROM signing_keys WHERE tenant = ? ORDER BY activates_at, created_at")
                    .bind(t)
                    .fetch_all(&self.pool)
                    .await
            }
            None => sqlx::query("SELECT * FROM signing_keys ORDER BY tenant, activates_at").fetch_all(&self.pool).await,
        }
        .map_err(db_err)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn user_insert(&self, u: &User) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO users (tenant, username, password_hash, roles, disabled, created_at, email, given_name, last_name) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.tenant)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(json_list(&u.roles))
        .bind(u.disabled as i64)
        .bind(u.created_at)
        .bind(&u.profile.email)
        .bind(&u.profile.given_name)
        .bind(&u.profile.last_name)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        record_change(&mut tx, "user", &u.tenant, Some(&u.username)).await?;
        tx.commit().await.map_err(db_err)
    }

    async fn user_get(&self, tenant: &str, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant = ? AND username = ?")
            .bind(tenant)
            .bind(username)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_list(&self, tenant: &str) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE tenant = ? ORDER BY username")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn user_totp_set(
        &self,
        tenant: &str,
        username: &str,
        sealed: Option<&[u8]>,
        enabled: bool,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let n = sqlx::query(
            "UPDATE users SET totp_secret = ?, totp_enabled = ?, totp_last_step = NULL WHERE tenant = ? AND username = ?",
        )
        .bind(sealed)
        .bind(enabled as i64)
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
    }

    async fn user_totp_accept_step(&self, tenant: &str, username: &str, step: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE users SET totp_last_step = ? \
             WHERE tenant = ? AND username = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
        )
        .bind(step)
        .bind(tenant)
        .bind(username)
        .bind(step)
        .execute(&self.pool)
        .await
        .map_err(db_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn recovery_codes_set(&self, tenant: &str, username: &str, hashes: &[String]) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::query("DELETE FROM recovery_codes WHERE tenant = ? AND username = ?")
            .bind(tenant)
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for h in hashes {
            sqlx::query("INSERT INTO recovery_codes (tenant, username, code_hash) VALUES (?, ?, ?)")
                .bind(tenant)
                .bind(username)
                .bind(h)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn recovery_code_use(&self, tenant: &str, username: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE recovery_codes SET used_at = ? \
             WHERE tenant = ? AND username = ? AND code_hash = ? AND used_at IS NULL",
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
    }

    async fn api_key_insert(&self, k: &ApiKey, key_hash: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (key_hash, id, tenant, username, name, scopes, created_at, expires_at, revoked_at, \
             last_used_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE key_hash = ?")
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    async fn api_key_list(&self, tenant: &str, username: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        let rows = match username {
            Some(u) => {
                sqlx::query("SELECT * FROM api_keys WHERE tenant = ? AND username = ? ORDER BY created_at, id")
                    .bind(tenant)
                    .bind(u)
                    .fetch_all(&self.pool)
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM api_keys WHERE tenant = ? ORDER BY username, created_at, id")
                    .bind(tenant)
                    .fetch_all(&self.pool)
                    .await
            }
        }
        .map_err(db_err)?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn api_key_revoke(&self, tenant: &str, id: &str, now: i64) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE tenant = ? AND id = ? AND revoked_at IS NULL")
            .bind(now)
            .bind(tenant)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?
            .rows_affected();
        Ok(n == 1)
    }

    async fn api_key_touch(&self, id: &str, now: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn user_set_disabled(&self, tenant: &str, username: &str, disabled: bool) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let n = sqlx::query("UPDATE users SET disabled = ? WHERE tenant = ? AND username = ?")
            .bind(disabled as i64)
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
    }

    async fn client_insert(&self, c: &Client) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO clients (tenant, client_id, name, secret_hash, grants, scopes, owner, created_at, \
             callback_url, description, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    }

    async fn client_get(&self, tenant: &str, client_id: &str) -> StoreResult<Option<Client>> {
        let row = sqlx::query("SELECT * FROM clients WHERE tenant = ? AND client_id = ?")
            .bind(tenant)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(client_from_row).transpose()
    }

    async fn client_list(&self, tenant: &str) -> StoreResult<Vec<Client>> {
        let rows = sqlx::query("SELECT * FROM clients WHERE tenant = ? ORDER BY created_at, client_id")
            .bind(tenant)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(client_from_row).collect()
    }

    async fn client_update(&self, c: &Client) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let n = sqlx::query(
            "UPDATE clients SET name = ?, callback_url = ?, description = ?, updated_at = ? WHERE tenant = ? AND client_id = ?",
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
    }

    async fn client_delete(&self, tenant: &str, client_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let n = sqlx::query("DELETE FROM clients WHERE tenant = ? AND client_id = ?")
            .bind(tenant)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if n > 0 {
            // The client's sessions end with it.
            let families: Vec<String> = sqlx::query_scalar(
                "SELECT family_id FROM refresh_families WHERE tenant = ? AND client_id = ? AND revoked_at IS NULL",
            )
            .bind(tenant)
            .bind(client_id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            for f in families {
                revoke_family(&mut tx, &f, now).await?;
            }
            record_change(&mut tx, "client", tenant, Some(client_id)).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(n > 0)
    }

    async fn refresh_insert(&self, r: &RefreshRecord) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO refresh_families (family_id, tenant, client_id, created_at, auth_time, amr) \
             VALUES (?, ?, ?, ?, ?, ?)",
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
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
    }

    async fn refresh_get(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>> {
        let row = sqlx::query(REFRESH_SELECT).bind(token_hash).fetch_optional(&self.pool).await.map_err(db_err)?;
        row.as_ref().map(refresh_from_row).transpose()
    }

    async fn refresh_rotate(
        &self,
        token_hash: &str,
        client_id: &str,
        now: i64,
        grace_secs: i64,
        next: &NewRefresh,
    ) -> StoreResult<Rotation> {
        // BEGIN IMMEDIATE takes the write lock first, so the read below and the writes that
        // depend on it cannot interleave with another rotation of the same token.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let row = sqlx::query(REFRESH_SELECT).bind(token_hash).fetch_optional(&mut *tx).await.map_err(db_err)?;
        let Some(cur) = row.as_ref().map(refresh_from_row).transpose()? else {
            return Ok(Rotation::Invalid);
        };
        if cur.client_id != client_id || cur.family_revoked || cur.expires_at <= now {
            return Ok(Rotation::Invalid);
        }
        let outcome = match cur.used_at {
            None => {
                sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL")
                    .bind(now)
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                Rotation::Rotated
            }
            Some(used) if grace_secs > 0 && now - used <= grace_secs => Rotation::WithinGrace,
            Some(_) => {
                let revoked = revoke_family(&mut tx, &cur.family_id, now).await?;
                tx.commit().await.map_err(db_err)?;
                return Ok(Rotation::Reused { revoked });
            }
        };
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, tenant, client_id, subject, username, scope, audience, \
             issued_at, expires_at, used_at, access_jti, access_exp, claim_set, refresh_count, grant_type) \
             SELECT ?, family_id, tenant, client_id, subject, username, scope, audience, ?, ?, NULL, ?, ?, \
             claim_set, refresh_count + 1, grant_type FROM refresh_tokens WHERE token_hash = ?",
        )
        .bind(&next.token_hash)
        .bind(next.issued_at)
        .bind(next.expires_at)
        .bind(&next.access_jti)
        .bind(next.access_exp)
        .bind(token_hash)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(outcome)
    }

    async fn refresh_revoke_family(&self, family_id: &str, now: i64) -> StoreResult<Vec<Revocation>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let out = revoke_family(&mut tx, family_id, now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }

    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        insert_revocation(&mut conn, r).await
    }

    async fn revocations_since(&self, after: i64) -> StoreResult<Vec<(i64, Revocation)>> {
        let rows = sqlx::query("SELECT seq, tenant, jti, expires_at FROM revocations WHERE seq > ? ORDER BY seq")
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("seq").map_err(db_err)?,
                    Revocation {
                        tenant: r.try_get("tenant").map_err(db_err)?,
                        jti: r.try_get("jti").map_err(db_err)?,
                        expires_at: r.try_get("expires_at").map_err(db_err)?,
                    },
                ))
            })
            .collect()
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let a = sqlx::query("DELETE FROM revocations WHERE expires_at <= ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        let b = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= ? AND access_exp <= ?")
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        sqlx::query("DELETE FROM login_failures WHERE window_start <= ?")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        for sql in ["DELETE FROM device_codes WHERE expires_at <= ?", "DELETE FROM legacy_tokens WHERE expires_at <= ?"]
        {
            sqlx::query(sql).bind(now).execute(&mut *tx).await.map_err(db_err)?;
        }
        sqlx::query(
            "DELETE FROM refresh_families WHERE NOT EXISTS \
             (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.family_id)",
        )
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(a + b)
    }

    async fn device_insert(&self, d: &DeviceRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO device_codes (device_code_hash, user_code, tenant, client_id, scope, claim_set, created_at, \
             expires_at, interval_secs, last_poll_at, status, username) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    }

    async fn device_get_by_user_code(&self, tenant: &str, user_code: &str) -> StoreResult<Option<DeviceRecord>> {
        let row = sqlx::query("SELECT * FROM device_codes WHERE tenant = ? AND user_code = ?")
            .bind(tenant)
            .bind(user_code)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(device_from_row).transpose()
    }

    async fn device_decide(
        &self,
        tenant: &str,
        user_code: &str,
        username: &str,
        approve: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let status = if approve { DeviceStatus::Approved } else { DeviceStatus::Denied };
        let n = sqlx::query(
            "UPDATE device_codes SET status = ?, username = ? \
             WHERE tenant = ? AND user_code = ? AND status = 'pending' AND expires_at > ?",
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
    }

    async fn device_poll(&self, device_code_hash: &str, client_id: &str, now: i64) -> StoreResult<DevicePoll> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let row = sqlx::query("SELECT * FROM device_codes WHERE device_code_hash = ?")
            .bind(device_code_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        let Some(d) = row.as_ref().map(device_from_row).transpose()? else {
            return Ok(DevicePoll::Invalid);
        };
        if d.client_id != client_id {
            return Ok(DevicePoll::Invalid);
        }
        let outcome = match d.status {
            DeviceStatus::Consumed => DevicePoll::Invalid,
            _ if d.expires_at <= now => DevicePoll::Expired,
            DeviceStatus::Denied => DevicePoll::Denied,
            DeviceStatus::Approved => {
                sqlx::query(
                    "UPDATE device_codes SET status = 'consumed' WHERE device_code_hash = ? AND status = 'approved'",
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
                sqlx::query("UPDATE device_codes SET last_poll_at = ?, interval_secs = ? WHERE device_code_hash = ?")
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
    }

    async fn legacy_insert(&self, r: &LegacyRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO legacy_tokens (token_hash, jti, tenant, subject, username, client_id, scope, issued_at, \
             expires_at, chain) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    }

    async fn legacy_get(&self, token_hash: &str) -> StoreResult<Option<LegacyRecord>> {
        let row = sqlx::query("SELECT * FROM legacy_tokens WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(legacy_from_row).transpose()
    }

    async fn attempt_reserve(&self, counters: &[Counter], now: i64, window: i64) -> StoreResult<Option<i64>> {
        // One writer at a time (BEGIN IMMEDIATE): the counts read are the counts written.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        let mut wait = None;
        for c in counters {
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
        if wait.is_some() {
            tx.rollback().await.map_err(db_err)?;
        } else {
            tx.commit().await.map_err(db_err)?;
        }
        Ok(wait)
    }

    async fn attempt_release(&self, release: &[&str], clear: &[&str], reserved_at: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        for (key, released) in attempt_release_plan(release, clear) {
            let q = match released {
                true => sqlx::query(ATTEMPT_RELEASE_SQL).bind(key).bind(reserved_at),
                false => sqlx::query(ATTEMPT_CLEAR_SQL).bind(key),
            };
            q.execute(&mut *tx).await.map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)
    }

    async fn changes_since(&self, after: i64) -> StoreResult<Vec<(i64, Change)>> {
        let rows = sqlx::query("SELECT seq, kind, tenant, subject FROM changes WHERE seq > ? ORDER BY seq")
            .bind(after)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let seq: i64 = r.try_get("seq").map_err(db_err)?;
            let kind: String = r.try_get("kind").map_err(db_err)?;
            let tenant: String = r.try_get("tenant").map_err(db_err)?;
            let subject: Option<String> = r.try_get("subject").map_err(db_err)?;
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
    }

    async fn heads(&self) -> StoreResult<(i64, i64)> {
        let c: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM changes").fetch_one(&self.pool).await.map_err(db_err)?;
        let r: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM revocations").fetch_one(&self.pool).await.map_err(db_err)?;
        Ok((c.unwrap_or(0), r.unwrap_or(0)))
    }
}

async fn insert_key(tx: &mut sqlx::SqliteConnection, k: &KeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO signing_keys (kid, tenant, alg, private_sealed, public_jwk, created_at, activates_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&k.kid)
    .bind(&k.tenant)
    .bind(k.alg.as_str())
    .bind(&k.private_sealed)
    .bind(&k.public_jwk)
    .bind(k.created_at)
    .bind(k.activates_at)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(())
}
