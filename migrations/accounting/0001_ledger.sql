-- The balance of record per customer account: the only row a posting locks.
CREATE TABLE ledger_accounts (
    account_id       uuid PRIMARY KEY,
    opened_on        date        NOT NULL,
    balance          bigint      NOT NULL DEFAULT 0,
    -- Last day covered by an interest payout: back-dated postings must fall after it, and the next
    -- payout must start the day after it.
    paid_through     date,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Journal entries are never updated or deleted; a correction is a new entry.
CREATE TABLE journal_entries (
    seq            bigserial   UNIQUE,
    entry_id       uuid PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('DEPOSIT', 'WITHDRAWAL', 'TRANSFER', 'INTEREST_PAYOUT')),
    account_id     uuid        NOT NULL REFERENCES ledger_accounts (account_id),
    business_date  date        NOT NULL,
    value_date     date        NOT NULL,
    balance_after  bigint      NOT NULL,
    -- Interest payouts only: the payout the interest service asked for, booked exactly once.
    payout_id      uuid        UNIQUE,
    payout         jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'INTEREST_PAYOUT') = (payout_id IS NOT NULL))
);
-- The database's own guard: one interest payout per account per business date.
CREATE UNIQUE INDEX journal_entries_one_payout_a_day ON journal_entries (account_id, business_date)
    WHERE kind = 'INTEREST_PAYOUT';
CREATE INDEX journal_entries_payout_feed ON journal_entries (seq) WHERE payout_id IS NOT NULL;

CREATE TABLE journal_lines (
    entry_id       uuid     NOT NULL REFERENCES journal_entries (entry_id),
    line_no        smallint NOT NULL,
    ledger_account text     NOT NULL CHECK (ledger_account IN (
        'CUSTOMER_DEPOSITS', 'CASH', 'INTEREST_EXPENSE',
        'INCOME_TAX_PAYABLE', 'LOCAL_TAX_PAYABLE', 'RURAL_SPECIAL_TAX_PAYABLE')),
    account_id     uuid,
    debit          bigint   NOT NULL DEFAULT 0 CHECK (debit >= 0),
    credit         bigint   NOT NULL DEFAULT 0 CHECK (credit >= 0),
    PRIMARY KEY (entry_id, line_no),
    CHECK ((debit = 0) <> (credit = 0)),
    CHECK ((ledger_account = 'CUSTOMER_DEPOSITS') = (account_id IS NOT NULL))
);
CREATE INDEX journal_lines_account ON journal_lines (account_id, entry_id) WHERE account_id IS NOT NULL;

-- End-of-day balances as change points: a day's balance is the latest point on or before it.
CREATE TABLE daily_balances (
    account_id uuid   NOT NULL REFERENCES ledger_accounts (account_id),
    day        date   NOT NULL,
    balance    bigint NOT NULL,
    PRIMARY KEY (account_id, day)
);

-- First responses of money-moving requests, replayed for a retry with the same key.
CREATE TABLE idempotency_keys (
    account_id   uuid        NOT NULL,
    key          text        NOT NULL,
    operation    text        NOT NULL,
    request_hash text        NOT NULL,
    status       smallint    NOT NULL,
    response     jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
