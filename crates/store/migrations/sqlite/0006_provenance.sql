-- How the user behind a refresh family authenticated (OpenID Connect auth_time, RFC 8176
-- amr, space-separated), carried by every access token the family mints.
ALTER TABLE refresh_families ADD COLUMN auth_time INTEGER;
ALTER TABLE refresh_families ADD COLUMN amr TEXT;
-- The sessions and API key a legacy token was minted from (space-separated): revoking any
-- of them ends the legacy token too.
ALTER TABLE legacy_tokens ADD COLUMN chain TEXT;
