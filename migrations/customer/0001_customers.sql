CREATE TABLE customers (
    customer_id   uuid PRIMARY KEY,
    name          text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    status        text        NOT NULL CHECK (status IN ('ACTIVE', 'IDENTITY_THEFT', 'HACKING_VICTIM', 'DECEASED')),
    status_reason text,
    tax_category  text        NOT NULL CHECK (tax_category IN ('GENERAL', 'TAX_FREE', 'PREFERENTIAL')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Every status change, for audit: who was restricted, when and why.
CREATE TABLE customer_status_changes (
    id          bigserial PRIMARY KEY,
    customer_id uuid        NOT NULL REFERENCES customers (customer_id),
    status      text        NOT NULL,
    reason      text,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_status_changes_customer ON customer_status_changes (customer_id, id);
