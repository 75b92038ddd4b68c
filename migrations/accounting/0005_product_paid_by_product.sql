-- The product index is partial on its own key (`product_code IS NOT NULL`: the same rows, every
-- payout names its product) rather than on `kind = 'INTEREST_PAYOUT'`, so that only a query by
-- product can use it. The lookups by account say `kind = 'INTEREST_PAYOUT'`; on a freshly loaded
-- ledger the statistics show no payouts, both partial indexes looked empty, and the planner walked
-- this one whole with an account filter: 30-130 ms a chunk's lookup by the end of a 100,000-account
-- run, instead of one probe of the (account, business date) index per account.
DROP INDEX journal_entries_product_paid;
CREATE INDEX journal_entries_product_paid ON journal_entries ((payout ->> 'product_code'), (payout ->> 'period_to'))
    WHERE (payout ->> 'product_code') IS NOT NULL;
