-- Business refusals of payout requests (NOTHING_TO_PAY, ALREADY_PAID_TODAY, CUSTOMER_RESTRICTED,
-- ACCOUNT_NOT_ACTIVE, DEPOSIT_SUSPENDED), kept against their Idempotency-Key so a retry with the
-- same key gets the same answer, as a success is replayed from `payouts`.
CREATE TABLE payout_refusals (
    account_id      uuid        NOT NULL,
    idempotency_key text        NOT NULL,
    request_hash    text        NOT NULL,
    status          smallint    NOT NULL,
    code            text        NOT NULL,
    detail          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, idempotency_key)
);
