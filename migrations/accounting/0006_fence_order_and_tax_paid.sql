-- Every raise of a fence gets the next number, so an owner reads the fences raised after the last
-- one it saw and misses none, however long it was away (it used to look back 10 minutes).
CREATE SEQUENCE payout_fences_seq_seq;
ALTER TABLE payout_fences ADD COLUMN seq bigint NOT NULL DEFAULT nextval('payout_fences_seq_seq');
ALTER SEQUENCE payout_fences_seq_seq OWNED BY payout_fences.seq;
CREATE UNIQUE INDEX payout_fences_by_seq ON payout_fences (seq);
DROP INDEX payout_fences_changed;

-- A new tax rule must start after the last business date a payout of its category was booked on:
-- found from this index. Partial on its own key (as the product index), so lookups by account
-- never match it.
CREATE INDEX journal_entries_category_paid ON journal_entries ((payout ->> 'tax_category'), business_date)
    WHERE (payout ->> 'tax_category') IS NOT NULL;
