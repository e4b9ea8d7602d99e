-- Single-use links sent by email (registration, password reset, email change): only
-- the SHA-256 of the token is kept. The payload is JSON text.
CREATE TABLE email_links (
    token_hash  TEXT PRIMARY KEY,
    purpose     TEXT NOT NULL,
    account_id  TEXT,
    payload     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX email_links_account ON email_links(account_id, purpose);

-- Privacy consents given at registration, with the version of the text and the time.
CREATE TABLE consents (
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    version     TEXT NOT NULL,
    accepted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, kind, version)
);
