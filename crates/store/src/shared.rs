//! The store written once: [`Sql`] implements the core's `Store` over any [`Dialect`] (SQLite
//! or PostgreSQL). What truly differs per backend is the dialect's: how a write transaction
//! begins (SQLite's single writer vs. row locks), the locking reads, the change feed's lock
//! and notification, batch statements over arrays, and the deadline on every operation.

use crate::error::DbResult;
use crate::rows::{self, Cols, get, grants_json, json_list};
use crate::sql;
use async_trait::async_trait;
use std::ops::DerefMut;
use std::time::Duration;
use tessera_core::audit::{AuditEvent, AuditFilter, AuditRecord};
use tessera_core::keys::KeyRecord;
use tessera_core::principal::{ApiKey, Client, User};
use tessera_core::store::{
    BrowserSession, Change, CodeRecord, DevicePoll, DeviceRecord, DeviceStatus, FamilyInfo, LegacyRecord, NewRefresh,
    RefreshRecord, Revocation, Rotation, Store, StoreError, StoreResult, join_words,
};
use tessera_core::tenant::Tenant;
use tessera_core::throttle::Counter;
use tessera_core::{ClientId, TenantName, Username};

/// A statement argument, of one of the types the schema stores.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
    Flag(bool),
    Bytes(Option<&'a [u8]>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}
macro_rules! name_arg {
    ($($t:ty),*) => {$(
        impl<'a> From<&'a $t> for Arg<'a> {
            fn from(v: &'a $t) -> Self {
                Arg::Text(Some(v.as_str()))
            }
        }
        impl<'a> From<&'a Option<$t>> for Arg<'a> {
            fn from(v: &'a Option<$t>) -> Self {
                Arg::Text(v.as_ref().map(|n| n.as_str()))
            }
        }
    )*};
}
name_arg!(TenantName, Username, ClientId);
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}
impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Flag(v)
    }
}
impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Arg::Bytes(Some(v))
    }
}
impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(v: Option<&'a [u8]>) -> Self {
        Arg::Bytes(v)
    }
}

/// The arguments of a statement, `$1` first.
macro_rules! args {
    ($($a:expr),* $(,)?) => {
        &[$($crate::shared::Arg::from($a)),*]
    };
}
pub(crate) use args;

/// Count `n` statements sent to the database: each is a round trip (BEGIN and COMMIT
/// included). Exported on `/metrics` as `tessera_db_statements_total`, beside
/// `tessera_db_transactions_total` (explicit transactions); `bench/write` reads both per
/// operation.
pub(crate) fn sent(n: u64) {
    metrics::counter!("tessera_db_statements_total").increment(n);
}

/// Count a transaction about to begin: its BEGIN and the COMMIT or ROLLBACK that ends it.
pub(crate) fn began() {
    sent(2);
    metrics::counter!("tessera_db_transactions_total").increment(1);
}

/// A connection (or a transaction, through `&mut *tx`) that runs a statement with its
/// arguments. Implemented for each backend's connection by [`conn_impl`].
#[async_trait]
pub(crate) trait Conn: Send {
    type Row: Cols + Send + Sync;
    /// Run a statement: the number of rows it changed.
    async fn exec(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64>;
    async fn opt(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Option<Self::Row>>;
    async fn all(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Vec<Self::Row>>;
    async fn one(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Self::Row>;
}

/// `Conn` for a backend's connection type (the same code, over each backend's concrete
/// argument encoders).
macro_rules! conn_impl {
    ($conn:ty, $db:ty) => {
        const _: () = {
            use tessera_core::store::StoreResult;
            use $crate::error::DbResult as _;
            use $crate::shared::Arg;
            type Query = sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments>;

            fn bind(sql: &'static str, args: &[Arg<'_>]) -> Query {
                let mut q = sqlx::query(sql);
                for a in args {
                    q = match *a {
                        Arg::Text(v) => q.bind(v),
                        Arg::Int(v) => q.bind(v),
                        Arg::Flag(v) => q.bind(v),
                        Arg::Bytes(v) => q.bind(v),
                    };
                }
                q
            }

            #[async_trait::async_trait]
            impl $crate::shared::Conn for $conn {
                type Row = <$db as sqlx::Database>::Row;
                async fn exec(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64> {
                    $crate::shared::sent(1);
                    Ok(bind(sql, args).execute(&mut *self).await.db()?.rows_affected())
                }
                async fn opt(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Option<Self::Row>> {
                    $crate::shared::sent(1);
                    bind(sql, args).fetch_optional(&mut *self).await.db()
                }
                async fn all(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Vec<Self::Row>> {
                    $crate::shared::sent(1);
                    bind(sql, args).fetch_all(&mut *self).await.db()
                }
                async fn one(&mut self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<Self::Row> {
                    $crate::shared::sent(1);
                    bind(sql, args).fetch_one(&mut *self).await.db()
                }
            }
        };
    };
}
pub(crate) use conn_impl;

/// The two sequenced feeds, whose writers PostgreSQL serialises (see `Dialect::feed_lock`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Feed {
    Revocations = 1,
    Changes = 2,
}

/// What one backend does its own way.
#[async_trait]
pub(crate) trait Dialect: Send + Sync + 'static {
    type Db: sqlx::Database<Connection = Self::Conn>;
    type Conn: Conn + sqlx::Connection<Database = Self::Db>;

    /// How a write transaction holds what it reads.
    const LOCKING: sql::Locking;

    /// A write transaction: its statements run through `&mut *tx`.
    type Tx: DerefMut<Target = Self::Conn> + Send;

    /// The connections that read.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// Begin a write transaction ([`Locking::begin`](sql::Locking)). Dropped without
    /// [`Dialect::commit`] or [`Dialect::rollback`], it is rolled back.
    async fn begin(&self) -> StoreResult<Self::Tx>;

    /// Commit: once this returns `Ok`, the changes are durable.
    async fn commit(tx: Self::Tx) -> StoreResult<()>;

    async fn rollback(tx: Self::Tx) -> StoreResult<()>;

    /// Run one statement (a write) committed on its own: the number of rows it changed.
    async fn exec_one(&self, sql: &'static str, args: &[Arg<'_>]) -> StoreResult<u64>;

    /// The longest any one store operation may take, if the backend needs a bound beyond
    /// its own timeouts.
    fn deadline(&self) -> Option<Duration>;

    /// Before a write to `feed`: make its sequence numbers visible in commit order and tell
    /// the other nodes at commit.
    async fn feed_lock(conn: &mut Self::Conn, feed: Feed) -> StoreResult<()>;

    /// Revoke the families (locked by this transaction where the backend locks rows) and
    /// every live access token issued from them; returns those tokens.
    async fn revoke_families(conn: &mut Self::Conn, families: &[String], now: i64) -> StoreResult<Vec<Revocation>>;

    /// Insert a user's recovery codes (the old ones are deleted already).
    async fn recovery_codes_insert(
        conn: &mut Self::Conn,
        tenant: &str,
        username: &str,
        hashes: &[String],
    ) -> StoreResult<()>;

    /// Add one entry to the revocation list, acknowledged once durable.
    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()>;

    /// Append audit events (in the caller's transaction).
    async fn audit_insert(conn: &mut Self::Conn, events: &[AuditEvent]) -> StoreResult<()>;
}

/// The core's `Store` over a backend.
#[derive(Clone)]
pub(crate) struct Sql<D>(pub(crate) D);

impl<D: Dialect> Sql<D> {
    /// Run one store operation, under the backend's deadline if it has one.
    async fn run<T>(&self, op: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let Some(deadline) = self.0.deadline() else { return op.await };
        match tokio::time::timeout(deadline, op).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(?deadline, "database operation timed out");
                Err(StoreError::Unavailable("database operation timed out".into()))
            }
        }
    }

    /// A pooled connection, for reads and single statements.
    async fn conn(&self) -> StoreResult<sqlx::pool::PoolConnection<D::Db>> {
        self.0.pool().acquire().await.db()
    }

    /// Read one record.
    async fn read<T>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        map: fn(&<D::Conn as Conn>::Row) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        self.conn().await?.opt(sql, args).await?.as_ref().map(map).transpose()
    }

    /// Read a list of records.
    async fn list<T>(
        &self,
        sql: &'static str,
        args: &[Arg<'_>],
        map: fn(&<D::Conn as Conn>::Row) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        self.conn().await?.all(sql, args).await?.iter().map(map).collect()
    }

    /// Run one write in a transaction, recording `change` on the feed if it changed a row:
    /// the number of rows it changed.
    async fn write_recorded(&self, sql: &'static str, args: &[Arg<'_>], change: Recorded<'_>) -> StoreResult<u64> {
        let mut tx = self.0.begin().await?;
        let n = tx.exec(sql, args).await?;
        if n > 0 {
            record_change::<D>(&mut tx, change).await?;
        }
        D::commit(tx).await?;
        Ok(n)
    }
}

/// An entry of the change feed: kind, tenant, subject.
type Recorded<'a> = (&'static str, &'a str, Option<&'a str>);

async fn record_change<D: Dialect>(conn: &mut D::Conn, (kind, tenant, subject): Recorded<'_>) -> StoreResult<()> {
    D::feed_lock(conn, Feed::Changes).await?;
    conn.exec(sql::CHANGE_INSERT, args![kind, tenant, subject]).await?;
    Ok(())
}

/// End a transaction that changed nothing, releasing its locks now rather than when the pool
/// gets round to it. The answer stands even if the rollback fails.
async fn release<D: Dialect, T>(tx: D::Tx, answer: T) -> StoreResult<T> {
    let _ = D::rollback(tx).await;
    Ok(answer)
}

async fn insert_key<D: Dialect>(conn: &mut D::Conn, k: &KeyRecord) -> StoreResult<()> {
    let a = args![&k.kid, &k.tenant, k.alg.as_str(), &k.private_sealed, &k.public_jwk, k.created_at, k.activates_at];
    conn.exec(sql::KEY_INSERT, a).await?;
    Ok(())
}

#[async_trait]
impl<D: Dialect> Store for Sql<D> {
    async fn ping(&self) -> StoreResult<()> {
        self.run(async { self.0.exec_one(sql::PING, &[]).await.map(drop) }).await
    }

    async fn tenant_insert(&self, t: &Tenant, first_key: &KeyRecord) -> StoreResult<()> {
        self.run(async {
            let (hosts, grants) = (json_list(&t.hosts), t.allowed_grants.as_deref().map(grants_json));
            let mut tx = self.0.begin().await?;
            let a = args![
                &t.name,
                t.alg.as_str(),
                &t.issuer,
                t.access_ttl,
                t.refresh_ttl,
                &hosts,
                &grants,
                t.created_at,
                t.max_user_clients,
                t.longest_access_ttl,
                t.totp_required,
            ];
            tx.exec(sql::TENANT_INSERT, a).await?;
            insert_key::<D>(&mut tx, first_key).await?;
            record_change::<D>(&mut tx, ("tenant", &t.name, None)).await?;
            D::commit(tx).await
        })
        .await
    }

    async fn tenant_get(&self, name: &TenantName) -> StoreResult<Option<Tenant>> {
        self.run(self.read(sql::TENANT_GET, args![name], rows::tenant)).await
    }

    async fn tenant_list(&self) -> StoreResult<Vec<Tenant>> {
        self.run(self.list(sql::TENANT_LIST, &[], rows::tenant)).await
    }

    async fn tenant_update(&self, t: &Tenant) -> StoreResult<()> {
        self.run(async {
            let (hosts, grants) = (json_list(&t.hosts), t.allowed_grants.as_deref().map(grants_json));
            let a = args![
                &t.issuer,
                t.access_ttl,
                t.refresh_ttl,
                &hosts,
                &grants,
                t.max_user_clients,
                t.longest_access_ttl,
                &t.name,
                t.alg.as_str(),
                t.totp_required,
            ];
            match self.write_recorded(sql::TENANT_UPDATE, a, ("tenant", &t.name, None)).await? {
                0 => Err(StoreError::NotFound(format!("tenant {}", t.name))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn key_insert(&self, key: &KeyRecord) -> StoreResult<()> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            insert_key::<D>(&mut tx, key).await?;
            record_change::<D>(&mut tx, ("key", &key.tenant, Some(&key.kid))).await?;
            D::commit(tx).await
        })
        .await
    }

    async fn key_delete(&self, tenant: &TenantName, kid: &str) -> StoreResult<bool> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            let deleted = tx.exec(sql::KEY_DELETE, args![tenant, kid]).await? == 1;
            if deleted {
                record_change::<D>(&mut tx, ("key", tenant.as_str(), Some(kid))).await?;
            }
            D::commit(tx).await?;
            Ok(deleted)
        })
        .await
    }

    async fn key_list(&self, tenant: Option<&TenantName>) -> StoreResult<Vec<KeyRecord>> {
        self.run(async {
            match tenant {
                Some(t) => self.list(sql::KEY_LIST_TENANT, args![t], rows::key).await,
                None => self.list(sql::KEY_LIST_ALL, &[], rows::key).await,
            }
        })
        .await
    }

    async fn user_insert(&self, u: &User) -> StoreResult<()> {
        self.run(async {
            let roles = json_list(&u.roles);
            let p = &u.profile;
            let a = args![
                &u.tenant,
                &u.username,
                &u.password_hash,
                &roles,
                u.disabled,
                u.created_at,
                &p.email,
                &p.given_name,
                &p.last_name,
                u.totp.required,
            ];
            self.write_recorded(sql::USER_INSERT, a, ("user", &u.tenant, Some(&u.username))).await.map(drop)
        })
        .await
    }

    async fn user_get(&self, tenant: &TenantName, username: &Username) -> StoreResult<Option<User>> {
        self.run(self.read(sql::USER_GET, args![tenant, username], rows::user)).await
    }

    async fn user_list(&self, tenant: &TenantName) -> StoreResult<Vec<User>> {
        self.run(self.list(sql::USER_LIST, args![tenant], rows::user)).await
    }

    async fn user_totp_set(
        &self,
        tenant: &TenantName,
        username: &Username,
        sealed: Option<&[u8]>,
        enabled: bool,
    ) -> StoreResult<bool> {
        let a = args![sealed, enabled, tenant, username];
        self.run(self.write_recorded(sql::USER_TOTP_SET, a, ("user", tenant, Some(username)))).await.map(|n| n > 0)
    }

    async fn user_totp_accept_step(&self, tenant: &TenantName, username: &Username, step: i64) -> StoreResult<bool> {
        self.run(self.0.exec_one(sql::USER_TOTP_STEP, args![step, tenant, username])).await.map(|n| n == 1)
    }

    async fn recovery_codes_set(&self, tenant: &TenantName, username: &Username, hashes: &[String]) -> StoreResult<()> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            tx.exec(sql::RECOVERY_CLEAR, args![tenant, username]).await?;
            D::recovery_codes_insert(&mut tx, tenant, username, hashes).await?;
            D::commit(tx).await
        })
        .await
    }

    async fn recovery_code_use(
        &self,
        tenant: &TenantName,
        username: &Username,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        self.run(self.0.exec_one(sql::RECOVERY_USE, args![now, tenant, username, hash])).await.map(|n| n == 1)
    }

    async fn api_key_insert(&self, k: &ApiKey, key_hash: &str) -> StoreResult<()> {
        self.run(async {
            let scopes = json_list(&k.scopes);
            let a = args![
                key_hash,
                &k.id,
                &k.tenant,
                &k.username,
                &k.name,
                &scopes,
                k.created_at,
                k.expires_at,
                k.revoked_at,
                k.last_used_at,
            ];
            self.0.exec_one(sql::API_KEY_INSERT, a).await.map(drop)
        })
        .await
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        self.run(self.read(sql::API_KEY_BY_HASH, args![key_hash], rows::api_key)).await
    }

    async fn api_key_list(&self, tenant: &TenantName, username: Option<&Username>) -> StoreResult<Vec<ApiKey>> {
        self.run(async {
            match username {
                Some(u) => self.list(sql::API_KEY_LIST_USER, args![tenant, u], rows::api_key).await,
                None => self.list(sql::API_KEY_LIST_TENANT, args![tenant], rows::api_key).await,
            }
        })
        .await
    }

    async fn api_key_revoke(&self, tenant: &TenantName, id: &str, now: i64) -> StoreResult<bool> {
        self.run(self.0.exec_one(sql::API_KEY_REVOKE, args![now, tenant, id])).await.map(|n| n == 1)
    }

    async fn api_key_touch(&self, id: &str, now: i64) -> StoreResult<()> {
        self.run(self.0.exec_one(sql::API_KEY_TOUCH, args![now, id])).await.map(drop)
    }

    async fn user_set_disabled(&self, tenant: &TenantName, username: &Username, disabled: bool) -> StoreResult<bool> {
        let a = args![disabled, tenant, username];
        self.run(self.write_recorded(sql::USER_SET_DISABLED, a, ("user", tenant, Some(username)))).await.map(|n| n > 0)
    }

    async fn client_insert(&self, c: &Client) -> StoreResult<()> {
        self.run(async {
            let (grants, scopes) = (grants_json(&c.grants), json_list(&c.scopes));
            let redirects = json_list(&c.redirect_uris.iter().map(|u| u.to_string()).collect::<Vec<_>>());
            let logouts = json_list(&c.post_logout_redirect_uris.iter().map(|u| u.to_string()).collect::<Vec<_>>());
            let a = args![
                &c.tenant,
                &c.client_id,
                &c.name,
                &c.secret_hash,
                &grants,
                &scopes,
                c.owner.as_deref(),
                c.created_at,
                c.callback_url.as_deref(),
                &c.description,
                c.updated_at,
                &redirects,
                &logouts,
                c.first_party,
            ];
            self.write_recorded(sql::CLIENT_INSERT, a, ("client", &c.tenant, Some(&c.client_id))).await.map(drop)
        })
        .await
    }

    async fn client_get(&self, tenant: &TenantName, client_id: &ClientId) -> StoreResult<Option<Client>> {
        self.run(self.read(sql::CLIENT_GET, args![tenant, client_id], rows::client)).await
    }

    async fn client_list(&self, tenant: &TenantName) -> StoreResult<Vec<Client>> {
        self.run(self.list(sql::CLIENT_LIST, args![tenant], rows::client)).await
    }

    async fn client_update(&self, c: &Client) -> StoreResult<bool> {
        let (grants, scopes) = (grants_json(&c.grants), json_list(&c.scopes));
        let (previous, until) =
            (c.previous_secret.as_ref().map(|p| p.0.as_str()), c.previous_secret.as_ref().map(|p| p.1));
        let redirects = json_list(&c.redirect_uris.iter().map(|u| u.to_string()).collect::<Vec<_>>());
        let logouts = json_list(&c.post_logout_redirect_uris.iter().map(|u| u.to_string()).collect::<Vec<_>>());
        let a = args![
            &c.name,
            c.callback_url.as_deref(),
            &c.description,
            c.updated_at,
            &c.tenant,
            &c.client_id,
            &grants,
            &scopes,
            &c.secret_hash,
            previous,
            until,
            &redirects,
            &logouts,
            c.first_party,
        ];
        let change = ("client", c.tenant.as_str(), Some(c.client_id.as_str()));
        self.run(self.write_recorded(sql::CLIENT_UPDATE, a, change)).await.map(|n| n > 0)
    }

    async fn client_delete(&self, tenant: &TenantName, client_id: &ClientId, now: i64) -> StoreResult<bool> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            let n = tx.exec(sql::CLIENT_DELETE, args![tenant, client_id]).await?;
            if n > 0 {
                // The client's sessions end with it. Its live families are locked in one
                // statement, before the revocation list's lock (the order every writer follows).
                let rows = tx.all(D::LOCKING.client_families, args![tenant, client_id]).await?;
                let families = rows.iter().map(|r| get(r, "family_id")).collect::<StoreResult<Vec<String>>>()?;
                D::revoke_families(&mut tx, &families, now).await?;
                record_change::<D>(&mut tx, ("client", tenant, Some(client_id))).await?;
            }
            D::commit(tx).await?;
            Ok(n > 0)
        })
        .await
    }

    async fn refresh_insert(&self, r: &RefreshRecord) -> StoreResult<()> {
        self.run(async {
            let amr = join_words(&r.amr);
            let mut tx = self.0.begin().await?;
            let a = args![&r.family_id, &r.tenant, &r.client_id, r.issued_at, r.auth_time, &amr];
            tx.exec(sql::FAMILY_INSERT, a).await?;
            let a = args![
                &r.token_hash,
                &r.family_id,
                &r.tenant,
                &r.client_id,
                &r.subject,
                &r.username,
                &r.scope,
                &r.audience,
                r.issued_at,
                r.expires_at,
                &r.access_jti,
                r.access_exp,
                r.claim_set.as_str(),
                r.refresh_count,
                r.grant_type.short_name(),
            ];
            tx.exec(sql::REFRESH_INSERT, a).await?;
            D::commit(tx).await
        })
        .await
    }

    async fn refresh_get(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>> {
        self.run(self.read(sql::REFRESH_SELECT, args![token_hash], rows::refresh)).await
    }

    async fn refresh_rotate(
        &self,
        token_hash: &str,
        now: i64,
        grace_secs: i64,
        next: &NewRefresh,
        accept: &(dyn for<'r> Fn(&'r RefreshRecord) -> bool + Send + Sync),
    ) -> StoreResult<(Rotation, Option<RefreshRecord>)> {
        self.run(async {
            // SQLite: an unknown token does not queue for the one writer lock.
            if D::LOCKING.read_first
                && self.read(sql::REFRESH_SELECT, args![token_hash], rows::refresh).await?.is_none()
            {
                return Ok((Rotation::Invalid, None));
            }
            // Every rotation and revocation of a family holds the family: SQLite's writer lock
            // (taken at BEGIN), PostgreSQL's row lock (taken by this read). So a token cannot be
            // rotated while its family is being killed, which would leave the new access token
            // off the revocation list. After waiting for the lock, PostgreSQL re-reads the family
            // row (`revoked_at` is current) but not the token row: a `used_at` read as NULL may be
            // stale, so the conditional write below decides. Once set, `used_at` never changes.
            let mut tx = self.0.begin().await?;
            let row = tx.opt(D::LOCKING.refresh, args![token_hash]).await?;
            let Some(cur) = row.as_ref().map(rows::refresh).transpose()? else {
                return release::<D, _>(tx, (Rotation::Invalid, None)).await;
            };
            if cur.family_revoked || cur.expires_at <= now {
                return release::<D, _>(tx, (Rotation::Invalid, Some(cur))).await;
            }
            if !accept(&cur) {
                return release::<D, _>(tx, (Rotation::Declined, Some(cur))).await;
            }
            let used = match cur.used_at {
                Some(used) => Some(used),
                // Marked used and succeeded in one statement: the usual case.
                None => {
                    let marked = match D::LOCKING.rotate {
                        Some(rotate) => {
                            let a = args![
                                now,
                                token_hash,
                                &next.token_hash,
                                next.issued_at,
                                next.expires_at,
                                &next.access_jti,
                                next.access_exp
                            ];
                            tx.exec(rotate, a).await? == 1
                        }
                        None => {
                            let marked = tx.exec(sql::REFRESH_MARK_USED, args![now, token_hash]).await? == 1;
                            if marked {
                                let a = args![
                                    &next.token_hash,
                                    next.issued_at,
                                    next.expires_at,
                                    &next.access_jti,
                                    next.access_exp,
                                    token_hash
                                ];
                                tx.exec(sql::REFRESH_SUCCESSOR, a).await?;
                            }
                            marked
                        }
                    };
                    if marked {
                        D::commit(tx).await?;
                        return Ok((Rotation::Rotated, Some(cur)));
                    }
                    // Another node rotated it since the read.
                    match tx.opt(sql::REFRESH_USED_AT, args![token_hash]).await? {
                        Some(r) => get::<Option<i64>>(&r, "used_at")?,
                        // Purged meanwhile.
                        None => return release::<D, _>(tx, (Rotation::Invalid, Some(cur))).await,
                    }
                }
            };
            let outcome = match used {
                Some(used) if grace_secs > 0 && now - used <= grace_secs => Rotation::WithinGrace,
                _ => {
                    let revoked = D::revoke_families(&mut tx, std::slice::from_ref(&cur.family_id), now).await?;
                    D::commit(tx).await?;
                    return Ok((Rotation::Reused { revoked }, Some(cur)));
                }
            };
            let a =
                args![&next.token_hash, next.issued_at, next.expires_at, &next.access_jti, next.access_exp, token_hash];
            tx.exec(sql::REFRESH_SUCCESSOR, a).await?;
            D::commit(tx).await?;
            Ok((outcome, Some(cur)))
        })
        .await
    }

    async fn refresh_revoke_family(&self, family_id: &str, now: i64) -> StoreResult<Vec<Revocation>> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            if let Some(lock) = D::LOCKING.family {
                tx.exec(lock, args![family_id]).await?;
            }
            let out = D::revoke_families(&mut tx, &[family_id.to_owned()], now).await?;
            D::commit(tx).await?;
            Ok(out)
        })
        .await
    }

    async fn revocation_insert(&self, r: &Revocation) -> StoreResult<()> {
        self.run(self.0.revocation_insert(r)).await
    }

    async fn revocations_since(&self, after: i64, limit: i64) -> StoreResult<Vec<(i64, Revocation)>> {
        let map = |r: &_| Ok((get(r, "seq")?, rows::revocation(r)?));
        self.run(self.list(sql::REVOCATIONS_SINCE, args![after, limit], map)).await
    }

    async fn purge_expired(&self, now: i64) -> StoreResult<u64> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            let a = tx.exec(sql::PURGE_REVOCATIONS, args![now]).await?;
            let b = tx.exec(sql::PURGE_REFRESH, args![now]).await?;
            tx.exec(sql::PURGE_FAILURES, args![now - 86_400]).await?;
            tx.exec(sql::PURGE_DEVICES, args![now]).await?;
            tx.exec(sql::PURGE_LEGACY, args![now]).await?;
            tx.exec(sql::PURGE_CODES, args![now - 86_400]).await?;
            tx.exec(sql::PURGE_SESSIONS, args![now]).await?;
            tx.exec(sql::PURGE_FAMILIES, &[]).await?;
            D::commit(tx).await?;
            Ok(a + b)
        })
        .await
    }

    async fn device_insert(&self, d: &DeviceRecord) -> StoreResult<()> {
        self.run(async {
            let a = args![
                &d.device_code_hash,
                &d.user_code,
                &d.tenant,
                &d.client_id,
                &d.scope,
                d.claim_set.as_str(),
                d.created_at,
                d.expires_at,
                d.interval,
                d.last_poll_at,
                d.status.as_str(),
                &d.username,
            ];
            self.0.exec_one(sql::DEVICE_INSERT, a).await.map(drop)
        })
        .await
    }

    async fn device_get_by_user_code(&self, tenant: &TenantName, user_code: &str) -> StoreResult<Option<DeviceRecord>> {
        self.run(self.read(sql::DEVICE_BY_USER_CODE, args![tenant, user_code], rows::device)).await
    }

    async fn device_decide(
        &self,
        tenant: &TenantName,
        user_code: &str,
        username: &Username,
        approve: bool,
        now: i64,
    ) -> StoreResult<bool> {
        let status = if approve { DeviceStatus::Approved } else { DeviceStatus::Denied };
        let a = args![status.as_str(), username, tenant, user_code, now];
        self.run(self.0.exec_one(sql::DEVICE_DECIDE, a)).await.map(|n| n == 1)
    }

    async fn device_poll(&self, device_code_hash: &str, client_id: &ClientId, now: i64) -> StoreResult<DevicePoll> {
        self.run(async {
            // The lock (SQLite's writer lock, PostgreSQL's row lock) makes "approved -> consumed"
            // happen once across nodes and serialises the slow-down bookkeeping of concurrent polls.
            let mut tx = self.0.begin().await?;
            let row = tx.opt(D::LOCKING.device, args![device_code_hash]).await?;
            let Some(d) = row.as_ref().map(rows::device).transpose()? else {
                return release::<D, _>(tx, DevicePoll::Invalid).await;
            };
            if d.client_id != client_id.as_str() {
                return release::<D, _>(tx, DevicePoll::Invalid).await;
            }
            let outcome = match d.status {
                DeviceStatus::Consumed => DevicePoll::Invalid,
                _ if d.expires_at <= now => DevicePoll::Expired,
                DeviceStatus::Denied => DevicePoll::Denied,
                DeviceStatus::Approved => {
                    tx.exec(sql::DEVICE_CONSUME, args![device_code_hash]).await?;
                    DevicePoll::Approved(d)
                }
                DeviceStatus::Pending => {
                    let too_soon = d.last_poll_at.is_some_and(|last| now - last < d.interval);
                    // RFC 8628 section 3.5: slow_down adds 5 seconds to the interval for good.
                    let interval = if too_soon { d.interval + 5 } else { d.interval };
                    tx.exec(sql::DEVICE_POLLED, args![now, interval, device_code_hash]).await?;
                    if too_soon { DevicePoll::SlowDown } else { DevicePoll::Pending }
                }
            };
            D::commit(tx).await?;
            Ok(outcome)
        })
        .await
    }

    async fn code_insert(&self, c: &CodeRecord) -> StoreResult<()> {
        self.run(async {
            let amr = join_words(&c.amr);
            let a = args![
                &c.code_hash,
                &c.tenant,
                &c.client_id,
                &c.redirect_uri,
                &c.code_challenge,
                &c.nonce,
                &c.scope,
                &c.username,
                c.auth_time,
                &amr,
                &c.sid,
                c.created_at,
                c.expires_at,
            ];
            self.0.exec_one(sql::CODE_INSERT, a).await.map(drop)
        })
        .await
    }

    async fn code_get(&self, code_hash: &str) -> StoreResult<Option<CodeRecord>> {
        self.run(self.read(sql::CODE_GET, args![code_hash], rows::code)).await
    }

    async fn code_redeem(&self, code_hash: &str, now: i64, family_id: &str) -> StoreResult<bool> {
        self.run(self.0.exec_one(sql::CODE_REDEEM, args![now, family_id, code_hash])).await.map(|n| n == 1)
    }

    async fn browser_session_insert(&self, s: &BrowserSession) -> StoreResult<()> {
        self.run(async {
            let amr = join_words(&s.amr);
            let a = args![
                &s.token_hash,
                &s.sid,
                &s.tenant,
                &s.username,
                s.auth_time,
                &amr,
                s.created_at,
                s.last_seen_at,
                s.expires_at,
            ];
            self.0.exec_one(sql::SESSION_INSERT, a).await.map(drop)
        })
        .await
    }

    async fn browser_session_get(&self, token_hash: &str) -> StoreResult<Option<BrowserSession>> {
        self.run(self.read(sql::SESSION_GET, args![token_hash], rows::browser_session)).await
    }

    async fn browser_session_touch(&self, token_hash: &str, now: i64) -> StoreResult<()> {
        self.run(self.0.exec_one(sql::SESSION_TOUCH, args![now, token_hash])).await.map(drop)
    }

    async fn browser_session_revoke(&self, tenant: &TenantName, sid: &str, now: i64) -> StoreResult<bool> {
        self.run(self.0.exec_one(sql::SESSION_REVOKE, args![now, tenant, sid])).await.map(|n| n == 1)
    }

    async fn browser_sessions_of(
        &self,
        tenant: &TenantName,
        username: &Username,
        now: i64,
    ) -> StoreResult<Vec<BrowserSession>> {
        self.run(self.list(sql::SESSIONS_OF, args![tenant, username, now], rows::browser_session)).await
    }

    async fn browser_sessions_end(&self, tenant: &TenantName, username: &Username, now: i64) -> StoreResult<u64> {
        self.run(self.0.exec_one(sql::SESSIONS_END, args![now, tenant, username])).await
    }

    async fn consent_get(
        &self,
        tenant: &TenantName,
        username: &Username,
        client_id: &ClientId,
    ) -> StoreResult<Option<Vec<String>>> {
        let map = |r: &_| Ok(tessera_core::store::split_words(get(r, "scope")?));
        self.run(self.read(sql::CONSENT_GET, args![tenant, username, client_id], map)).await
    }

    async fn consent_put(
        &self,
        tenant: &TenantName,
        username: &Username,
        client_id: &ClientId,
        scopes: &[String],
        now: i64,
    ) -> StoreResult<()> {
        let scope = scopes.join(" ");
        self.run(self.0.exec_one(sql::CONSENT_PUT, args![tenant, username, client_id, &scope, now])).await.map(drop)
    }

    async fn legacy_insert(&self, r: &LegacyRecord) -> StoreResult<()> {
        self.run(async {
            let chain = join_words(&r.chain);
            let a = args![
                &r.token_hash,
                &r.jti,
                &r.tenant,
                &r.subject,
                &r.username,
                &r.client_id,
                &r.scope,
                r.issued_at,
                r.expires_at,
                &chain,
            ];
            self.0.exec_one(sql::LEGACY_INSERT, a).await.map(drop)
        })
        .await
    }

    async fn legacy_get(&self, token_hash: &str) -> StoreResult<Option<LegacyRecord>> {
        self.run(self.read(sql::LEGACY_GET, args![token_hash], rows::legacy)).await
    }

    async fn attempt_reserve(&self, counters: &[Counter], now: i64, window: i64) -> StoreResult<Option<i64>> {
        // Each counted row stays locked until the transaction ends (SQLite: the whole database),
        // so concurrent reservations of one key (at any node) take turns and each sees the
        // others' counts. Rows are locked in key order, the same in every transaction: no
        // deadlock.
        let mut sorted: Vec<&Counter> = counters.iter().collect();
        sorted.sort_by(|a, b| a.key.cmp(&b.key));
        self.run(async {
            let mut tx = self.0.begin().await?;
            let mut wait = None;
            for c in sorted {
                let row = tx.one(sql::ATTEMPT_COUNT, args![&c.key, now, now - window]).await?;
                let (count, start): (i64, i64) = (get(&row, "failures")?, get(&row, "window_start")?);
                if count > c.cap {
                    wait = wait.max(Some((start + window - now).max(1)));
                }
            }
            match wait {
                // Past a cap: nothing is counted.
                Some(_) => release::<D, _>(tx, wait).await,
                None => D::commit(tx).await.map(|()| None),
            }
        })
        .await
    }

    async fn attempt_release(&self, release: &[&str], clear: &[&str], reserved_at: i64) -> StoreResult<()> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            for (key, released) in attempt_release_plan(release, clear) {
                match released {
                    true => tx.exec(sql::ATTEMPT_RELEASE, args![key, reserved_at]).await?,
                    false => tx.exec(sql::ATTEMPT_CLEAR, args![key]).await?,
                };
            }
            D::commit(tx).await
        })
        .await
    }

    async fn tenant_delete(&self, name: &TenantName) -> StoreResult<bool> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            let mut deleted = 0;
            for statement in sql::TENANT_DELETE {
                deleted = tx.exec(statement, args![name]).await?;
            }
            if deleted > 0 {
                record_change::<D>(&mut tx, ("tenant", name, None)).await?;
            }
            D::commit(tx).await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn user_update(&self, u: &User) -> StoreResult<bool> {
        let roles = json_list(&u.roles);
        let p = &u.profile;
        let a = args![
            &u.password_hash,
            &roles,
            &p.email,
            &p.given_name,
            &p.last_name,
            &u.tenant,
            &u.username,
            u.totp.required,
        ];
        self.run(self.write_recorded(sql::USER_UPDATE, a, ("user", &u.tenant, Some(&u.username)))).await.map(|n| n > 0)
    }

    async fn user_families(&self, tenant: &TenantName, username: &Username, now: i64) -> StoreResult<Vec<FamilyInfo>> {
        self.run(self.list(sql::USER_FAMILIES, args![tenant, username, now], rows::family)).await
    }

    async fn changes_since(&self, after: i64) -> StoreResult<Vec<(i64, Change)>> {
        let map = |r: &_| Ok((get(r, "seq")?, rows::change(r)?));
        self.run(self.list(sql::CHANGES_SINCE, args![after], map)).await
    }

    async fn heads(&self) -> StoreResult<(i64, i64)> {
        self.run(async {
            let row = self.conn().await?.one(sql::HEADS, &[]).await?;
            Ok((get(&row, "c")?, get(&row, "r")?))
        })
        .await
    }

    async fn setting_get(&self, name: &str) -> StoreResult<Option<String>> {
        self.run(self.read(sql::SETTING_GET, args![name], |row| get(row, "value"))).await
    }

    async fn setting_claim(&self, name: &str, value: &str) -> StoreResult<String> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            tx.exec(sql::SETTING_CLAIM, args![name, value]).await?;
            let value = get(&tx.one(sql::SETTING_GET, args![name]).await?, "value")?;
            D::commit(tx).await?;
            Ok(value)
        })
        .await
    }

    async fn setting_set(&self, name: &str, value: &str) -> StoreResult<()> {
        self.run(async { self.0.exec_one(sql::SETTING_SET, args![name, value]).await.map(drop) }).await
    }

    async fn audit_insert(&self, events: &[AuditEvent]) -> StoreResult<()> {
        self.run(async {
            let mut tx = self.0.begin().await?;
            D::audit_insert(&mut tx, events).await?;
            D::commit(tx).await
        })
        .await
    }

    async fn audit_list(
        &self,
        tenant: &TenantName,
        f: &AuditFilter,
        before: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<AuditRecord>> {
        let a = args![
            tenant,
            &f.actor,
            &f.subject,
            f.event.map(|e| e.as_str()),
            f.outcome.map(|o| o.as_str()),
            f.since,
            f.until,
            before,
            limit,
        ];
        self.run(self.list(sql::AUDIT_LIST, a, rows::audit)).await
    }

    async fn audit_purge(&self, before: i64) -> StoreResult<u64> {
        self.run(self.0.exec_one(sql::AUDIT_PURGE, args![before])).await
    }
}

/// The keys that settle attempts (see `Store::attempt_release`), each with whether it is
/// released (else cleared), in key order: the order in which every transaction on these
/// rows locks them.
fn attempt_release_plan<'a>(release: &[&'a str], clear: &[&'a str]) -> Vec<(&'a str, bool)> {
    let mut plan: Vec<(&str, bool)> = release.iter().map(|k| (*k, true)).collect();
    plan.extend(clear.iter().map(|k| (*k, false)));
    plan.sort_unstable();
    plan
}
