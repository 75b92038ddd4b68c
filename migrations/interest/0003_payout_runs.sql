-- Batch payout runs (issue 8). A run pays each of its accounts through the same use case as an
-- on-demand payout, with the Idempotency-Key "run:<run_id>:<account_id>", so a resumed run never
-- pays twice.
CREATE TABLE payout_runs (
    run_id        uuid PRIMARY KEY,
    business_date date        NOT NULL,
    -- 'ALL', or 'ACCOUNTS:' and the SHA-256 of the sorted account ids.
    scope         text        NOT NULL,
    state         text        NOT NULL DEFAULT 'RUNNING' CHECK (state IN ('RUNNING', 'COMPLETED', 'EXPIRED')),
    -- Keyset cursor into account-info's listing, so enumeration resumes where it stopped.
    listing_after uuid,
    listing_done  boolean     NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    UNIQUE (business_date, scope)
);
CREATE INDEX payout_runs_running ON payout_runs (started_at) WHERE state = 'RUNNING';

CREATE TABLE payout_run_items (
    run_id        uuid        NOT NULL REFERENCES payout_runs (run_id),
    account_id    uuid        NOT NULL,
    state         text        NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'PAID', 'SKIPPED', 'FAILED')),
    -- The refusal code of a skipped account, the error of a failed one.
    reason        text,
    attempts      int         NOT NULL DEFAULT 0,
    -- A replica owns a claimed item until then; after a crash another one takes it over.
    claimed_until timestamptz,
    payout_id     uuid,
    PRIMARY KEY (run_id, account_id)
);
CREATE INDEX payout_run_items_pending ON payout_run_items (run_id, account_id) WHERE state = 'PENDING';
