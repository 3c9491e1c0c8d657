-- The browser sessions of a user, for the admin API and self-service (list, end all).
CREATE INDEX browser_sessions_user ON browser_sessions(tenant, username);
