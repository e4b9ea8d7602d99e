-- Istanze OnLine's own data for the abilitazione al servizio (SQLite).

-- One row per person (the IdP's `sub`) who started the abilitazione.
-- status: draft (form confirmed) -> cpt_sent (Accetto) -> pending (CPT checked,
-- waiting for the recognition at a school) -> active (recognised, or SPID).
CREATE TABLE istanze_enrolments (
    sub                  TEXT PRIMARY KEY,
    assurance            TEXT NOT NULL,
    status               TEXT NOT NULL,
    given_name           TEXT NOT NULL,
    family_name          TEXT NOT NULL,
    fiscal_code          TEXT NOT NULL,
    email                TEXT NOT NULL,
    address              TEXT NOT NULL,
    country              TEXT NOT NULL,
    province             TEXT NOT NULL,
    municipality         TEXT NOT NULL,
    mobile_phone         TEXT NOT NULL,
    home_phone           TEXT NOT NULL,
    document_type        TEXT NOT NULL,
    document_number      TEXT NOT NULL,
    document_issuer      TEXT NOT NULL,
    document_date        TEXT NOT NULL,
    recovery_question    TEXT NOT NULL,
    -- argon2 of the answer, lowercased and without accents
    recovery_answer_hash TEXT NOT NULL,
    recovery_attempts    INTEGER NOT NULL DEFAULT 0,
    recovery_locked      INTEGER NOT NULL DEFAULT 0,
    -- argon2 of the personal code (temporary while code_is_temporary = 1)
    code_hash            TEXT,
    code_is_temporary    INTEGER NOT NULL DEFAULT 1,
    code_attempts        INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE INDEX istanze_enrolments_fiscal_code ON istanze_enrolments (fiscal_code);

-- Who recognised whom, when, and how.
CREATE TABLE istanze_recognitions (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    sub                     TEXT NOT NULL REFERENCES istanze_enrolments (sub),
    operator_sub            TEXT NOT NULL,
    operator_name           TEXT NOT NULL,
    method                  TEXT NOT NULL, -- in_person | delegate
    presented_document_type TEXT NOT NULL,
    presented_document_number TEXT NOT NULL,
    delegate_name           TEXT,
    delegate_document_type  TEXT,
    delegate_document_number TEXT,
    recognised_at           INTEGER NOT NULL
);

-- The mails the service sent (the demo's and the tests' outbox; kept with SMTP too).
CREATE TABLE istanze_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    to_address  TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    -- JSON: [{"filename", "content_type", "base64"}]
    attachments TEXT NOT NULL,
    sent_at     INTEGER NOT NULL
);

-- A sample application sent with the personal code.
CREATE TABLE istanze_applications (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    sub        TEXT NOT NULL,
    subject    TEXT NOT NULL,
    sent_at    INTEGER NOT NULL
);
