CREATE TABLE accounts (
    account_id           uuid PRIMARY KEY,
    -- Immutable after opening: owner, product, opening date.
    customer_id          uuid        NOT NULL,
    product_code         text        NOT NULL,
    opened_on            date        NOT NULL,
    -- Mutable: status and holds.
    status               text        NOT NULL CHECK (status IN ('ACTIVE', 'DORMANT', 'CLOSED')),
    deposit_suspended    boolean     NOT NULL DEFAULT false,
    withdrawal_suspended boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX accounts_customer ON accounts (customer_id);
-- Keyset listing by product and status for batch runs.
CREATE INDEX accounts_listing ON accounts (product_code, status, account_id);
