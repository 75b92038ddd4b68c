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
RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_locked uuid[];
    v_accounts jsonb;
    v_busy jsonb := '[]';
    v_fences jsonb;
    v_postings jsonb;
    v_points jsonb;
BEGIN
    IF p_skip_busy THEN
        SELECT COALESCE(array_agg(a.account_id), '{}'), COALESCE(jsonb_agg(to_jsonb(a)), '[]')
        INTO v_locked, v_accounts
        FROM (SELECT account_id, balance, opened_on, paid_through, history_rev FROM ledger_accounts
              WHERE account_id = ANY(p_ids) ORDER BY account_id FOR UPDATE SKIP LOCKED) a;
        IF cardinality(v_locked) < cardinality(p_ids) THEN
            -- Not locked: held by another transaction (busy) or never seen by the ledger.
            SELECT COALESCE(jsonb_agg(account_id), '[]') INTO v_busy FROM ledger_accounts
            WHERE account_id = ANY(p_ids) AND account_id <> ALL(v_locked);
        END IF;
    ELSE
        SELECT COALESCE(array_agg(a.account_id), '{}'), COALESCE(jsonb_agg(to_jsonb(a)), '[]')
        INTO v_locked, v_accounts
        FROM (SELECT account_id, balance, opened_on, paid_through, history_rev FROM ledger_accounts
              WHERE account_id = ANY(p_ids) ORDER BY account_id FOR UPDATE) a;
    END IF;

    PERFORM pg_advisory_xact_lock_shared(hashtextextended(f.s, 0))
    FROM (SELECT DISTINCT s FROM unnest(p_subjects, p_subject_accounts) AS u(s, a) WHERE a = ANY(v_locked)
          ORDER BY s) f;
    SELECT COALESCE(jsonb_agg(jsonb_build_object('subject', f.s, 'rev', COALESCE(pf.rev, 0))), '[]') INTO v_fences
    FROM (SELECT DISTINCT s FROM unnest(p_subjects, p_subject_accounts) AS u(s, a) WHERE a = ANY(v_locked)) f
    LEFT JOIN payout_fences pf ON pf.subject = f.s;

    SELECT COALESCE(jsonb_agg(to_jsonb(p)), '[]') INTO v_postings FROM (
        SELECT account_id, entry_id, payout, balance_after, created_at, seq
        FROM journal_entries WHERE kind = 'INTEREST_PAYOUT' AND account_id = ANY(v_locked)
            AND business_date = ANY(p_days)
        UNION ALL
        SELECT account_id, entry_id, payout, balance_after, created_at, seq FROM journal_entries
        WHERE payout_key = ANY(p_keys)) p;

    SELECT COALESCE(jsonb_agg(jsonb_build_object('account_id', q.account_id, 'date', p.point_day, 'balance', p.balance)
                              ORDER BY q.account_id, p.point_day), '[]')
    INTO v_points
    FROM unnest(p_ids, p_froms, p_tos) AS q(account_id, f, t)
    CROSS JOIN LATERAL (
        (SELECT q.f AS point_day, d.balance FROM daily_balances d WHERE d.account_id = q.account_id AND d.day <= q.f
         ORDER BY d.day DESC LIMIT 1)
        UNION ALL
        (SELECT d.day, d.balance FROM daily_balances d WHERE d.account_id = q.account_id AND d.day > q.f AND d.day <= q.t)
    ) p
    WHERE q.account_id = ANY(v_locked);

    RETURN jsonb_build_object('accounts', v_accounts, 'busy', v_busy, 'fences', v_fences, 'postings', v_postings,
                              'points', v_points);
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
CREATE FUNCTION apply_to_daily_balances(p_ids uuid[], p_days date[], p_deltas int8[])
RETURNS bigint LANGUAGE sql VOLATILE AS $$
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
    SELECT (SELECT count(*) FROM added) + (SELECT count(*) FROM shifted)
$$;
