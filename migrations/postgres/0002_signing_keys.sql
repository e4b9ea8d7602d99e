-- OIDC signing keys (idp-core keys.rs). A key is published in the JWKS from insertion
-- until retire_at, and signs from sign_from on. Times are Unix seconds (BIGINT).
-- The private keys (PKCS#8 PEM) are stored UNENCRYPTED: access to this database is
-- access to the keys. A follow-up could wrap them with a key from the configuration.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    algorithm   TEXT NOT NULL,
    private_pem TEXT NOT NULL,
    public_jwk  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    sign_from   BIGINT NOT NULL,
    retire_at   BIGINT
);
