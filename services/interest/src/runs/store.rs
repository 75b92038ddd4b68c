//! SQL for payout runs and their items. Every statement is checked against the schema at compile
//! time (`sqlx::query!` and friends, with the offline metadata in `.sqlx/`), except the claim and
//! the outcomes, which the plan tests in `store_plans.rs` also run (their text is shared: the claim
//! is `query_as` into [`Claimed`], the outcomes return no rows).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use contracts::{PayoutRun, PayoutRunSummary, RunScope, RunState, RunTotals};
use domain::{TaxBreakdown, Withheld};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use super::ItemState;

pub struct Run {
    pub run_id: Uuid,
    pub business_date: NaiveDate,
    pub listing_done: bool,
}

/// Creates a run (with its items when the scope is a list), or resumes the same date and scope's
/// cancelled run. `Err(existing id)` when a run for them exists and was not cancelled.
pub async fn create_run(
    pool: &PgPool,
    business_date: NaiveDate,
    scope: &str,
    accounts: Option<&[Uuid]>,
) -> Result<Result<Uuid, Uuid>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let run_id = Uuid::new_v4();
    let inserted = sqlx::query!(
        "INSERT INTO payout_runs (run_id, business_date, scope, listing_done) VALUES ($1, $2, $3, $4)
         ON CONFLICT (business_date, scope) DO NOTHING",
        run_id,
        business_date,
        scope,
        accounts.is_some(),
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        let existing = sqlx::query!(
            "SELECT run_id, state FROM payout_runs WHERE business_date = $1 AND scope = $2 FOR UPDATE",
            business_date,
            scope,
        )
        .fetch_one(&mut *tx)
        .await?;
        if run_state(&existing.state)? != RunState::Cancelled {
            return Ok(Err(existing.run_id));
        }
        let existing = existing.run_id;
        sqlx::query!("UPDATE payout_runs SET state = 'RUNNING', finished_at = NULL WHERE run_id = $1", existing)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Ok(existing));
    }
    if let Some(ids) = accounts {
        add_items(&mut tx, run_id, ids).await?;
    }
    tx.commit().await?;
    Ok(Ok(run_id))
}

pub async fn add_items(tx: &mut Transaction<'_, Postgres>, run_id: Uuid, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO payout_run_items (run_id, account_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING",
        run_id,
        ids,
    )
    .execute(&mut **tx)
    .await
    .map(|_| ())
}

/// Stops a running run: no account of it is claimed after this commits (a chunk in flight finishes
/// and records its outcomes). The run's state after the attempt, `None` if there is no such run.
pub async fn cancel(pool: &PgPool, run_id: Uuid) -> Result<Option<RunState>, sqlx::Error> {
    sqlx::query!(
        "UPDATE payout_runs SET state = 'CANCELLED', finished_at = now() WHERE run_id = $1 AND state = 'RUNNING'",
        run_id,
    )
    .execute(pool)
    .await?;
    let state =
        sqlx::query_scalar!("SELECT state FROM payout_runs WHERE run_id = $1", run_id).fetch_optional(pool).await?;
    state.as_deref().map(run_state).transpose()
}

/// The latest runs, newest first.
pub async fn list(pool: &PgPool, limit: i64) -> Result<Vec<PayoutRunSummary>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT run_id, business_date, scope, state, started_at, finished_at FROM payout_runs
         ORDER BY started_at DESC LIMIT $1",
        limit,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(PayoutRunSummary {
                run_id: r.run_id,
                business_date: r.business_date,
                scope: run_scope(&r.scope),
                state: run_state(&r.state)?,
                started_at: r.started_at,
                finished_at: r.finished_at,
            })
        })
        .collect()
}

pub async fn running(pool: &PgPool) -> Result<Vec<Run>, sqlx::Error> {
    sqlx::query_as!(
        Run,
        "SELECT run_id, business_date, listing_done FROM payout_runs WHERE state = 'RUNNING'
         ORDER BY started_at",
    )
    .fetch_all(pool)
    .await
}

/// Takes the run's enumeration for one page, unless another replica holds it: the caller fetches
/// the page and calls [`advance_listing`] before committing. The hold is an advisory lock, not the
/// run row: claims share-lock that row, and would otherwise wait for every page's fetch.
pub async fn lock_listing(
    tx: &mut Transaction<'_, Postgres>,
    run_id: Uuid,
) -> Result<Option<(Option<Uuid>, bool)>, sqlx::Error> {
    let held = sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock(hashtextextended('run-listing:' || $1, 0)) AS "held!""#,
        run_id.to_string(),
    )
    .fetch_one(&mut **tx)
    .await?;
    if !held {
        return Ok(None);
    }
    let row = sqlx::query!(
        "SELECT listing_after, listing_done FROM payout_runs WHERE run_id = $1 AND state = 'RUNNING'",
        run_id,
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| (r.listing_after, r.listing_done)))
}

/// Moves the run's enumeration on; `false` (the caller rolls back, with the page's items) when the
/// run stopped running meanwhile, so a cancelled run gains no items.
pub async fn advance_listing(
    tx: &mut Transaction<'_, Postgres>,
    run_id: Uuid,
    after: Option<Uuid>,
    done: bool,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query!(
        "UPDATE payout_runs SET listing_after = $2, listing_done = $3 WHERE run_id = $1 AND state = 'RUNNING'",
        run_id,
        after,
        done,
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// An item claimed: its account and how many times it has been claimed, this claim included.
#[derive(sqlx::FromRow)]
struct Claimed {
    account_id: Uuid,
    attempts: i32,
}

const CLAIM: &str = "WITH run AS (SELECT run_id FROM payout_runs WHERE run_id = $1 AND state = 'RUNNING' FOR SHARE),
         c AS MATERIALIZED (SELECT account_id FROM payout_run_items
               WHERE run_id = $1 AND state = 'PENDING' AND (claimed_until IS NULL OR claimed_until < now())
                 AND account_id >= $4
               ORDER BY account_id LIMIT $2 FOR UPDATE SKIP LOCKED)
         UPDATE payout_run_items i SET claimed_until = now() + $3 * interval '1 millisecond', attempts = i.attempts + 1
         FROM c, run
         WHERE i.run_id = $1 AND i.account_id = c.account_id
         RETURNING i.account_id, i.attempts";

/// Claims up to `limit` pending items nobody holds, for `lease_ms`, only while the run is running:
/// the run row is share-locked in the same statement, so a claim and a cancellation serialize and
/// nothing is claimed once a cancellation has committed. Returns (account, attempts). The items are
/// picked in a materialized CTE: as a subquery in the UPDATE's FROM, PostgreSQL could rescan the
/// `LIMIT … SKIP LOCKED` pick and claim several times `limit` (seen: 1,200 items for 200).
///
/// Items are picked in account order from `after` on (the worker's last claim, which is held or
/// done by now; `None` from the start, an index condition either way): from the start every time,
/// the pick stepped over the index entries of every item done so far. A worker whose pick from its
/// cursor finds nothing starts again from the start, which finds items retried or released behind.
pub async fn claim(
    pool: &PgPool,
    run_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    let claimed = sqlx::query_as::<_, Claimed>(CLAIM)
        .bind(run_id)
        .bind(limit)
        .bind(lease_ms)
        .bind(after.unwrap_or(Uuid::nil()))
        .fetch_all(pool)
        .await?;
    Ok(claimed.into_iter().map(|c| (c.account_id, c.attempts)).collect())
}

const RECORD_OUTCOMES: &str = "UPDATE payout_run_items i
         SET state = u.state, reason = u.reason, payout_id = u.payout_id, gross = u.gross, income_tax = u.income_tax,
             local_tax = u.local_tax, rural_special_tax = u.rural_special_tax, net = u.net,
             claimed_until = CASE WHEN u.state = 'PENDING' THEN now() + u.retry * interval '1 millisecond' END
         FROM unnest($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::int8[], $7::int8[], $8::int8[], $9::int8[],
                     $10::int8[], $11::int8[])
              AS u(account_id, state, reason, payout_id, retry, gross, income_tax, local_tax, rural_special_tax, net)
         CROSS JOIN LATERAL (SELECT ctid AS row_at FROM payout_run_items p
                             WHERE p.run_id = $1 AND p.account_id = u.account_id AND p.state = 'PENDING' OFFSET 0) p
         WHERE i.ctid = p.row_at AND i.state = 'PENDING'";

/// One item's outcome: `PAID` with its payout, `SKIPPED`/`FAILED` with a reason, or `PENDING`
/// again (a transient failure) after `retry_in_ms`.
pub struct Outcome {
    pub account_id: Uuid,
    pub state: ItemState,
    pub reason: Option<String>,
    /// The payout of a paid item and its amounts (kept on the item for the run's counters).
    pub paid: Option<(Uuid, Withheld)>,
    pub retry_in_ms: i64,
}

/// Each item is found by its own probe of the pending index (the lateral subquery, kept apart by
/// `OFFSET 0`) and updated by its row address: joined with the outcomes directly, a planner that
/// believed the run had no pending items (statistics taken before the run listed them) hashed
/// every pending item of the run for each chunk, 70-100 ms a chunk at 100,000 items. An item
/// changed meanwhile (another replica claimed it after our lease ran out) is left to that change —
/// except a payout the ledger booked for an item the run's expiry failed meanwhile: the run's
/// report agrees with the ledger ([`paid_after_expiry`]).
pub async fn record_outcomes(pool: &PgPool, run_id: Uuid, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.account_id).collect();
    let states: Vec<&str> = outcomes.iter().map(|o| o.state.as_str()).collect();
    let reasons: Vec<Option<String>> = outcomes.iter().map(|o| o.reason.clone()).collect();
    let payouts: Vec<Option<Uuid>> = outcomes.iter().map(|o| o.paid.map(|(id, _)| id)).collect();
    let amount = |f: fn(&Withheld) -> i64| -> Vec<Option<i64>> {
        outcomes.iter().map(|o| o.paid.as_ref().map(|(_, w)| f(w))).collect()
    };
    let retry: Vec<i64> = outcomes.iter().map(|o| o.retry_in_ms).collect();
    let recorded = sqlx::query(RECORD_OUTCOMES)
        .bind(run_id)
        .bind(&ids)
        .bind(&states)
        .bind(&reasons)
        .bind(&payouts)
        .bind(&retry)
        .bind(amount(Withheld::gross))
        .bind(amount(|w| w.taxes().income_tax))
        .bind(amount(|w| w.taxes().local_tax))
        .bind(amount(|w| w.taxes().rural_special_tax))
        .bind(amount(Withheld::net))
        .execute(pool)
        .await?
        .rows_affected();
    if recorded < outcomes.len() as u64 {
        paid_after_expiry(pool, run_id, outcomes).await?;
    }
    Ok(())
}

/// Paid outcomes of items failed as `BUSINESS_DATE_ENDED` while their payout was being booked (a
/// worker paused past its claim lease, then the date turned): the ledger holds the payout, so the
/// item is paid. Rare: only when the main statement left some outcome unrecorded.
async fn paid_after_expiry(pool: &PgPool, run_id: Uuid, outcomes: &[Outcome]) -> Result<(), sqlx::Error> {
    let paid: Vec<(Uuid, Uuid, &Withheld)> =
        outcomes.iter().filter_map(|o| o.paid.as_ref().map(|(id, w)| (o.account_id, *id, w))).collect();
    if paid.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Withheld) -> i64| -> Vec<i64> { paid.iter().map(|(_, _, w)| f(w)).collect() };
    let ids: Vec<Uuid> = paid.iter().map(|p| p.0).collect();
    let payouts: Vec<Uuid> = paid.iter().map(|p| p.1).collect();
    let n = sqlx::query!(
        "UPDATE payout_run_items i
         SET state = 'PAID', reason = NULL, payout_id = u.payout_id, gross = u.gross, income_tax = u.income_tax,
             local_tax = u.local_tax, rural_special_tax = u.rural_special_tax, net = u.net, claimed_until = NULL
         FROM unnest($2::uuid[], $3::uuid[], $4::int8[], $5::int8[], $6::int8[], $7::int8[], $8::int8[])
              AS u(account_id, payout_id, gross, income_tax, local_tax, rural_special_tax, net)
         WHERE i.run_id = $1 AND i.account_id = u.account_id AND i.state = 'FAILED'
           AND i.reason = 'BUSINESS_DATE_ENDED'",
        run_id,
        &ids,
        &payouts,
        &column(Withheld::gross),
        &column(|w| w.taxes().income_tax),
        &column(|w| w.taxes().local_tax),
        &column(|w| w.taxes().rural_special_tax),
        &column(Withheld::net),
    )
    .execute(pool)
    .await?
    .rows_affected();
    if n > 0 {
        tracing::warn!(%run_id, items = n, "payouts booked for items the run's expiry had failed: recorded as paid");
    }
    Ok(())
}

/// Marks the run completed once enumerated and nothing is pending.
pub async fn complete_if_done(pool: &PgPool, run_id: Uuid) -> Result<bool, sqlx::Error> {
    let n = sqlx::query!(
        "UPDATE payout_runs r SET state = 'COMPLETED', finished_at = now()
         WHERE run_id = $1 AND state = 'RUNNING' AND listing_done
           AND NOT EXISTS (SELECT 1 FROM payout_run_items WHERE run_id = $1 AND state = 'PENDING')",
        run_id,
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// The business date ended before the run did: what is left fails — but not an item a worker
/// holds (claimed, its lease running): its payout may be booking, and its worker records what the
/// ledger answered. The run expires once nothing is pending; a later pass (every worker loop)
/// fails what such a worker left, after its lease.
pub async fn expire(pool: &PgPool, run_id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "UPDATE payout_run_items SET state = 'FAILED', reason = 'BUSINESS_DATE_ENDED'
         WHERE run_id = $1 AND state = 'PENDING' AND (claimed_until IS NULL OR claimed_until <= now())",
        run_id,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE payout_runs SET state = 'EXPIRED', finished_at = now() WHERE run_id = $1 AND state = 'RUNNING'
           AND NOT EXISTS (SELECT 1 FROM payout_run_items WHERE run_id = $1 AND state = 'PENDING')",
        run_id,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The run with its counts and totals (counters kept in the same transactions as its items).
pub async fn report(pool: &PgPool, run_id: Uuid) -> Result<Option<PayoutRun>, sqlx::Error> {
    let Some(r) = sqlx::query!(
        "SELECT run_id, business_date, scope, state, listing_done, started_at, finished_at FROM payout_runs
         WHERE run_id = $1",
        run_id,
    )
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    // Counters kept per chunk by the items' triggers (migration 0007), not an aggregate of items.
    let rows = sqlx::query!(
        "SELECT state, NULLIF(reason, '') AS reason, n, gross, income_tax, local_tax, rural_special_tax, net
         FROM payout_run_counts WHERE run_id = $1 AND n <> 0",
        run_id,
    )
    .fetch_all(pool)
    .await?;
    let mut run = PayoutRun {
        run_id,
        business_date: r.business_date,
        scope: run_scope(&r.scope),
        state: run_state(&r.state)?,
        accounts: 0,
        enumeration_complete: r.listing_done,
        paid: 0,
        skipped: BTreeMap::new(),
        failed: 0,
        pending: 0,
        totals: RunTotals::default(),
        progress: 0.0,
        started_at: r.started_at,
        finished_at: r.finished_at,
    };
    for row in rows {
        let n = row.n;
        run.accounts += n;
        match ItemState::parse(&row.state).ok_or_else(|| unknown("item state", &row.state))? {
            ItemState::Paid => {
                run.paid += n;
                let taxes = TaxBreakdown {
                    income_tax: row.income_tax,
                    local_tax: row.local_tax,
                    rural_special_tax: row.rural_special_tax,
                };
                run.totals = run.totals + crate::payout::amounts(row.gross, taxes, row.net)?;
            }
            ItemState::Skipped => *run.skipped.entry(row.reason.unwrap_or_default()).or_default() += n,
            ItemState::Failed => run.failed += n,
            ItemState::Pending => run.pending += n,
        }
    }
    if run.accounts > 0 {
        run.progress = (run.accounts - run.pending) as f64 / run.accounts as f64;
    }
    if run.state != RunState::Running {
        run.progress = 1.0;
    }
    Ok(Some(run))
}

/// A run's stored state (the one mapping: [`RunState::parse`]).
fn run_state(text: &str) -> Result<RunState, sqlx::Error> {
    RunState::parse(text).ok_or_else(|| unknown("run state", text))
}

/// A run's stored scope: `ALL`, or the explicit list's marker.
fn run_scope(text: &str) -> RunScope {
    if text == "ALL" {
        RunScope::All
    } else {
        RunScope::Accounts
    }
}

fn unknown(what: &str, text: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {text:?}").into())
}

#[cfg(test)]
#[path = "store_plans.rs"]
mod plans;
