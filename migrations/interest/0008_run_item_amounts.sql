-- A paid item carries its payout's amounts, so the counters' trigger no longer joins `payouts`.
-- Planned while a run was young (payouts nearly empty) and kept by PL/pgSQL, that join read every
-- payout for each chunk, twice (claims too), 30-70 ms a chunk at 100,000 payouts; with the table
-- looking empty no plan choice was safe. An item paid by an older replica during an upgrade (no
-- amounts on the row) still has its payout looked up, by key, for that row alone.
ALTER TABLE payout_run_items
    ADD COLUMN gross             bigint,
    ADD COLUMN income_tax        bigint,
    ADD COLUMN local_tax         bigint,
    ADD COLUMN rural_special_tax bigint,
    ADD COLUMN net               bigint;

CREATE OR REPLACE FUNCTION payout_run_counts_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO payout_run_counts AS c (run_id, state, reason, n, gross, income_tax, local_tax, rural_special_tax, net)
    SELECT run_id, state, reason, sum(n), sum(gross), sum(income_tax), sum(local_tax), sum(rural_special_tax), sum(net)
    FROM (
        SELECT i.run_id, i.state, COALESCE(i.reason, '') AS reason, i.n,
               i.n * COALESCE(i.gross, p.gross, 0) AS gross,
               i.n * COALESCE(i.income_tax, p.income_tax, 0) AS income_tax,
               i.n * COALESCE(i.local_tax, p.local_tax, 0) AS local_tax,
               i.n * COALESCE(i.rural_special_tax, p.rural_special_tax, 0) AS rural_special_tax,
               i.n * COALESCE(i.net, p.net, 0) AS net
        FROM (SELECT 1 AS n, * FROM added UNION ALL SELECT -1, * FROM removed) i
        -- Only for a paid row without amounts (one-time filters: no scan for any other row).
        LEFT JOIN LATERAL (SELECT * FROM payouts p
                           WHERE i.payout_id IS NOT NULL AND i.gross IS NULL AND p.payout_id = i.payout_id
                           OFFSET 0) p ON true
    ) d
    GROUP BY run_id, state, reason
    HAVING sum(n) <> 0 OR sum(gross) <> 0 OR sum(net) <> 0
    ON CONFLICT (run_id, state, reason) DO UPDATE SET
        n = c.n + EXCLUDED.n, gross = c.gross + EXCLUDED.gross, income_tax = c.income_tax + EXCLUDED.income_tax,
        local_tax = c.local_tax + EXCLUDED.local_tax,
        rural_special_tax = c.rural_special_tax + EXCLUDED.rural_special_tax, net = c.net + EXCLUDED.net;
    RETURN NULL;
END $$;
