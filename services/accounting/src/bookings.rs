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
use sqlx::PgConnection;
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

/// The booking transaction as a database client span (OpenTelemetry database conventions), under
/// the current span.
fn span(operation: &'static str) -> tracing::Span {
    transaction_span(&tracing::Span::current(), operation)
}

fn transaction_span(parent: &tracing::Span, operation: &'static str) -> tracing::Span {
    tracing::info_span!(
        parent: parent,
        "db.transaction",
        "otel.name" = %format!("{operation} accounting"),
        "otel.kind" = "client",
        "db.system" = "postgresql",
        "db.namespace" = "accounting",
        "db.operation.name" = operation,
        "db.operation.batch.size" = tracing::field::Empty,
    )
}

/// The booking transaction of a batch as seen from one request's trace (under `parent`, the span
/// the request was queued from): every request's trace holds the transaction it was booked in.
pub(crate) fn batch_span(parent: &tracing::Span, size: usize) -> tracing::Span {
    let span = transaction_span(parent, "book_interest");
    span.record("db.operation.batch.size", size);
    span
}

/// Books an interest payout: the payout's one durable commit. At most one per account per business
/// date (today's), only for the period right after the last one, and only if nothing the quote was
/// computed from has changed since (`QUOTE_STALE` otherwise, nothing written); the same
/// idempotency key again returns the booked posting. This is one booking in a transaction of its
/// own, waiting for a busy row; on-demand bookings normally go through `BookingQueue`, which books
/// many in one transaction and hands this path only what it could not book together.
pub async fn book_interest_alone(
    state: &AppState,
    req: &InterestPostingRequest,
) -> Result<InterestPosting, LedgerError> {
    let id = req.account_id;
    retrying(state, || async {
        let mut tx = store::begin_waiting_at_most(&state.pool, state.lock_timeout.as_millis()).await?;
        let mut inputs = store::lock_booking_inputs(&mut tx, &[req], store::BusyRows::Wait).await?;
        let acct = inputs.accounts.remove(&id).ok_or(LedgerError::AccountNotFound(id))?;
        // Today as it is under the lock: a booking that waited while the date turned is refused.
        let today = state.clock.today().await?;
        check_request(req, today)?;
        let (mut results, revs) = book_locked(&mut tx, &[(req, acct)], &inputs, today).await?;
        let posting = results.pop().ok_or_else(|| LedgerError::Invalid("postings", "nothing booked".into()))??;
        tx.commit().await?;
        state.revisions.publish_all(revs).await;
        Ok(posting)
    })
    .instrument(span("book_interest"))
    .await
}

/// Books an on-demand payout (see [`book_interest_alone`] for the rules) together with the others
/// queued meanwhile (`BookingQueue`): the answer is the one a booking alone would give.
pub async fn book_interest(state: &AppState, req: &InterestPostingRequest) -> Result<InterestPosting, LedgerError> {
    state.bookings.book(state, req).await
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
    let reqs: Vec<&InterestPostingRequest> = reqs.iter().collect();
    let results = book_each(state, &reqs, Attempts::UntilBudget).instrument(span("book_interest_many")).await?;
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

/// Books payouts of different accounts (each at most once) in one transaction, each decided alone:
/// booked, replayed, or refused with nothing written for it; a row another transaction holds is
/// skipped (`ACCOUNT_BUSY`) instead of holding the others up. Publishes the revisions once
/// committed. An error is the whole transaction's (nothing was written).
pub(crate) async fn book_each(
    state: &AppState,
    reqs: &[&InterestPostingRequest],
    attempts: Attempts,
) -> Result<Vec<Result<InterestPosting, LedgerError>>, LedgerError> {
    let attempt = || async {
        let mut tx = store::begin_waiting_at_most(&state.pool, state.lock_timeout.as_millis()).await?;
        let mut inputs = store::lock_booking_inputs(&mut tx, reqs, store::BusyRows::Skip).await?;
        let today = state.clock.today().await?;
        // Each request's refusal before the row lock, or its locked row.
        let mut early: Vec<Option<LedgerError>> = Vec::with_capacity(reqs.len());
        let mut bookable = Vec::new();
        for req in reqs {
            let id = req.account_id;
            // In the order a booking alone answers: an unknown account, then the request's checks.
            early.push(match (inputs.accounts.remove(&id), check_request(req, today)) {
                (Some(acct), Ok(())) => {
                    bookable.push((*req, acct));
                    None
                }
                (Some(_), Err(e)) => Some(e),
                (None, checked) if inputs.busy.contains(&id) => Some(checked.err().unwrap_or(LedgerError::Busy)),
                (None, _) => Some(LedgerError::AccountNotFound(id)),
            });
        }
        let (booked, revs) = book_locked(&mut tx, &bookable, &inputs, today).await?;
        let mut booked = booked.into_iter();
        let results: Vec<Result<InterestPosting, LedgerError>> = early
            .into_iter()
            .map(|e| match e {
                Some(refusal) => Err(refusal),
                None => booked.next().unwrap_or_else(|| Err(LedgerError::Invalid("postings", "not booked".into()))),
            })
            .collect();
        tx.commit().await?;
        Ok((results, revs))
    };
    let (results, revs) = match attempts {
        Attempts::One => attempt().await?,
        Attempts::UntilBudget => retrying(state, attempt).await?,
    };
    state.revisions.publish_all(revs).await;
    Ok(results)
}

/// How often [`book_each`] tries a transaction that failed as a whole for a reason another try may
/// not meet (a fence held, a deadlock).
pub(crate) enum Attempts {
    /// Once: the caller books each request alone instead (on-demand batches).
    One,
    /// Until the lock budget is spent (a run's chunk).
    UntilBudget,
}

/// What a booking is, once its inputs are read under the row lock.
#[derive(Debug)]
enum Decision<'a> {
    /// The same key was booked already: its posting again, nothing written.
    Replay(&'a InterestPosting),
    Book,
}

/// Books requests whose balance rows the caller locked (each account once), on the inputs read
/// under those locks (`store::lock_booking_inputs`): decides each alone (`decide`: the one home of
/// the rules) and writes the accepted ones together in one statement (balance rows, entries, lines
/// and end-of-day balances). Answers each request's posting (booked or replayed) or refusal, in
/// order, and the history revisions to publish after the commit.
async fn book_locked(
    tx: &mut PgConnection,
    locked: &[(&InterestPostingRequest, store::LedgerAccount)],
    inputs: &store::BookingInputs,
    today: NaiveDate,
) -> Result<Revised, LedgerError> {
    let mut results = Vec::with_capacity(locked.len());
    let mut writes = Vec::new();
    for (req, acct) in locked {
        let id = req.account_id;
        let seen = inputs.points.get(&id).map_or(&[][..], |p| p.as_slice());
        let earlier = inputs.on.get(&id).or_else(|| inputs.under.get(&id));
        match decide(req, acct, earlier, seen, &inputs.fences, today) {
            Ok(Decision::Replay(posting)) => results.push(Ok(posting.clone())),
            Err(refusal) => results.push(Err(refusal)),
            Ok(Decision::Book) => {
                let net = req.amounts.net();
                let taxes = req.amounts.taxes();
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
                let header = EntryHeader {
                    entry_id: Uuid::new_v4(),
                    account_id: id,
                    business_date: req.business_date,
                    value_date: req.business_date,
                    balance_after: acct.balance + net,
                    payout: Some(req),
                };
                writes.push((results.len(), *req, header, entry));
                results.push(Err(LedgerError::Busy)); // replaced by the posting below
            }
        }
    }
    if writes.is_empty() {
        return Ok((results, Vec::new()));
    }
    let balances: Vec<_> = writes
        .iter()
        .map(|(_, r, h, _)| store::Paid {
            account_id: h.account_id,
            balance_after: h.balance_after,
            paid_through: r.period_to,
            business_date: h.business_date,
            net: r.amounts.net(),
        })
        .collect();
    let entries: Vec<_> = writes.iter().map(|(_, _, h, e)| (h, e)).collect();
    // Checked above under the row locks; the unique index is the final guard of the rule.
    let paid =
        store::book_payouts(tx, &balances, &entries).await.guarded_by("journal_entries_one_payout_a_day", || {
            LedgerError::Refused(Code::AlreadyPaidToday, "an account was already paid on its business date".into())
        })?;
    let mut published = Vec::new();
    for ((at, r, h, _), row) in writes.iter().zip(paid) {
        let request = (*r).clone();
        published.push((contracts::revision::ledger(h.account_id), row.history_rev));
        let posting = InterestPosting {
            request,
            entry_id: h.entry_id,
            balance_after: h.balance_after,
            posted_at: row.created_at,
            seq: row.seq,
        };
        results[*at] = Ok(posting);
    }
    Ok((results, published))
}

/// Each request's posting or refusal, and the revisions to publish.
type Revised = (Vec<Result<InterestPosting, LedgerError>>, Vec<(String, i64)>);

/// The rules of a booking, on what was read under its row lock (`existing`: the payout booked on the
/// request's business date, else the one booked under its key): one payout per account and business
/// date, one per key (the same key again is a replay, whichever day it was booked on), booked on today's business date, for the period right after
/// the last, and only on the quote's basis — the balances' history revision and points, and no
/// fence above the revisions the quote saw (account, customer, rates, tax rules).
fn decide<'a>(
    req: &InterestPostingRequest,
    acct: &store::LedgerAccount,
    existing: Option<&'a InterestPosting>,
    points: &[BalancePoint],
    fences: &HashMap<String, i64>,
    today: NaiveDate,
) -> Result<Decision<'a>, LedgerError> {
    if let Some(existing) = existing {
        // A retry of the same request (after a timeout or crash) gets the booked posting, whose
        // amounts the caller adopts — whatever day it was booked on: a key names one payout, so
        // a key answered yesterday is never paid again today; any other payout that day is refused.
        if existing.request.idempotency_key == req.idempotency_key {
            return Ok(Decision::Replay(existing));
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
    // The period's balances are still those the quote saw (history revision, then the points
    // themselves — a posting dated "today" as the clock turned does not bump the revision), and no
    // owner fenced the account, customer or rates since the quote.
    let basis = &req.basis;
    if basis.history_rev != acct.history_rev {
        return Err(stale(format!("ledger history revision {}, quoted at {}", acct.history_rev, basis.history_rev)));
    }
    if balances_digest(points) != basis.balances_digest {
        return Err(stale(format!("end-of-day balances of {}..{} changed", req.period_from, req.period_to)));
    }
    for (subject, quoted) in req.fenced() {
        let rev = fences.get(&subject).copied().unwrap_or(0);
        if rev > quoted {
            return Err(stale(format!("{subject} is at revision {rev}, quoted at {quoted}")));
        }
    }
    Ok(Decision::Book)
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
    let mut tx = store::begin_snapshot(&state.pool).await?;
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
    let mut tx = store::begin_snapshot(&state.pool).await?;
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

#[cfg(test)]
#[path = "bookings_tests.rs"]
mod tests;
