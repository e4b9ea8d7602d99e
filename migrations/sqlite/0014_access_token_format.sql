-- What the access tokens issued to a client are: "jwt" (RFC 9068, signed) or "opaque"
-- (a random reference resolved by the IdP, its claims kept in the cache). Existing
-- clients keep JWTs.
ALTER TABLE clients ADD COLUMN access_token_format TEXT NOT NULL DEFAULT 'jwt'
    CHECK (access_token_format IN ('jwt', 'opaque'));
