-- Every replay of a dead letter: who, when, and what came of it (the dead_letters row keeps the last).
CREATE TABLE dead_letter_replays (
    dead_letter_id bigint      NOT NULL REFERENCES dead_letters (id),
    replayed_by    text        NOT NULL,
    replayed_at    timestamptz NOT NULL DEFAULT now(),
    result         text        NOT NULL
);
CREATE INDEX dead_letter_replays_by_letter ON dead_letter_replays (dead_letter_id, replayed_at);
