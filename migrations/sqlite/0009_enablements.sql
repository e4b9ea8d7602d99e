-- Enablement of an account for a relying party's service (Istanze OnLine's
-- abilitazione): the service records the outcome of its own steps here.
CREATE TABLE enablements (
    account_id  TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    service     TEXT NOT NULL,
    status      TEXT NOT NULL,
    updated_by  TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, service)
);
