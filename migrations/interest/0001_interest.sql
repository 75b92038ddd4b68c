CREATE TABLE products (
    code       text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Bands are stored as validated JSON: [{"from":0,"to":50000000,"rate":"2.3"}, ...].
CREATE TABLE rate_schedules (
    product_code   text        NOT NULL REFERENCES products (code),
    effective_from date        NOT NULL,
    bands          jsonb       NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (product_code, effective_from)
);

-- Withholding rules as effective-dated data: components in order, each a rate (millionths) on the
-- gross or on an earlier component, truncated to 10 won.
CREATE TABLE tax_rules (
    category       text  NOT NULL CHECK (category IN ('GENERAL', 'TAX_FREE', 'PREFERENTIAL')),
    effective_from date  NOT NULL,
    components     jsonb NOT NULL,
    PRIMARY KEY (category, effective_from)
);
INSERT INTO tax_rules (category, effective_from, components) VALUES
  ('GENERAL', '2015-01-01', '[{"component":"income_tax","base":"gross","rate_millionths":140000},
                              {"component":"local_tax","base":{"component":"income_tax"},"rate_millionths":100000}]'),
  ('TAX_FREE', '2015-01-01', '[]'),
  ('PREFERENTIAL', '2015-01-01', '[{"component":"income_tax","base":"gross","rate_millionths":90000},
                                   {"component":"rural_special_tax","base":"gross","rate_millionths":5000}]');

-- Payouts, as booked by the ledger. The row is also the tax event's outbox entry.
CREATE TABLE payouts (
    payout_id              uuid PRIMARY KEY,
    account_id             uuid        NOT NULL,
    customer_id            uuid        NOT NULL,
    product_code           text        NOT NULL,
    business_date          date        NOT NULL,
    period_from            date        NOT NULL,
    period_to              date        NOT NULL,
    gross                  bigint      NOT NULL CHECK (gross >= 1),
    income_tax             bigint      NOT NULL,
    local_tax              bigint      NOT NULL,
    rural_special_tax      bigint      NOT NULL,
    net                    bigint      NOT NULL,
    tax_category           text        NOT NULL,
    carry_in_units         bigint      NOT NULL,
    carry_units            bigint      NOT NULL,
    balance_after          bigint      NOT NULL,
    entry_id               uuid        NOT NULL,
    idempotency_key        text        NOT NULL,
    request_hash           text        NOT NULL,
    created_at             timestamptz NOT NULL,
    tax_event_id           uuid        NOT NULL UNIQUE,
    tax_event_published_at timestamptz,
    trace_headers          jsonb       NOT NULL DEFAULT '{}',
    UNIQUE (account_id, business_date),
    UNIQUE (account_id, idempotency_key),
    CHECK (net + income_tax + local_tax + rural_special_tax = gross)
);
CREATE INDEX payouts_account ON payouts (account_id, business_date DESC);
CREATE INDEX payouts_product_period ON payouts (product_code, period_to DESC);
CREATE INDEX payouts_outbox ON payouts (created_at) WHERE tax_event_published_at IS NULL;

-- How far the recovery worker has read the ledger's payout feed.
CREATE TABLE ledger_feed_cursor (
    id       smallint PRIMARY KEY CHECK (id = 1),
    last_seq bigint NOT NULL
);
INSERT INTO ledger_feed_cursor VALUES (1, 0);
