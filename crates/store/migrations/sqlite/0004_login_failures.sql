-- Failed sign-in counters for brute-force limits, shared by every node. One fixed window
-- per key ("u:<tenant>:<username>" or "a:<address>"), starting at its first failure.
CREATE TABLE login_failures (
    key          TEXT PRIMARY KEY,
    window_start BIGINT NOT NULL,
    failures     BIGINT NOT NULL
);
CREATE INDEX login_failures_window ON login_failures(window_start);
