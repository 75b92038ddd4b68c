-- Shadow comparisons with the legacy core that found a difference: both answers, the figures
-- compared and the fields that differ.
CREATE TABLE shadow_mismatches (
    seq            bigserial   PRIMARY KEY,
    mismatch_id    uuid        NOT NULL UNIQUE,
    kind           text        NOT NULL CHECK (kind IN ('estimate', 'payout')),
    account_id     uuid        NOT NULL,
    business_date  date        NOT NULL,
    fields         text[]      NOT NULL,
    ours           jsonb       NOT NULL,
    legacy         jsonb       NOT NULL,
    -- The answers as they were: ours (estimate or payout) and the legacy core's quote.
    ours_payload   jsonb       NOT NULL,
    legacy_payload jsonb       NOT NULL,
    found_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shadow_mismatches_by_account ON shadow_mismatches (account_id, seq);
