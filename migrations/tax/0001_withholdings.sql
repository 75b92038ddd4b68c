-- One record per payout; a redelivered event is a no-op thanks to the primary key.
CREATE TABLE withholdings (
    payout_id         uuid PRIMARY KEY,
    event_id          uuid        NOT NULL,
    account_id        uuid        NOT NULL,
    customer_id       uuid        NOT NULL,
    business_date     date        NOT NULL,
    gross             bigint      NOT NULL,
    income_tax        bigint      NOT NULL,
    local_tax         bigint      NOT NULL,
    rural_special_tax bigint      NOT NULL,
    tax_category      text        NOT NULL,
    occurred_at       timestamptz NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    source_topic      text        NOT NULL,
    source_partition  integer     NOT NULL,
    source_offset     bigint      NOT NULL
);
CREATE INDEX withholdings_account ON withholdings (account_id, business_date);
CREATE INDEX withholdings_date ON withholdings (business_date);

-- Messages the consumer could not process, for ops to inspect and replay.
CREATE TABLE dead_letters (
    id               bigserial PRIMARY KEY,
    source_topic     text        NOT NULL,
    source_partition integer     NOT NULL,
    source_offset    bigint      NOT NULL,
    message_key      text,
    payload          text        NOT NULL,
    headers          jsonb       NOT NULL DEFAULT '{}',
    error            text        NOT NULL,
    attempts         integer     NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at      timestamptz,
    replayed_by      text,
    replay_result    text,
    UNIQUE (source_topic, source_partition, source_offset)
);
