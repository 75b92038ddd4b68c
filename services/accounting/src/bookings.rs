//! Interest bookings: the payout's commit point (one at a time for on-demand payouts, many in one
//! transaction for a payout run's chunk — the same checks either way, in `book_locked`), and the
//! daily balances a quote is computed from.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use contracts::problem::Code;
use contracts::{
    BalancePoint, BalancesBatch, BalancesMany, DailyBalances, InterestPosting, InterestPostingBatch,
    InterestPostingOutcome, InterestPostingOutcomes, InterestPostingRequest, MAX_LEDGER_BATCH,
};
use platform::db::GuardedBy;
use platform::ApiError;
use sqlx::{Acquire, PgConnection};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{Entry, EntryHeader, EntryKind, LedgerAccount, Line};
use crate::ledger::retrying;
use crate::state::AppState;
use crate::store;

/// The checks that need no lock: a payout pays something, for a period before its business date,
/// which is not after today.
fn check_request(req: &InterestPostingRequest, today: NaiveDate) -> Result<(), LedgerError> {
    // Gross = net + taxes holds by construction of the amounts; a payout pays something.
    if req.amounts.gross() < 1 || req.period_to < req.period_from {
        return Err(LedgerError::Refused(Code::UnbalancedPayout, "a payout's gross must be at least 1".into()));
    }
    if req.business_date > today || req.period_to >= req.business_date {
        return Err(LedgerError::Refused(
            Code::BadPayoutDates,
            "the period must end before the business date, which is not after today".into(),
        ));
    }
    Ok(())
}

/// The booking transaction as a database client span (OpenTelemetry database conventions).
fn span(operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        "db.transaction",
        "otel.name" = %format!("{operation} accounting"),
        "otel.kind" = "client",
        "db.system" = "postgresql",
        "db.namespace" = "accounting",
        "db.operation.name" = operation,
    )
}

/// Books an interest payout: the payout's one durable commit. At most one per account per business
/// date (today's), only for the period right after the last one, and only if nothing the quote was
/// computed from has changed since (`QUOTE_STALE` otherwise, nothing written); the same
/// idempotency key again returns the booked posting.
pub async fn book_interest(state: &AppState, req: &InterestPostingRequest) -> Result<InterestPosting, LedgerError> {
    let today = state.clock.today().await?;
    check_request(req, today)?;
    let id = req.account_id;
    retrying(state, || async {
        let mut tx = state.pool.begin().await?;
        store::set_lock_timeout(&mut tx, state.lock_timeout.as_millis()).await?;
        let acct = store::lock_account(&mut tx, id).await?.ok_or(LedgerError::AccountNotFound(id))?;
        let (posting, history_rev) = book_locked(&mut tx, req, &acct, today).await?;
        tx.commit().await?;
        if let Some(rev) = history_rev {
            state.revisions.publish(contracts::revision::ledger(id), rev).await;
        }
        Ok(posting)
    })
    .instrument(span("book_interest"))
    .await
}

/// Books a chunk of payouts in one transaction. Each payout gets the answer a single booking would
/// have given it (booked, replayed, or refused with nothing written for it); a row another
/// transaction holds is skipped (`ACCOUNT_BUSY`) instead of holding the chunk up.
pub async fn book_interest_many(
    state: &AppState,
    batch: &InterestPostingBatch,
) -> Result<InterestPostingOutcomes, LedgerError> {
    let reqs = &batch.postings;
    let ids: Vec<Uuid> = reqs.iter().map(|r| r.account_id).collect();
    if reqs.is_empty() || reqs.len() > MAX_LEDGER_BATCH || ids.iter().collect::<HashSet<_>>().len() != ids.len() {
        let detail = format!("give 1 to {MAX_LEDGER_BATCH} postings, each account at most once");
        return Err(LedgerError::Invalid("postings", detail));
    }
    let today = state.clock.today().await?;
    let (results, revs) = retrying(state, || async {
        let mut tx = state.pool.begin().await?;
        store::set_lock_timeout(&mut tx, state.lock_timeout.as_millis()).await?;
        let mut locked = store::lock_accounts_unless_busy(&mut tx, &ids).await?;
        let mut results = Vec::with_capacity(reqs.len());
        let mut revs = Vec::new();
        for req in reqs {
            let id = req.account_id;
            let result = match (check_request(req, today), locked.remove(&id)) {
                (Err(e), _) => Err(e),
                (Ok(()), Some(acct)) => book_locked(&mut tx, req, &acct, today).await,
                (Ok(()), None) if store::find_account(&mut *tx, id).await?.is_some() => Err(LedgerError::Busy),
                (Ok(()), None) => Err(LedgerError::AccountNotFound(id)),
            };
            match result {
                Ok((posting, rev)) => {
                    revs.extend(rev.map(|r| (contracts::revision::ledger(id), r)));
                    results.push(Ok(posting));
                }
                // A database error aborts the transaction: the whole chunk fails (and is retried).
                Err(e @ (LedgerError::Db(_) | LedgerError::Entry(_))) => return Err(e),
                Err(refusal) => results.push(Err(refusal)),
            }
        }
        tx.commit().await?;
        Ok((results, revs))
    })
    .instrument(span("book_interest_many"))
    .await?;
    state.revisions.publish_all(revs).await;
    let outcomes = reqs
        .iter()
        .zip(results)
        .map(|(req, r)| match r {
            Ok(posting) => {
                InterestPostingOutcome { account_id: req.account_id, posting: Some(posting), code: None, detail: None }
            }
            Err(e) => {
                let problem = ApiError::from(e);
                InterestPostingOutcome {
                    account_id: req.account_id,
                    posting: None,
                    code: Some(problem.code.to_string()),
                    detail: Some(problem.detail),
                }
            }
        })
        .collect();
    Ok(InterestPostingOutcomes { outcomes })
}

/// One booking with its balance row locked: the posting, and the new history revision to publish
/// (`None` for a replay of the same key). Every refusal comes before the first write.
async fn book_locked(
    tx: &mut PgConnection,
    req: &InterestPostingRequest,
    acct: &store::LedgerAccount,
    today: NaiveDate,
) -> Result<(InterestPosting, Option<i64>), LedgerError> {
    let id = req.account_id;
    if let Some(existing) = store::interest_posting_on(tx, id, req.business_date).await? {
        // A retry of the same request (after a timeout or crash) gets the booked posting, whose
        // amounts the caller adopts; any other payout that day is refused.
        if existing.request.idempotency_key == req.idempotency_key {
            return Ok((existing, None));
        }
        return Err(LedgerError::Refused(
            Code::AlreadyPaidToday,
            format!("payout {} was booked on {}", existing.request.payout_id, req.business_date),
        ));
    }
    if req.business_date != today {
        return Err(stale(format!("quoted for business date {}, today is {today}", req.business_date)));
    }
    let expected_from = acct.paid_through.map_or(acct.opened_on, domain::next_day);
    if req.period_from != expected_from {
        return Err(LedgerError::Refused(
            Code::PayoutPeriodMismatch,
            format!("the next payout must start on {expected_from}, not {}", req.period_from),
        ));
    }
    verify_basis(tx, req, acct.history_rev).await?;
    let (net, taxes) = (req.amounts.net(), req.amounts.taxes());
    let balance_after = acct.balance + net;
    let entry_id = Uuid::new_v4();
    // SPEC §6: Dr interest expense gross; Cr the customer net; Cr each tax payable.
    let entry = Entry::new(
        EntryKind::InterestPayout,
        [
            Line::debit(LedgerAccount::InterestExpense, req.amounts.gross()),
            Line::credit_customer(id, net),
            Line::credit(LedgerAccount::IncomeTaxPayable, taxes.income_tax),
            Line::credit(LedgerAccount::LocalTaxPayable, taxes.local_tax),
            Line::credit(LedgerAccount::RuralSpecialTaxPayable, taxes.rural_special_tax),
        ],
    )?;
    let history_rev = store::set_balance(tx, id, balance_after, Some(req.period_to), true).await?;
    let header = EntryHeader {
        entry_id,
        account_id: id,
        business_date: req.business_date,
        value_date: req.business_date,
        balance_after,
        payout: Some(req),
    };
    // Checked above under the row lock; the unique index is the final guard of the rule.
    let (seq, posted_at) =
        store::insert_entry(tx, &header, &entry).await.guarded_by("journal_entries_one_payout_a_day", || {
            LedgerError::Refused(Code::AlreadyPaidToday, format!("{id} was already paid on {}", req.business_date))
        })?;
    store::apply_to_daily_balances(tx, id, req.business_date, net).await?;
    Ok((InterestPosting { request: req.clone(), entry_id, balance_after, posted_at, seq }, Some(history_rev)))
}

fn stale(detail: String) -> LedgerError {
    LedgerError::Refused(Code::QuoteStale, format!("the payout's inputs changed since it was quoted: {detail}"))
}

/// A fingerprint of a period's end-of-day balance points: what a quote read, compared with what
/// the ledger holds when the payout is booked.
pub fn balances_digest(points: &[BalancePoint]) -> String {
    let text: String = points.iter().map(|p| format!("{}={};", p.date, p.balance)).collect();
    platform::extract::hash(text.as_bytes())
}

/// Under the balance-row lock: the period's balances are still those the quote saw (history
/// revision, then the points themselves — a posting dated "today" as the clock turned does not
/// bump the revision), and no owner fenced the account, customer or rates since the quote.
async fn verify_basis(
    tx: &mut PgConnection,
    req: &InterestPostingRequest,
    history_rev: i64,
) -> Result<(), LedgerError> {
    let basis = &req.basis;
    if basis.history_rev != history_rev {
        return Err(stale(format!("ledger history revision {history_rev}, quoted at {}", basis.history_rev)));
    }
    let points = store::balance_points(tx, req.account_id, req.period_from, req.period_to).await?;
    if balances_digest(&points) != basis.balances_digest {
        return Err(stale(format!("end-of-day balances of {}..{} changed", req.period_from, req.period_to)));
    }
    let fenced = basis.fenced(req.account_id, req.customer_id, &req.product_code);
    let subjects: Vec<String> = fenced.iter().map(|(s, _)| s.clone()).collect();
    for (subject, rev) in store::hold_fences(tx, &subjects).await? {
        let quoted = fenced.iter().find(|(s, _)| *s == subject).map_or(0, |(_, r)| *r);
        if rev > quoted {
            return Err(stale(format!("{subject} is at revision {rev}, quoted at {quoted}")));
        }
    }
    Ok(())
}

/// End-of-day balances for `[from, to]` and the last booked payout (with `paid_before`, the last
/// with an earlier business date), read in one snapshot.
pub async fn daily_balances(
    state: &AppState,
    id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    paid_before: Option<NaiveDate>,
) -> Result<DailyBalances, LedgerError> {
    if to < from {
        return Err(LedgerError::Invalid("to", "to must not be before from".into()));
    }
    let mut conn = state.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let history_rev = store::find_account(&mut *tx, id).await?.map_or(0, |a| a.history_rev);
    let points = store::balance_points(&mut tx, id, from, to).await?;
    let last = store::last_interest_posting(&mut tx, id, paid_before).await?;
    tx.commit().await?;
    let digest = balances_digest(&points);
    Ok(DailyBalances { account_id: id, from, to, points, last_interest_posting: last, history_rev, digest })
}

/// What [`daily_balances`] answers, for many accounts in one snapshot and three statements.
pub async fn daily_balances_many(state: &AppState, batch: &BalancesBatch) -> Result<BalancesMany, LedgerError> {
    let qs = &batch.queries;
    let ids: Vec<Uuid> = qs.iter().map(|q| q.account_id).collect();
    if qs.is_empty() || qs.len() > MAX_LEDGER_BATCH || ids.iter().collect::<HashSet<_>>().len() != ids.len() {
        let detail = format!("give 1 to {MAX_LEDGER_BATCH} queries, each account at most once");
        return Err(LedgerError::Invalid("queries", detail));
    }
    if qs.iter().any(|q| q.to < q.from) {
        return Err(LedgerError::Invalid("to", "to must not be before from".into()));
    }
    let mut conn = state.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let revs: HashMap<Uuid, i64> = store::history_revisions(&mut tx, &ids).await?.into_iter().collect();
    let ranges: Vec<(Uuid, NaiveDate, NaiveDate)> = qs.iter().map(|q| (q.account_id, q.from, q.to)).collect();
    let mut points = store::balance_points_many(&mut tx, &ranges).await?;
    let mut last = store::last_interest_postings(&mut tx, &ids).await?;
    tx.commit().await?;
    let accounts = qs
        .iter()
        .map(|q| {
            let points = points.remove(&q.account_id).unwrap_or_default();
            DailyBalances {
                account_id: q.account_id,
                from: q.from,
                to: q.to,
                digest: balances_digest(&points),
                points,
                last_interest_posting: last.remove(&q.account_id),
                history_rev: revs.get(&q.account_id).copied().unwrap_or(0),
            }
        })
        .collect();
    Ok(BalancesMany { accounts })
}
