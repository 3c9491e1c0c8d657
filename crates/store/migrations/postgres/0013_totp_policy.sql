-- Two-factor policy: a tenant that requires TOTP of every user, and users required to have it.
ALTER TABLE tenants ADD COLUMN totp_required BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE users ADD COLUMN totp_required BOOLEAN NOT NULL DEFAULT FALSE;
