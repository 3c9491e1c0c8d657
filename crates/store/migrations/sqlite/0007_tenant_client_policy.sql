-- How many clients a user who is not an administrator may own through a front's client API
-- (NULL: the deployment default, 0), and the longest access-token lifetime the tenant has
-- had (NULL: its current one), which a replaced signing key stays published for.
ALTER TABLE tenants ADD COLUMN max_user_clients BIGINT;
ALTER TABLE tenants ADD COLUMN longest_access_ttl BIGINT;
