-- Browser sign-in (authorization code + PKCE, OpenID Connect): the redirect URIs a client
-- registered, where it may send people after logout, whether it is the deployment's own
-- (first-party: no consent page), authorization codes, browser sessions and remembered
-- consent.

-- JSON lists of exact URIs (the Tapis `callback_url` is one more redirect URI).
ALTER TABLE clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN first_party INTEGER NOT NULL DEFAULT 0;

-- A code is stored as the SHA-256 of its secret. It is redeemed once: `used_at` is set in
-- the same statement that checks it unset, with the session (refresh family) the tokens of
-- that redemption belong to, which a second redemption revokes.
CREATE TABLE authorization_codes (
    code_hash      TEXT PRIMARY KEY,
    tenant         TEXT NOT NULL,
    client_id      TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT,
    nonce          TEXT,
    scope          TEXT,
    username       TEXT NOT NULL,
    auth_time      INTEGER NOT NULL,
    amr            TEXT,
    sid            TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    used_at        INTEGER,
    family_id      TEXT
);
CREATE INDEX authorization_codes_expires ON authorization_codes(expires_at);

-- A person signed in at the login page: the cookie holds a secret stored here as its
-- SHA-256; `sid` is the session's public id (the ID token's `sid`).
CREATE TABLE browser_sessions (
    token_hash   TEXT PRIMARY KEY,
    sid          TEXT NOT NULL UNIQUE,
    tenant       TEXT NOT NULL,
    username     TEXT NOT NULL,
    auth_time    INTEGER NOT NULL,
    amr          TEXT,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX browser_sessions_expires ON browser_sessions(expires_at);

-- What a person allowed a client (space-separated scopes); asked again for more.
CREATE TABLE consents (
    tenant     TEXT NOT NULL,
    username   TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, username, client_id)
);
