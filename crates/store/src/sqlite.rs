//! The SQLite backend: one file in the data dir, WAL mode so that admin commands and the
//! server can use it at the same time, `synchronous = FULL` so that an acknowledged write
//! (a revocation, a rotation) survives a crash.

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::time::Duration;
use tessera_core::keys::{Alg, KeyRecord};
use tessera_core::principal::{Client, GrantType, User};
use tessera_core::store::{Change, NewRefresh, RefreshRecord, Revocation, Rotation, Store, StoreError, StoreResult};
use tessera_core::tenant::Tenant;

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
        created_at: r.try_get("created_at").map_err(db_err)?,
    })
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
    })
}

fn client_from_row(r: &SqliteRow) -> StoreResult<Client> {
    let grants = parse_list(&r.try_get::<String, _>("grants").map_err(db_err)?)?
        .iter()
        .map(|g| g.parse::<GrantType>().map_err(|_| corrupt("client grant")))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Client {
        tenant: r.try_get("tenant").map_err(db_err)?,
        client_id: r.try_get("client_id").map_err(db_err)?,
        name: r.try_get("name").map_err(db_err)?,
        secret_hash: r.try_get("secret_hash").map_err(db_err)?,
        grants,
        scopes: parse_list(&r.try_get::<String, _>("scopes").map_err(db_err)?)?,
        owner: r.try_get("owner").map_err(db_err)?,
        created_at: r.try_get("created_at").map_err(db_err)?,
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
    })
}

const REFRESH_SELECT: &str = "SELECT t.token_hash, t.family_id, t.tenant, t.client_id, t.subject, t.username, \
     t.scope, t.audience, t.issued_at, t.expires_at, t.used_at, t.access_jti, t.access_exp, f.revoked_at \
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
            "INSERT INTO tenants (name, alg, issuer, access_ttl, refresh_ttl, hosts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&t.name)
        .bind(t.alg.as_str())
        .bind(&t.issuer)
        .bind(t.access_ttl)
        .bind(t.refresh_ttl)
        .bind(json_list(&t.hosts))
        .bind(t.created_at)
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
            "INSERT INTO users (tenant, username, password_hash, roles, disabled, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&u.tenant)
        .bind(&u.username)
        .bind(&u.password_hash)
        .bind(json_list(&u.roles))
        .bind(u.disabled as i64)
        .bind(u.created_at)
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
        let grants: Vec<String> = c.grants.iter().map(|g| g.as_str().to_owned()).collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO clients (tenant, client_id, name, secret_hash, grants, scopes, owner, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.tenant)
        .bind(&c.client_id)
        .bind(&c.name)
        .bind(&c.secret_hash)
        .bind(json_list(&grants))
        .bind(json_list(&c.scopes))
        .bind(&c.owner)
        .bind(c.created_at)
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
        sqlx::query("INSERT INTO refresh_families (family_id, tenant, client_id, created_at) VALUES (?, ?, ?, ?)")
            .bind(&r.family_id)
            .bind(&r.tenant)
            .bind(&r.client_id)
            .bind(r.issued_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, tenant, client_id, subject, username, scope, audience, \
             issued_at, expires_at, used_at, access_jti, access_exp) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
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
             issued_at, expires_at, used_at, access_jti, access_exp) \
             SELECT ?, family_id, tenant, client_id, subject, username, scope, audience, ?, ?, NULL, ?, ? \
             FROM refresh_tokens WHERE token_hash = ?",
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
