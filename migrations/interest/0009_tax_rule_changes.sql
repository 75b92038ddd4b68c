-- Tax rules change by law, scheduled by ops for a future business date (POST /v1/interest/tax-rules):
-- every rule is kept with who scheduled it and why, and every change bumps one revision, which a
-- payout's quote carries and the ledger checks against the category's fence.
ALTER TABLE tax_rules
    ADD COLUMN rev          bigint      NOT NULL DEFAULT 0,
    ADD COLUMN scheduled_by text,
    ADD COLUMN reason       text,
    ADD COLUMN scheduled_at timestamptz NOT NULL DEFAULT now();
CREATE TABLE tax_rules_revision (
    id  smallint PRIMARY KEY CHECK (id = 1),
    rev bigint   NOT NULL
);
INSERT INTO tax_rules_revision VALUES (1, 0);
-- A new rule must start after the last business date this service recorded a payout of the category
-- on (the ledger checks its own booked payouts too, when the fence is raised).
CREATE INDEX payouts_category_date ON payouts (tax_category, business_date);

-- Every interest entry the ledger holds is recorded here, whoever booked it: a payout the legacy core
-- booked under a key this system used on another day too (it was dropped on the conflict, and its
-- withholding never reported). A key's first answer is still found by (account, key): the oldest.
ALTER TABLE payouts DROP CONSTRAINT payouts_account_id_idempotency_key_key;
CREATE INDEX payouts_account_key ON payouts (account_id, idempotency_key, business_date);
