//! "Get interest now" (`POST /v1/interest/accounts/{id}/payouts`): replay by Idempotency-Key →
//! Redis lock (optimisation) → evaluate (account, customer, ledger balances, rates, tax) → the
//! ledger books it (the one durable commit; it refuses a second payout that day and replays the
//! same key) → record it here with its tax event (non-durable commit, recoverable from the ledger)
//! → wake the outbox relay. A business refusal is kept against its key. A run's chunk books and
//! records through the same pieces (`posting_request`, `before_booking`, `record_booked`).

use std::time::Instant;

use futures::StreamExt;

use chrono::NaiveDate;
use contracts::problem::Code;
use contracts::{InterestPosting, InterestPostingRequest, Payout};
use domain::Refusal;
use platform::redis::Lock;
use uuid::Uuid;

use super::evaluate::{evaluate, Evaluation};
use super::store::{self, PriorOutcome};
use super::{stage, Payouts};
use crate::error::InterestError;

/// The first answer kept for this key, replayed (SPEC §7; README "Idempotency").
fn replay(prior: PriorOutcome, request_hash: &str) -> Result<Payout, InterestError> {
    let hash = match &prior {
        PriorOutcome::Paid(p) => &p.request_hash,
        PriorOutcome::Refused(r) => &r.request_hash,
    };
    if hash != request_hash {
        return Err(InterestError::KeyReused);
    }
    match prior {
        PriorOutcome::Paid(p) => Ok(p.payout),
        PriorOutcome::Refused(r) => {
            Err(InterestError::Replayed { status: r.status as u16, code: r.code, detail: r.detail })
        }
    }
}

/// The answer first given to this key, given again, if there is one (SPEC §7): a key the legacy
/// core is asked to pay under that this system already answered gets that answer.
pub async fn kept_answer(
    state: &Payouts,
    id: Uuid,
    key: &str,
    request_hash: &str,
) -> Result<Option<Payout>, InterestError> {
    match store::prior_outcome(&state.pool, id, key).await? {
        Some(prior) => replay(prior, request_hash).map(Some),
        None => Ok(None),
    }
}

/// "Get interest now".
pub async fn pay(state: &Payouts, id: Uuid, key: &str, request_hash: &str) -> Result<Payout, InterestError> {
    // The key's kept answer and the account's Redis lock are asked for at once (independent round
    // trips); a kept answer wins, and the lock taken meanwhile is given back.
    let lookup = async {
        let t = Instant::now();
        let prior = store::prior_outcome(&state.pool, id, key).await;
        stage("replay_lookup", t);
        prior
    };
    let (prior, taken) = tokio::join!(lookup, take_lock(state, id));
    // The kept answer first, as if it had been looked up alone: neither the clock nor Redis stands
    // between a retry and its replay.
    match prior {
        Ok(None) => {}
        Ok(Some(prior)) => {
            give_back(taken).await;
            return replay(prior, request_hash);
        }
        Err(e) => {
            give_back(taken).await;
            return Err(e.into());
        }
    }
    let (today, taken) = taken?;
    let guard = match taken {
        Taken::Held(g) => Some(g),
        Taken::PaidWith(paid_with) if paid_with != key => {
            return Err(refuse(state, id, key, request_hash, Refusal::AlreadyPaidToday).await)
        }
        Taken::PaidWith(_) | Taken::Unguarded => None,
        Taken::Busy => {
            return Err(InterestError::Rule(
                Code::PayoutInProgress,
                "another payout of this account is in progress; retry".into(),
            ))
        }
    };
    // Only a request that waited for the lock can find its key answered meanwhile.
    let recheck = guard.as_ref().is_none_or(|g| g.waited());
    let result = pay_locked(state, id, key, request_hash, recheck).await;
    let t = Instant::now();
    // Paid today: the marker is set as the lock is given back (one round trip), or alone.
    let paid_today = result.as_ref().ok().zip(today).filter(|(p, today)| p.business_date == *today);
    match (guard, paid_today) {
        (Some(g), Some(_)) => released(g.release_done(key, PAID_MARKER_TTL).await),
        (Some(g), None) => released(g.release().await),
        (None, Some((_, today))) => mark_paid(state, id, key, today).await,
        (None, None) => {}
    }
    stage("unlock", t);
    result
}

/// What the account's Redis lock gave a payout.
enum Taken {
    Held(platform::redis::LockGuard),
    /// The account is paid today already, under this key.
    PaidWith(String),
    /// Another payout of the account held it for the whole wait.
    Busy,
    /// No Redis, or Redis failed: the ledger's guard alone.
    Unguarded,
}

/// Takes the account's Redis lock (today's business date with it, when there is Redis). The lock
/// keeps replicas from doing the same work twice; the ledger is the real guard, so a Redis outage
/// degrades to that guard instead of refusing payouts (README). Once the account is paid today
/// (the marker), other keys are refused at once instead of queueing on the lock; the paying key
/// itself goes on to its replay.
async fn take_lock(state: &Payouts, id: Uuid) -> Result<(Option<NaiveDate>, Taken), InterestError> {
    let t = Instant::now();
    let Some(redis) = &state.redis else { return Ok((None, Taken::Unguarded)) };
    let today = state.clock.today().await?;
    let (name, marker) = (format!("payout:{id}"), paid_marker(id, today));
    let taken = match redis.lock_unless(&name, &marker, state.lock_lease, state.lock_wait).await {
        Ok(Lock::Held(g)) => Taken::Held(g),
        Ok(Lock::Done(paid_with)) => Taken::PaidWith(paid_with),
        Ok(Lock::Busy) => Taken::Busy,
        Err(e) => {
            tracing::warn!(error = %e, "redis lock unavailable; relying on the ledger's guard");
            Taken::Unguarded
        }
    };
    stage("lock", t);
    Ok((Some(today), taken))
}

async fn give_back(taken: Result<(Option<NaiveDate>, Taken), InterestError>) {
    if let Ok((_, Taken::Held(g))) = taken {
        released(g.release().await);
    }
}

/// A lock release that failed only delays the next payout of the account until its lease ends.
fn released(answer: Result<(), platform::redis::RedisError>) {
    if let Err(e) = answer {
        tracing::warn!(error = %e, "redis lock release failed; the lease will expire");
    }
}

/// The key names the date, so the day after it is never read; the TTL only frees memory.
const PAID_MARKER_TTL: std::time::Duration = std::time::Duration::from_secs(26 * 3600);

/// Sets the account's paid marker for `today` to the key it was paid under.
async fn mark_paid(state: &Payouts, id: Uuid, key: &str, today: NaiveDate) {
    let Some(redis) = &state.redis else { return };
    if let Err(err) = redis.set_px(&paid_marker(id, today), key, PAID_MARKER_TTL).await {
        tracing::warn!(error = %err, "paid marker not set; later attempts queue on the lock instead");
    }
}

/// Redis key set once an account's payout of the business date is recorded (value: its
/// Idempotency-Key); an optimisation only — the ledger refuses a second payout that day anyway.
pub(crate) fn paid_marker(id: Uuid, today: NaiveDate) -> String {
    format!("paid:{id}:{today}")
}

/// How many times a payout is quoted before its caller is told the inputs keep changing.
const QUOTE_ATTEMPTS: u32 = 3;

async fn pay_locked(
    state: &Payouts,
    id: Uuid,
    key: &str,
    request_hash: &str,
    recheck: bool,
) -> Result<Payout, InterestError> {
    // A concurrent request with the same key may have finished while we waited for the lock.
    if recheck {
        if let Some(prior) = store::prior_outcome(&state.pool, id, key).await? {
            return replay(prior, request_hash);
        }
    }
    let mut stale = String::new();
    for attempt in 1..=QUOTE_ATTEMPTS {
        let e = evaluate(state, id, attempt == 1).await?;
        let outcome = match e.refusal {
            Some(r) => Err(r),
            None => book(state, &e, key, request_hash).await?,
        };
        match outcome {
            Ok(Booked::Paid(payout)) => {
                count_paid(&payout);
                return Ok(payout);
            }
            Ok(Booked::Stale(detail)) => {
                // Re-read everything the quote depends on, cached account and customer included.
                tracing::info!(account_id = %id, attempt, detail, "quote stale at booking; quoting again");
                metrics::counter!("interest_quote_stale_total").increment(1);
                state.directory.forget(id, e.customer.customer_id).await;
                tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
                stale = detail;
            }
            Err(r) => {
                // Evaluation may just have recorded this very key's payout from the ledger (a retry
                // after a crash between the two commits): that is a replay, not a second payout.
                if r == Refusal::AlreadyPaidToday {
                    if let Some(prior @ PriorOutcome::Paid(_)) = store::prior_outcome(&state.pool, id, key).await? {
                        return replay(prior, request_hash);
                    }
                }
                return Err(refuse(state, id, key, request_hash, r).await);
            }
        }
    }
    Err(InterestError::QuoteStale(stale))
}

/// Payouts and won paid per minute, for the dashboard and the error-ratio alert.
pub(crate) fn count_paid(p: &Payout) {
    metrics::counter!("interest_payouts_total", "result" => "paid").increment(1);
    let a = &p.amounts;
    for (amount, won) in [("gross", a.gross()), ("tax", a.taxes().total()), ("net", a.net())] {
        metrics::counter!("interest_paid_won_total", "amount" => amount).increment(won.max(0) as u64);
    }
}

/// Keeps a business refusal against the key (so a retry gets the same answer) and returns it.
async fn refuse(state: &Payouts, id: Uuid, key: &str, request_hash: &str, r: Refusal) -> InterestError {
    metrics::counter!("interest_payouts_total", "result" => r.code()).increment(1);
    let problem = platform::ApiError::from(InterestError::Refused(r.clone()));
    let err = InterestError::Refused(r);
    let kept = store::StoredRefusal {
        request_hash: request_hash.to_string(),
        status: problem.status.as_u16() as i16,
        code: problem.code,
        detail: problem.detail,
    };
    if let Err(e) = store::record_refusal(&state.pool, id, key, &kept).await {
        // The refusal stands; only its replay is lost (a retry is evaluated afresh).
        tracing::warn!(error = %e, "refusal not kept against its key");
    }
    err
}

enum Booked {
    Paid(Payout),
    /// The ledger found an input changed since the quote (or the period moved on).
    Stale(String),
}

/// What the ledger is asked to book for an evaluated payout.
pub(crate) fn posting_request(e: &Evaluation, key: &str, request_hash: &str) -> InterestPostingRequest {
    let q = &e.quote;
    InterestPostingRequest {
        payout_id: Uuid::new_v4(),
        account_id: e.account.account_id,
        customer_id: e.customer.customer_id,
        product_code: e.account.product_code.clone(),
        business_date: e.today,
        period_from: q.period_from,
        period_to: q.period_to,
        amounts: q.amounts,
        carry_in_units: q.carry_in_units,
        carry_out_units: q.carry_out_units,
        tax_category: e.customer.tax_category,
        idempotency_key: key.to_string(),
        request_hash: request_hash.to_string(),
        basis: e.basis.clone(),
    }
}

/// Just before the ledger is asked to book: a fault point, and the test-only pause
/// (PAYOUT_PAUSE_BEFORE_BOOKING_MS) that widens the window between quote and booking.
pub(crate) async fn before_booking(state: &Payouts) {
    platform::fault::point("payout.before_ledger_booking");
    if !state.pause_before_booking.is_zero() {
        tokio::time::sleep(state.pause_before_booking).await;
    }
}

/// Records payouts the ledger booked (and so their tax events) in one commit, wakes the outbox
/// relay, and sets each account's paid marker (its key) for the business date (a run's chunk; an
/// on-demand payout sets its marker as it gives its lock back).
pub(crate) async fn record_booked(
    state: &Payouts,
    booked: &[InterestPosting],
    today: NaiveDate,
) -> Result<(), InterestError> {
    record(state, booked).await?;
    // A key replayed from another day's payout says nothing about today.
    futures::stream::iter(booked.iter().filter(|p| p.request.business_date == today))
        .for_each_concurrent(MARKERS_IN_FLIGHT, |p| {
            mark_paid(state, p.request.account_id, &p.request.idempotency_key, today)
        })
        .await;
    Ok(())
}

/// Records payouts the ledger booked (and so their tax events) in one commit and wakes the outbox
/// relay.
async fn record(state: &Payouts, booked: &[InterestPosting]) -> Result<(), InterestError> {
    let trace = serde_json::to_value(platform::telemetry::current_trace_headers()).unwrap_or_default();
    store::record_payouts(&state.pool, booked, &trace).await?;
    platform::fault::point("payout.after_record");
    state.outbox_wake.notify_one();
    Ok(())
}

/// Paid markers set at once when a run's chunk is recorded.
const MARKERS_IN_FLIGHT: usize = 32;

/// Asks the ledger to book the evaluated quote, then records it here with its tax event.
async fn book(
    state: &Payouts,
    e: &Evaluation,
    key: &str,
    request_hash: &str,
) -> Result<Result<Booked, Refusal>, InterestError> {
    let request = posting_request(e, key, request_hash);
    before_booking(state).await;
    let t = Instant::now();
    let booked = state.ledger.book_interest(&request).await;
    stage("booking", t);
    let posting: InterestPosting = match booked {
        Ok(p) => p,
        // The ledger's refusals, mapped into ours; any other is a bug (500).
        Err(err) => match err.refusal() {
            Some(Code::AlreadyPaidToday) => return Ok(Err(Refusal::AlreadyPaidToday)),
            Some(Code::QuoteStale | Code::PayoutPeriodMismatch) => {
                return Ok(Ok(Booked::Stale(err.to_string())));
            }
            _ => return Err(err.into()),
        },
    };
    if posting.request.request_hash != request_hash {
        return Err(InterestError::KeyReused);
    }
    platform::fault::point("payout.after_ledger_booking");
    let t = Instant::now();
    record(state, std::slice::from_ref(&posting)).await?;
    stage("record", t);
    tracing::info!(account_id = %posting.request.account_id, payout_id = %posting.request.payout_id, gross = posting.request.amounts.gross(), net = posting.request.amounts.net(), "interest paid");
    Ok(Ok(Booked::Paid(store::payout_from_posting(&posting))))
}
