-- Tessera schema, PostgreSQL (the same tables as the SQLite schema). Times are Unix seconds.

CREATE TABLE tenants (
    name        TEXT PRIMARY KEY,
    alg         TEXT NOT NULL,
    issuer      TEXT,
    access_ttl  BIGINT,
    refresh_ttl BIGINT,
    hosts       TEXT NOT NULL DEFAULT '[]',
    created_at  BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL REFERENCES tenants(name),
    alg            TEXT NOT NULL,
    private_sealed BYTEA NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    activates_at   BIGINT NOT NULL
);
CREATE INDEX signing_keys_tenant ON signing_keys(tenant);

CREATE TABLE users (
    tenant        TEXT NOT NULL REFERENCES tenants(name),
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    BIGINT NOT NULL,
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
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant, client_id)
);

CREATE TABLE refresh_families (
    family_id  TEXT PRIMARY KEY,
    tenant     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX refresh_families_client ON refresh_families(tenant, client_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL REFERENCES refresh_families(family_id),
    tenant     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    username   TEXT,
    scope      TEXT,
    audience   TEXT NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    access_jti TEXT NOT NULL,
    access_exp BIGINT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family_id);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);

-- Revoked access tokens, kept until they would have expired anyway. Rows are numbered in
-- commit order (writers serialise on an advisory lock), so readers can follow `seq`.
CREATE TABLE revocations (
    seq        BIGSERIAL PRIMARY KEY,
    tenant     TEXT NOT NULL,
    jti        TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revocations_expires ON revocations(expires_at);

-- Change feed: what cached state every server process must reload or drop.
CREATE TABLE changes (
    seq     BIGSERIAL PRIMARY KEY,
    kind    TEXT NOT NULL,
    tenant  TEXT NOT NULL,
    subject TEXT
);
