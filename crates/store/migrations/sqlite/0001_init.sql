-- Tessera schema, SQLite. Times are Unix seconds.

CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    issuer      TEXT,
    access_ttl  INTEGER,
    refresh_ttl INTEGER,
    hosts       TEXT NOT NULL DEFAULT '[]',
    created_at  INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL REFERENCES tenants(name),
    alg            TEXT NOT NULL,
    private_sealed BLOB NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    activates_at   INTEGER NOT NULL
);
CREATE INDEX signing_keys_tenant ON signing_keys(tenant);

CREATE TABLE users (
    tenant        TEXT NOT NULL REFERENCES tenants(name),
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant, username)
);

CREATE TABLE clients (
    tenant      TEXT NOT NULL REFERENCES tenants(name),
    client_id   TEXT NOT NULL,
    name        TEXT NOT NULL,
    secret_hash TEXT,
    grants      TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    owner       TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, client_id)
);

CREATE TABLE refresh_families (
    family_id  TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families(family_id),
    tenant     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    username   TEXT,
    scope      TEXT,
    audience   TEXT NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    access_jti TEXT NOT NULL,
    access_exp INTEGER NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);

-- Revoked access tokens, kept until they would have expired anyway.
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant     TEXT NOT NULL,
    jti        TEXT NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revocations_expires ON revocations(expires_at);

-- Change feed: what cached state every server process must reload or drop.
CREATE TABLE changes (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    kind    TEXT NOT NULL,
    tenant  TEXT NOT NULL,
    subject TEXT
);
