-- Fences raised by the owners of a payout's inputs before they commit a change (account status and
-- holds, customer status and tax category, a product's rate schedules). A booking quoted at an older
-- revision of any of its subjects is refused (QUOTE_STALE); raising a fence waits, on an exclusive
-- advisory lock, for the bookings in flight on that subject (they hold it shared).
CREATE TABLE payout_fences (
    subject    text PRIMARY KEY,
    rev        bigint      NOT NULL,
    changed_at timestamptz NOT NULL DEFAULT now()
);

-- A new rate schedule must start after every booked payout of the product: found from this index
-- (ISO dates compare as text).
CREATE INDEX journal_entries_product_paid ON journal_entries ((payout ->> 'product_code'), (payout ->> 'period_to'))
    WHERE kind = 'INTEREST_PAYOUT';
