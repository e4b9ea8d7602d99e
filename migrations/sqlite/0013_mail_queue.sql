-- Mail waiting for delivery (see idp_core::mail_queue). A row is written in the same
-- transaction as the state change it announces, claimed by one instance at a time
-- (claim_token, claimed_until: a lease that expires if the instance dies), and deleted
-- once the mail server accepted it. A mail given up on keeps its recipient, subject and
-- last error, never its body, until the retention job deletes it.
CREATE TABLE mail_queue (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claim_token     TEXT,
    claimed_until   INTEGER,
    last_error      TEXT,
    failed_at       INTEGER
);
CREATE INDEX mail_queue_due ON mail_queue (next_attempt_at);
