-- The audit trail: one row per event, in the order written (id). Names and ids only: never a
-- password, a secret or a whole token. Rows older than the retention are deleted by the
-- purge loop.
CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
