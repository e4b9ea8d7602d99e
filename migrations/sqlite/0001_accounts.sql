-- Accounts: one store for every linked service. Times are Unix seconds (INTEGER) so that
-- one sqlx implementation serves SQLite and PostgreSQL alike.
CREATE TABLE accounts (
    id                   TEXT PRIMARY KEY,
    username             TEXT NOT NULL UNIQUE,
    kind                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    fiscal_code          TEXT UNIQUE,
    given_name           TEXT NOT NULL,
    family_name          TEXT NOT NULL,
    birth_date           TEXT,
    birth_place          TEXT,
    sex                  TEXT,
    personal_email       TEXT,
    institutional_email  TEXT,
    password_hash        TEXT,
    password_must_change INTEGER NOT NULL DEFAULT 0,
    password_expires_at  INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE password_history (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX password_history_account ON password_history(account_id, seq);

-- Mail kept by the development outbox (demo mode lists it on a page).
CREATE TABLE mail_outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body_text  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE mail_attachments (
    mail_id      TEXT NOT NULL REFERENCES mail_outbox(id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    content      BLOB NOT NULL,
    PRIMARY KEY (mail_id, position)
);
