-- A key names one payout of an account, whatever day it was booked on: a booking looks its key up
-- under the balance-row lock (which every booking of the account takes) and replays what it finds.
-- On the key alone and partial on its own key, so lookups by account never match it (see 0005).
CREATE INDEX journal_entries_payout_key ON journal_entries ((payout ->> 'idempotency_key'))
    WHERE (payout ->> 'idempotency_key') IS NOT NULL;
