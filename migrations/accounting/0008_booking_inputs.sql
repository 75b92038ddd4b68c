-- A payout booking in four round trips (begin, lock-and-read, write, commit) instead of nine: what
-- the rules in Rust decide on is locked and read by one call, and the end-of-day balances are
-- written by the booking's write statement itself.

-- Locks the balance rows of `p_ids` (in id order; with `p_skip_busy`, only those no other
-- transaction holds), then takes the fences of the locked accounts shared until the transaction
-- ends (a fence being raised waits for this booking, and this booking for a raise in progress),
-- then reads what a booking decides on. Rows first, then fences: the order every booking and
-- movement takes them in.
--
-- VOLATILE on purpose: each statement here takes a fresh snapshot, so the reads see whatever the
-- transactions waited for committed (a booking of the same account, a fence raised). One
-- statement of CTEs could not: its reads would keep the snapshot from before its lock waits.
--
-- The payouts' lookup is the statement `INTEREST_POSTINGS_ON_OR_UNDER` in services/accounting's
-- store.rs, whose plans store_plans.rs checks (and checks that this text still holds it).
CREATE FUNCTION booking_inputs(
    p_ids uuid[], p_skip_busy boolean, p_days date[], p_keys text[], p_froms date[], p_tos date[],
    p_subjects text[], p_subject_accounts uuid[])
-- Rows of five kinds, each with its own columns (rows, not JSON: a run's chunk reads thousands of
-- points, and building and parsing JSON for them cost more than the round trips saved):
--   'account' account_id, balance, opened_on, paid_through, history_rev   a balance row now locked
--   'busy'    account_id                                                  held by another transaction
--   'fence'   subject, rev                                                 a fence, now held shared
--   'posting' account_id, entry_id, payout, balance, created_at, seq       a payout on a day or under a key
--   'point'   account_id, day, balance                                     an end-of-day balance in a period
RETURNS TABLE (kind text, account_id uuid, balance int8, opened_on date, paid_through date, history_rev int8,
               subject text, rev int8, entry_id uuid, payout jsonb, created_at timestamptz, seq int8, day date)
LANGUAGE plpgsql VOLATILE
-- Generic plans, made once per connection: with arrays for parameters the planner keeps costing a
-- custom plan cheaper and made one at every call (0.7 ms a call against 0.27 measured). The
-- generic plans probe the indexes by account (the journal lookup's: store_plans.rs).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_locked uuid[];
    v_subjects text[];
BEGIN
    IF p_skip_busy THEN
        SELECT COALESCE(array_agg(a.account_id), '{}') INTO v_locked
        FROM (SELECT account_id FROM ledger_accounts WHERE account_id = ANY(p_ids)
              ORDER BY account_id FOR UPDATE SKIP LOCKED) a;
    ELSE
        SELECT COALESCE(array_agg(a.account_id), '{}') INTO v_locked
        FROM (SELECT account_id FROM ledger_accounts WHERE account_id = ANY(p_ids) ORDER BY account_id FOR UPDATE) a;
    END IF;
    -- The rows as locked (this statement's snapshot follows the waits).
    RETURN QUERY SELECT 'account', a.account_id, a.balance, a.opened_on, a.paid_through, a.history_rev,
                        NULL::text, NULL::int8, NULL::uuid, NULL::jsonb, NULL::timestamptz, NULL::int8, NULL::date
                 FROM ledger_accounts a WHERE a.account_id = ANY(v_locked);
    IF cardinality(v_locked) < cardinality(p_ids) THEN
        -- Not locked: held by another transaction (busy, when skipped) or never seen by the ledger.
        RETURN QUERY SELECT 'busy', a.account_id, NULL::int8, NULL::date, NULL::date, NULL::int8,
                            NULL::text, NULL::int8, NULL::uuid, NULL::jsonb, NULL::timestamptz, NULL::int8, NULL::date
                     FROM ledger_accounts a WHERE a.account_id = ANY(p_ids) AND a.account_id <> ALL(v_locked);
    END IF;

    -- The locked accounts' fences, each once, in byte order (as the movements sort theirs in Rust,
    -- whatever the database's collation): locked, then read in a statement of their own.
    SELECT COALESCE(array_agg(DISTINCT s COLLATE "C" ORDER BY s COLLATE "C"), '{}') INTO v_subjects
    FROM unnest(p_subjects, p_subject_accounts) AS u(s, a) WHERE a = ANY(v_locked);
    PERFORM pg_advisory_xact_lock_shared(hashtextextended(s, 0)) FROM unnest(v_subjects) AS s;
    RETURN QUERY SELECT 'fence', NULL::uuid, NULL::int8, NULL::date, NULL::date, NULL::int8,
                        f.s, COALESCE(pf.rev, 0), NULL::uuid, NULL::jsonb, NULL::timestamptz, NULL::int8, NULL::date
                 FROM unnest(v_subjects) AS f(s) LEFT JOIN payout_fences pf ON pf.subject = f.s;

    RETURN QUERY SELECT 'posting', p.account_id, p.balance_after, NULL::date, NULL::date, NULL::int8,
                        NULL::text, NULL::int8, p.entry_id, p.payout, p.created_at, p.seq, NULL::date FROM (
        SELECT account_id, entry_id, payout, balance_after, created_at, seq
        FROM journal_entries WHERE kind = 'INTEREST_PAYOUT' AND account_id = ANY(v_locked)
            AND business_date = ANY(p_days)
        UNION ALL
        SELECT account_id, entry_id, payout, balance_after, created_at, seq FROM journal_entries
        WHERE payout_key = ANY(p_keys)) p;

    RETURN QUERY SELECT 'point', q.account_id, p.balance, NULL::date, NULL::date, NULL::int8,
                        NULL::text, NULL::int8, NULL::uuid, NULL::jsonb, NULL::timestamptz, NULL::int8, p.point_day
    FROM unnest(p_ids, p_froms, p_tos) AS q(account_id, f, t)
    CROSS JOIN LATERAL (
        (SELECT q.f AS point_day, d.balance FROM daily_balances d WHERE d.account_id = q.account_id AND d.day <= q.f
         ORDER BY d.day DESC LIMIT 1)
        UNION ALL
        (SELECT d.day, d.balance FROM daily_balances d WHERE d.account_id = q.account_id AND d.day > q.f AND d.day <= q.t)
    ) p
    WHERE q.account_id = ANY(v_locked)
    ORDER BY q.account_id, p.point_day;
END
$$;

-- Applies each `delta` to its account's end-of-day balances from its `day` on (each account at most
-- once); answers the points written. A point at the day (from the one before it) and every later
-- point shifted: right for a posting dated today and for a back-dated one, and for one dated before
-- points that exist only because a manual clock went back (found by the chaos workload: a daily
-- balance that no longer matched the journal, and payouts computed from it). Both parts of the
-- statement see the rows as they were before it, so a new point is written shifted already and the
-- shift updates only the points that existed (a point at the day included). Every caller holds the
-- accounts' balance rows locked. A function so that a booking's write statement can do it too.
-- PL/pgSQL rather than SQL, and a generic plan: its plan is made once per connection (a SQL
-- function's is made again at every call before PostgreSQL 18).
CREATE FUNCTION apply_to_daily_balances(p_ids uuid[], p_days date[], p_deltas int8[])
RETURNS bigint LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    v_points bigint;
BEGIN
    WITH u AS (SELECT * FROM UNNEST(p_ids, p_days, p_deltas) AS u(id, day, delta)),
         added AS (
             INSERT INTO daily_balances (account_id, day, balance)
             SELECT u.id, u.day, u.delta + COALESCE((SELECT d.balance FROM daily_balances d
                                                     WHERE d.account_id = u.id AND d.day < u.day
                                                     ORDER BY d.day DESC LIMIT 1), 0)
             FROM u
             ON CONFLICT (account_id, day) DO NOTHING
             RETURNING 1),
         shifted AS (
             UPDATE daily_balances d SET balance = d.balance + u.delta FROM u
             WHERE d.account_id = u.id AND d.day >= u.day
             RETURNING 1)
    SELECT (SELECT count(*) FROM added) + (SELECT count(*) FROM shifted) INTO v_points;
    RETURN v_points;
END
$$;
