-- OAuth/OIDC clients (the relying parties). Only the SHA-256 of a client secret is kept;
-- lists (redirect URIs, grant types) and the JWK set are JSON text. Times are Unix
-- seconds (BIGINT) so that one sqlx implementation serves SQLite and PostgreSQL alike.
CREATE TABLE clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    secret_hash               TEXT,
    auth_method               TEXT NOT NULL,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    backchannel_logout_uri    TEXT,
    grant_types               TEXT NOT NULL,
    jwks                      TEXT,
    service                   TEXT,
    enablement_uri            TEXT,
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL
);
