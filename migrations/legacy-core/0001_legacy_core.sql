-- The legacy core simulator's own store: its withholding configuration (in its own shape, not
-- the interest service's rules), its switchable deviations, and the payouts it made.

CREATE TABLE withholding_rates (
    tax_category        text    NOT NULL,
    effective_from      date    NOT NULL,
    -- Parts per million: income tax on the gross, local tax on the income tax, rural special tax
    -- on the gross.
    income_tax_ppm      bigint  NOT NULL,
    local_tax_ppm       bigint  NOT NULL,
    rural_special_ppm   bigint  NOT NULL,
    PRIMARY KEY (tax_category, effective_from)
);
INSERT INTO withholding_rates VALUES
  ('GENERAL',      '2015-01-01', 140000, 100000, 0),
  ('TAX_FREE',     '2015-01-01', 0,      0,      0),
  ('PREFERENTIAL', '2015-01-01', 90000,  0,      5000);

CREATE TABLE deviations (
    id          smallint    PRIMARY KEY CHECK (id = 1),
    settings    jsonb       NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are the caller's, per account (as the new system scopes them).
CREATE TABLE payouts (
    account_id      uuid        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    text        NOT NULL,
    payout_id       uuid        NOT NULL UNIQUE,
    business_date   date        NOT NULL,
    payout          jsonb       NOT NULL,
    paid_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, idempotency_key)
);
CREATE INDEX payouts_by_date ON payouts (account_id, business_date);
