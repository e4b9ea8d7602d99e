-- A grant: what one authorization (a code exchange) gave one client for one account.
-- Refresh tokens rotate inside it; presenting a used one revokes the whole grant.
CREATE TABLE grants (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    scope       TEXT NOT NULL,
    sid         TEXT,
    auth_time   BIGINT NOT NULL,
    acr         TEXT NOT NULL,
    amr         TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX grants_sid ON grants(sid);
CREATE INDEX grants_account ON grants(account_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);
