-- A client's secret rotation: the replaced secret's hash, and until when it still
-- authenticates the client (the grace period the administrator chose).
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_until BIGINT;
