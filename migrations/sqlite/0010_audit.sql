-- The audit log of security events. No foreign keys: an event outlives the account or
-- client it names, and a failed sign-in may name no account at all. Old rows are
-- deleted by the audit-retention job after [audit] retention_days.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    account_id  TEXT,
    client_id   TEXT,
    ip          TEXT,
    detail      TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_account ON audit_events(account_id, at);
CREATE INDEX audit_events_client ON audit_events(client_id, at);
CREATE INDEX audit_events_kind ON audit_events(kind, at);
