-- Two-factor policy: a tenant that requires TOTP of every user, and users required to have it.
ALTER TABLE tenants ADD COLUMN totp_required INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN totp_required INTEGER NOT NULL DEFAULT 0;
