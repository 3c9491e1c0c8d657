//! The statements, written once with `$n` parameters: PostgreSQL's syntax, which SQLite
//! accepts too (sqlx binds SQLite's `$n` to the n-th argument, so a parameter may recur and
//! appear in any order). Statements only one backend runs are with that backend.

pub(crate) const PING: &str = "SELECT 1";

pub(crate) const TENANT_INSERT: &str = "INSERT INTO tenants (name, alg, issuer, access_ttl, refresh_ttl, hosts, \
     allowed_grants, created_at, max_user_clients, longest_access_ttl, totp_required) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
pub(crate) const TENANT_GET: &str = "SELECT * FROM tenants WHERE name = $1";
pub(crate) const TENANT_LIST: &str = "SELECT * FROM tenants ORDER BY name";
pub(crate) const TENANT_UPDATE: &str = "UPDATE tenants SET issuer = $1, access_ttl = $2, refresh_ttl = $3, hosts = $4, \
     allowed_grants = $5, max_user_clients = $6, longest_access_ttl = $7, alg = $9, totp_required = $10 WHERE name = $8";
/// A tenant's rows, children first (PostgreSQL checks the references at each statement).
pub(crate) const TENANT_DELETE: [&str; 10] = [
    "DELETE FROM recovery_codes WHERE tenant = $1",
    "DELETE FROM api_keys WHERE tenant = $1",
    "DELETE FROM refresh_tokens WHERE tenant = $1",
    "DELETE FROM refresh_families WHERE tenant = $1",
    "DELETE FROM device_codes WHERE tenant = $1",
    "DELETE FROM legacy_tokens WHERE tenant = $1",
    "DELETE FROM clients WHERE tenant = $1",
    "DELETE FROM users WHERE tenant = $1",
    "DELETE FROM signing_keys WHERE tenant = $1",
    "DELETE FROM tenants WHERE name = $1",
];

pub(crate) const KEY_INSERT: &str = "INSERT INTO signing_keys (kid, tenant, alg, private_sealed, public_jwk, \
     created_at, activates_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const KEY_LIST_TENANT: &str =
    "SELECT * FROM signing_keys WHERE tenant = $1 ORDER BY activates_at, created_at";
pub(crate) const KEY_DELETE: &str = "DELETE FROM signing_keys WHERE tenant = $1 AND kid = $2";
pub(crate) const KEY_LIST_ALL: &str = "SELECT * FROM signing_keys ORDER BY tenant, activates_at";

pub(crate) const USER_INSERT: &str = "INSERT INTO users (tenant, username, password_hash, roles, disabled, \
     created_at, email, given_name, last_name, totp_required) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const USER_GET: &str = "SELECT * FROM users WHERE tenant = $1 AND username = $2";
pub(crate) const USER_LIST: &str = "SELECT * FROM users WHERE tenant = $1 ORDER BY username";
pub(crate) const USER_TOTP_SET: &str = "UPDATE users SET totp_secret = $1, totp_enabled = $2, totp_last_step = NULL \
     WHERE tenant = $3 AND username = $4";
/// One conditional statement: of two nodes accepting the same code, one updates the row.
pub(crate) const USER_TOTP_STEP: &str = "UPDATE users SET totp_last_step = $1 \
     WHERE tenant = $2 AND username = $3 AND (totp_last_step IS NULL OR totp_last_step < $1)";
pub(crate) const USER_UPDATE: &str = "UPDATE users SET password_hash = $1, roles = $2, email = $3, \
     given_name = $4, last_name = $5, totp_required = $8 WHERE tenant = $6 AND username = $7";
/// The refresh families of user $2 of tenant $1 that still hold an unexpired token at $3,
/// newest first.
pub(crate) const USER_FAMILIES: &str = "SELECT f.family_id, f.client_id, f.created_at, f.auth_time, \
     MAX(t.expires_at) AS expires_at, MAX(t.issued_at) AS last_used_at FROM refresh_families f \
     JOIN refresh_tokens t ON t.family_id = f.family_id \
     WHERE f.tenant = $1 AND t.username = $2 AND f.revoked_at IS NULL AND t.expires_at > $3 \
     GROUP BY f.family_id, f.client_id, f.created_at, f.auth_time ORDER BY f.created_at DESC, f.family_id";
pub(crate) const USER_SET_DISABLED: &str = "UPDATE users SET disabled = $1 WHERE tenant = $2 AND username = $3";

pub(crate) const RECOVERY_CLEAR: &str = "DELETE FROM recovery_codes WHERE tenant = $1 AND username = $2";
pub(crate) const RECOVERY_INSERT: &str = "INSERT INTO recovery_codes (tenant, username, code_hash) VALUES ($1, $2, $3)";
pub(crate) const RECOVERY_USE: &str = "UPDATE recovery_codes SET used_at = $1 \
     WHERE tenant = $2 AND username = $3 AND code_hash = $4 AND used_at IS NULL";

pub(crate) const API_KEY_INSERT: &str = "INSERT INTO api_keys (key_hash, id, tenant, username, name, scopes, \
     created_at, expires_at, revoked_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const API_KEY_BY_HASH: &str = "SELECT * FROM api_keys WHERE key_hash = $1";
pub(crate) const API_KEY_LIST_USER: &str =
    "SELECT * FROM api_keys WHERE tenant = $1 AND username = $2 ORDER BY created_at, id";
pub(crate) const API_KEY_LIST_TENANT: &str =
    "SELECT * FROM api_keys WHERE tenant = $1 ORDER BY username, created_at, id";
pub(crate) const API_KEY_REVOKE: &str =
    "UPDATE api_keys SET revoked_at = $1 WHERE tenant = $2 AND id = $3 AND revoked_at IS NULL";
pub(crate) const API_KEY_TOUCH: &str = "UPDATE api_keys SET last_used_at = $1 WHERE id = $2";

pub(crate) const CLIENT_INSERT: &str = "INSERT INTO clients (tenant, client_id, name, secret_hash, grants, scopes, \
     owner, created_at, callback_url, description, updated_at, redirect_uris, post_logout_redirect_uris, first_party) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub(crate) const CLIENT_GET: &str = "SELECT * FROM clients WHERE tenant = $1 AND client_id = $2";
pub(crate) const CLIENT_LIST: &str = "SELECT * FROM clients WHERE tenant = $1 ORDER BY created_at, client_id";
pub(crate) const CLIENT_UPDATE: &str = "UPDATE clients SET name = $1, callback_url = $2, description = $3, \
     updated_at = $4, grants = $7, scopes = $8, secret_hash = $9, previous_secret_hash = $10, \
     previous_secret_until = $11, redirect_uris = $12, post_logout_redirect_uris = $13, first_party = $14 \
     WHERE tenant = $5 AND client_id = $6";
pub(crate) const CLIENT_DELETE: &str = "DELETE FROM clients WHERE tenant = $1 AND client_id = $2";
macro_rules! client_families {
    () => {
        "SELECT family_id FROM refresh_families WHERE tenant = $1 AND client_id = $2 AND revoked_at IS NULL"
    };
}

pub(crate) const FAMILY_INSERT: &str = "INSERT INTO refresh_families (family_id, tenant, client_id, created_at, \
     auth_time, amr) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const REFRESH_INSERT: &str = "INSERT INTO refresh_tokens (token_hash, family_id, tenant, client_id, \
     subject, username, scope, audience, issued_at, expires_at, used_at, access_jti, access_exp, claim_set, \
     refresh_count, grant_type) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12, $13, $14, $15)";
macro_rules! refresh_select {
    () => {
        "SELECT t.token_hash, t.family_id, t.tenant, t.client_id, t.subject, t.username, t.scope, t.audience, \
         t.issued_at, t.expires_at, t.used_at, t.access_jti, t.access_exp, t.claim_set, t.refresh_count, \
         t.grant_type, f.revoked_at, f.auth_time, f.amr, \
         (t.username IS NOT NULL AND (u.username IS NULL OR u.disabled)) AS user_barred \
         FROM refresh_tokens t JOIN refresh_families f ON f.family_id = t.family_id \
         LEFT JOIN users u ON u.tenant = t.tenant AND u.username = t.username WHERE t.token_hash = $1"
    };
}
/// A refresh token $1 with its family's state.
pub(crate) const REFRESH_SELECT: &str = refresh_select!();
pub(crate) const REFRESH_MARK_USED: &str =
    "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL";
/// PostgreSQL: mark token $2 used at $1 if it is unused, and store its successor $3 (issued $4,
/// expiring $5, beside access token $6 expiring $7; same family, user, scope, claims; one more
/// rotation): one statement, so one round trip. Changes one row when it marked the token.
/// (SQLite has no writes in a `WITH`: [`REFRESH_MARK_USED`] then [`REFRESH_SUCCESSOR`].)
const REFRESH_ROTATE: &str = "WITH used AS (UPDATE refresh_tokens SET used_at = $1 \
     WHERE token_hash = $2 AND used_at IS NULL RETURNING family_id, tenant, client_id, subject, username, scope, \
     audience, claim_set, refresh_count, grant_type) \
     INSERT INTO refresh_tokens (token_hash, family_id, tenant, client_id, subject, username, scope, audience, \
     issued_at, expires_at, used_at, access_jti, access_exp, claim_set, refresh_count, grant_type) \
     SELECT $3, family_id, tenant, client_id, subject, username, scope, audience, $4, $5, NULL, $6, $7, claim_set, \
     refresh_count + 1, grant_type FROM used";
pub(crate) const REFRESH_USED_AT: &str = "SELECT used_at FROM refresh_tokens WHERE token_hash = $1";
/// The successor of token $6 (same family, user, scope, claims; one more rotation).
pub(crate) const REFRESH_SUCCESSOR: &str = "INSERT INTO refresh_tokens (token_hash, family_id, tenant, client_id, \
     subject, username, scope, audience, issued_at, expires_at, used_at, access_jti, access_exp, claim_set, \
     refresh_count, grant_type) SELECT $1, family_id, tenant, client_id, subject, username, scope, audience, $2, $3, \
     NULL, $4, $5, claim_set, refresh_count + 1, grant_type FROM refresh_tokens WHERE token_hash = $6";
pub(crate) const FAMILY_REVOKE: &str =
    "UPDATE refresh_families SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL";
/// The live access tokens of family $1 at $2, as revocations.
pub(crate) const FAMILY_LIVE_ACCESS: &str = "SELECT tenant, access_jti AS jti, access_exp AS expires_at \
     FROM refresh_tokens WHERE family_id = $1 AND access_exp > $2";

pub(crate) const REVOCATION_INSERT: &str =
    "INSERT INTO revocations (tenant, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT (jti) DO NOTHING";
pub(crate) const REVOCATIONS_SINCE: &str =
    "SELECT seq, tenant, jti, expires_at FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2";

pub(crate) const PURGE_REVOCATIONS: &str = "DELETE FROM revocations WHERE expires_at <= $1";
pub(crate) const PURGE_REFRESH: &str = "DELETE FROM refresh_tokens WHERE expires_at <= $1 AND access_exp <= $1";
pub(crate) const PURGE_FAILURES: &str = "DELETE FROM login_failures WHERE window_start <= $1";
pub(crate) const PURGE_DEVICES: &str = "DELETE FROM device_codes WHERE expires_at <= $1";
pub(crate) const PURGE_LEGACY: &str = "DELETE FROM legacy_tokens WHERE expires_at <= $1";
pub(crate) const PURGE_FAMILIES: &str = "DELETE FROM refresh_families WHERE NOT EXISTS \
     (SELECT 1 FROM refresh_tokens t WHERE t.family_id = refresh_families.family_id)";

pub(crate) const DEVICE_INSERT: &str = "INSERT INTO device_codes (device_code_hash, user_code, tenant, client_id, \
     scope, claim_set, created_at, expires_at, interval_secs, last_poll_at, status, username) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
pub(crate) const DEVICE_BY_USER_CODE: &str = "SELECT * FROM device_codes WHERE tenant = $1 AND user_code = $2";
pub(crate) const DEVICE_DECIDE: &str = "UPDATE device_codes SET status = $1, username = $2 \
     WHERE tenant = $3 AND user_code = $4 AND status = 'pending' AND expires_at > $5";
macro_rules! device_by_hash {
    () => {
        "SELECT * FROM device_codes WHERE device_code_hash = $1"
    };
}
pub(crate) const DEVICE_CONSUME: &str =
    "UPDATE device_codes SET status = 'consumed' WHERE device_code_hash = $1 AND status = 'approved'";
pub(crate) const DEVICE_POLLED: &str =
    "UPDATE device_codes SET last_poll_at = $1, interval_secs = $2 WHERE device_code_hash = $3";

pub(crate) const CODE_INSERT: &str = "INSERT INTO authorization_codes (code_hash, tenant, client_id, redirect_uri, \
     code_challenge, nonce, scope, username, auth_time, amr, sid, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
pub(crate) const CODE_GET: &str = "SELECT * FROM authorization_codes WHERE code_hash = $1";
/// One conditional statement: of two redemptions (at any node), one updates the row.
pub(crate) const CODE_REDEEM: &str = "UPDATE authorization_codes SET used_at = $1, family_id = $2 \
     WHERE code_hash = $3 AND used_at IS NULL AND expires_at > $1";
/// Codes are kept a day past expiry, so that a late second redemption still revokes.
pub(crate) const PURGE_CODES: &str = "DELETE FROM authorization_codes WHERE expires_at <= $1";

pub(crate) const SESSION_INSERT: &str = "INSERT INTO browser_sessions (token_hash, sid, tenant, username, auth_time, \
     amr, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const SESSION_GET: &str = "SELECT * FROM browser_sessions WHERE token_hash = $1";
pub(crate) const SESSION_TOUCH: &str = "UPDATE browser_sessions SET last_seen_at = $1 WHERE token_hash = $2";
pub(crate) const SESSION_REVOKE: &str =
    "UPDATE browser_sessions SET revoked_at = $1 WHERE tenant = $2 AND sid = $3 AND revoked_at IS NULL";
pub(crate) const SESSIONS_OF: &str = "SELECT * FROM browser_sessions WHERE tenant = $1 AND username = $2 \
     AND revoked_at IS NULL AND expires_at > $3 ORDER BY created_at DESC, sid";
pub(crate) const SESSIONS_END: &str = "UPDATE browser_sessions SET revoked_at = $1 WHERE tenant = $2 AND username = $3 \
     AND revoked_at IS NULL AND expires_at > $1";
pub(crate) const PURGE_SESSIONS: &str = "DELETE FROM browser_sessions WHERE expires_at <= $1";

pub(crate) const CONSENT_GET: &str =
    "SELECT scope FROM consents WHERE tenant = $1 AND username = $2 AND client_id = $3";
pub(crate) const CONSENT_PUT: &str = "INSERT INTO consents (tenant, username, client_id, scope, granted_at) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, username, client_id) \
     DO UPDATE SET scope = excluded.scope, granted_at = excluded.granted_at";

pub(crate) const LEGACY_INSERT: &str = "INSERT INTO legacy_tokens (token_hash, jti, tenant, subject, username, \
     client_id, scope, issued_at, expires_at, chain) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const LEGACY_GET: &str = "SELECT * FROM legacy_tokens WHERE token_hash = $1";

/// One more attempt for key $1 at $2 (a window that started at or before $3 is over): the
/// count and window start after it. Locks the row until the transaction ends.
pub(crate) const ATTEMPT_COUNT: &str = "INSERT INTO login_failures (key, window_start, failures) VALUES ($1, $2, 1) \
     ON CONFLICT (key) DO UPDATE SET \
     failures = CASE WHEN login_failures.window_start <= $3 THEN 1 ELSE login_failures.failures + 1 END, \
     window_start = CASE WHEN login_failures.window_start <= $3 THEN $2 ELSE login_failures.window_start END \
     RETURNING failures, window_start";
/// Give back one attempt of key $1 reserved at $2, if its window is still the one it was
/// reserved in (a later window starts after $2).
pub(crate) const ATTEMPT_RELEASE: &str =
    "UPDATE login_failures SET failures = failures - 1 WHERE key = $1 AND window_start <= $2 AND failures > 0";
/// Forget key $1's attempts.
pub(crate) const ATTEMPT_CLEAR: &str = "DELETE FROM login_failures WHERE key = $1";

pub(crate) const CHANGE_INSERT: &str = "INSERT INTO changes (kind, tenant, subject) VALUES ($1, $2, $3)";
pub(crate) const CHANGES_SINCE: &str = "SELECT seq, kind, tenant, subject FROM changes WHERE seq > $1 ORDER BY seq";
/// How a write transaction holds what it reads: what differs between a database with one
/// writer at a time and one that locks rows.
pub(crate) struct Locking {
    /// The statement that opens a write transaction.
    pub begin: &'static str,
    /// Read a refresh token before a rotation's transaction, so that an unknown one never
    /// waits for the lock (SQLite, where the lock is the whole database's).
    pub read_first: bool,
    /// Mark a refresh token used and store its successor in one statement, if the backend can.
    pub rotate: Option<&'static str>,
    /// A refresh token $1 with its family's state ([`REFRESH_SELECT`]), for a rotation.
    pub refresh: &'static str,
    /// A device code by hash $1, for a poll.
    pub device: &'static str,
    /// The live refresh families of client $2 of tenant $1, for the client's deletion.
    pub client_families: &'static str,
    /// Before a family ($1) is revoked on its own.
    pub family: Option<&'static str>,
}

/// SQLite: `BEGIN IMMEDIATE` takes the one writer lock first, so the reads in the transaction
/// and the writes that depend on them cannot interleave with another writer's.
pub(crate) const WRITER_LOCK: Locking = Locking {
    begin: "BEGIN IMMEDIATE",
    read_first: true,
    rotate: None,
    refresh: refresh_select!(),
    device: device_by_hash!(),
    client_families: client_families!(),
    family: None,
};

/// PostgreSQL: every rotation and revocation of a refresh family holds the family's row, a
/// device poll the device code's row; a client's live families are locked in one statement,
/// in one order, before the revocation list's lock (the order every writer follows).
pub(crate) const ROW_LOCKS: Locking = Locking {
    begin: "BEGIN",
    read_first: false,
    rotate: Some(REFRESH_ROTATE),
    refresh: concat!(refresh_select!(), " FOR UPDATE OF f"),
    device: concat!(device_by_hash!(), " FOR UPDATE"),
    client_families: concat!(client_families!(), " ORDER BY family_id FOR UPDATE"),
    family: Some("SELECT 1 FROM refresh_families WHERE family_id = $1 FOR UPDATE"),
};

/// The last sequence numbers of the change feed and the revocation list, in one round trip.
pub(crate) const HEADS: &str = "SELECT (SELECT COALESCE(MAX(seq), 0) FROM changes) AS c, \
     (SELECT COALESCE(MAX(seq), 0) FROM revocations) AS r";

/// The deployment setting $1.
pub(crate) const SETTING_GET: &str = "SELECT value FROM deployment WHERE name = $1";
/// Record the deployment setting $1 = $2 unless it is recorded.
pub(crate) const SETTING_CLAIM: &str =
    "INSERT INTO deployment (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING";
/// Record the deployment setting $1 = $2.
pub(crate) const SETTING_SET: &str =
    "INSERT INTO deployment (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value";
/// A filter that is NULL matches every row; `$8` is the cursor (ids below it), `$9` the limit.
pub(crate) const AUDIT_LIST: &str = "SELECT * FROM audit_events WHERE tenant = $1 \
     AND ($2 IS NULL OR actor_name = $2) AND ($3 IS NULL OR subject = $3) AND ($4 IS NULL OR event = $4) \
     AND ($5 IS NULL OR outcome = $5) AND ($6 IS NULL OR at >= $6) AND ($7 IS NULL OR at < $7) \
     AND ($8 IS NULL OR id < $8) ORDER BY id DESC LIMIT $9";
pub(crate) const AUDIT_PURGE: &str = "DELETE FROM audit_events WHERE at < $1";
