-- The audit trail: one row per event, in the order written (id). Names and ids only: never a
-- password, a secret or a whole token. Rows older than the retention are deleted by the
-- purge loop.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    tenant     TEXT NOT NULL,
    event      TEXT NOT NULL,
    actor_kind TEXT NOT NULL,
    actor_name TEXT,
    subject    TEXT,
    client_id  TEXT,
    address    TEXT,
    outcome    TEXT NOT NULL,
    request_id TEXT,
    detail     TEXT
);
CREATE INDEX audit_events_tenant ON audit_events(tenant, id);
CREATE INDEX audit_events_at ON audit_events(at);
