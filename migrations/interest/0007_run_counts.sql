-- A run's progress as counters (issue 15): items per state and reason with the amounts of the paid
-- ones, kept by statement-level triggers in the same transaction as every change of the items, so
-- reading a run's progress no longer aggregates all its items. A chunk's outcomes are one
-- statement: one counter update per (state, reason) it touched.
CREATE TABLE payout_run_counts (
    run_id            uuid   NOT NULL REFERENCES payout_runs (run_id),
    state             text   NOT NULL,
    reason            text   NOT NULL DEFAULT '',
    n                 bigint NOT NULL,
    gross             bigint NOT NULL,
    income_tax        bigint NOT NULL,
    local_tax         bigint NOT NULL,
    rural_special_tax bigint NOT NULL,
    net               bigint NOT NULL,
    PRIMARY KEY (run_id, state, reason)
);

-- Items leaving a (state, reason) are subtracted, items entering one added; a statement that
-- changes no state (a claim) nets to nothing and writes nothing.
CREATE FUNCTION payout_run_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payout_run_counts AS c (run_id, state, reason, n, gross, income_tax, local_tax, rural_special_tax, net)
    SELECT run_id, state, reason, sum(n), sum(gross), sum(income_tax), sum(local_tax), sum(rural_special_tax), sum(net)
    FROM (
        SELECT i.run_id, i.state, COALESCE(i.reason, '') AS reason, 1 AS n,
               COALESCE(p.gross, 0) AS gross, COALESCE(p.income_tax, 0) AS income_tax,
               COALESCE(p.local_tax, 0) AS local_tax, COALESCE(p.rural_special_tax, 0) AS rural_special_tax,
               COALESCE(p.net, 0) AS net
        FROM added i LEFT JOIN payouts p ON p.payout_id = i.payout_id
        UNION ALL
        SELECT i.run_id, i.state, COALESCE(i.reason, ''), -1,
               -COALESCE(p.gross, 0), -COALESCE(p.income_tax, 0), -COALESCE(p.local_tax, 0),
               -COALESCE(p.rural_special_tax, 0), -COALESCE(p.net, 0)
        FROM removed i LEFT JOIN payouts p ON p.payout_id = i.payout_id
    ) d
    GROUP BY run_id, state, reason
    HAVING sum(n) <> 0 OR sum(gross) <> 0 OR sum(net) <> 0
    ON CONFLICT (run_id, state, reason) DO UPDATE SET
        n = c.n + EXCLUDED.n, gross = c.gross + EXCLUDED.gross, income_tax = c.income_tax + EXCLUDED.income_tax,
        local_tax = c.local_tax + EXCLUDED.local_tax,
        rural_special_tax = c.rural_special_tax + EXCLUDED.rural_special_tax, net = c.net + EXCLUDED.net;
    RETURN NULL;
END $$;

CREATE FUNCTION payout_run_counts_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payout_run_counts AS c (run_id, state, reason, n, gross, income_tax, local_tax, rural_special_tax, net)
    SELECT run_id, state, COALESCE(reason, ''), count(*), 0, 0, 0, 0, 0 FROM added GROUP BY 1, 2, 3
    ON CONFLICT (run_id, state, reason) DO UPDATE SET n = c.n + EXCLUDED.n;
    RETURN NULL;
END $$;

LOCK TABLE payout_run_items IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER payout_run_items_counted_on_insert AFTER INSERT ON payout_run_items
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION payout_run_counts_on_insert();
CREATE TRIGGER payout_run_items_counted_on_update AFTER UPDATE ON payout_run_items
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION payout_run_counts_on_update();

-- Runs made before the counters: counted once, from their items.
INSERT INTO payout_run_counts (run_id, state, reason, n, gross, income_tax, local_tax, rural_special_tax, net)
SELECT i.run_id, i.state, COALESCE(i.reason, ''), count(*),
       COALESCE(sum(p.gross), 0), COALESCE(sum(p.income_tax), 0), COALESCE(sum(p.local_tax), 0),
       COALESCE(sum(p.rural_special_tax), 0), COALESCE(sum(p.net), 0)
FROM payout_run_items i LEFT JOIN payouts p ON p.payout_id = i.payout_id
GROUP BY 1, 2, 3;
