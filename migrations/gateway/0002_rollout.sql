-- The rollout policy between the legacy core and the new system (one row), and every change.
CREATE TABLE rollout_changes (
    version      bigint      PRIMARY KEY,
    percent      smallint    NOT NULL CHECK (percent BETWEEN 0 AND 100),
    team         uuid[]      NOT NULL,
    staff        uuid[]      NOT NULL,
    kill_switch  boolean     NOT NULL,
    changed_by   text        NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    reason       text
);
