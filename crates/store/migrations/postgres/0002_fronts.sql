-- What the API fronts need: client and user details, tenant policy, claim sets on refresh
-- families, device codes (RFC 8628) and legacy (v2) bearer tokens.

ALTER TABLE clients ADD COLUMN callback_url TEXT;
ALTER TABLE clients ADD COLUMN description TEXT;
ALTER TABLE clients ADD COLUMN updated_at BIGINT;

ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN given_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;

-- JSON list of grant type names; NULL = every grant the server supports.
ALTER TABLE tenants ADD COLUMN allowed_grants TEXT;

ALTER TABLE refresh_tokens ADD COLUMN claim_set TEXT NOT NULL DEFAULT 'standard';
ALTER TABLE refresh_tokens ADD COLUMN refresh_count BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refresh_tokens ADD COLUMN grant_type TEXT NOT NULL DEFAULT 'password';

CREATE TABLE device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code        TEXT NOT NULL UNIQUE,
    tenant           TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    scope            TEXT,
    claim_set        TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    interval_secs    BIGINT NOT NULL,
    last_poll_at     BIGINT,
    -- pending | approved | denied | consumed
    status           TEXT NOT NULL,
    username         TEXT
);
CREATE INDEX device_codes_expires ON device_codes(expires_at);

-- Opaque bearer tokens made by token exchange for legacy clients; revoked through the
-- revocation list by their jti.
CREATE TABLE legacy_tokens (
    token_hash TEXT PRIMARY KEY,
    jti        TEXT NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    username   TEXT,
    client_id  TEXT,
    scope      TEXT,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX legacy_tokens_expires ON legacy_tokens(expires_at);
