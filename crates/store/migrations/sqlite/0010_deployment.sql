-- Settings of the whole deployment, which every node of one database must agree on
-- (`public_url`: the base of the default issuers, with how it was chosen).
CREATE TABLE deployment (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
