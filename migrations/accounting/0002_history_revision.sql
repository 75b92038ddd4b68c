-- Bumped by every posting that changes a past day's balance (back-dated) and by every interest
-- payout: what an interest estimate depends on. Published to Redis after commit, and republished
-- at start-up for the last day's changes (platform::revision).
ALTER TABLE ledger_accounts
    ADD COLUMN history_rev        bigint      NOT NULL DEFAULT 0,
    ADD COLUMN history_changed_at timestamptz;
