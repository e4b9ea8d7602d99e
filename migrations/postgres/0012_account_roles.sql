-- Roles granted to accounts by administrators (e.g. school_operator, who records the
-- in-person recognition for Istanze OnLine). Released as the `roles` claim.
CREATE TABLE account_roles (
    account_id TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, role)
);
