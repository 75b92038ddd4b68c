//! Estimates and payouts (SPEC §3–§7). See docs/payout-design.md for the crash-safety argument.
//!
//! Payout steps: replay by Idempotency-Key → Redis lock (optimisation) → evaluate (account,
//! customer, ledger balances, rates, tax) → the ledger books it (the one durable commit; it
//! refuses a second payout that day and replays the same key) → record it here with its tax event
//! (non-durable commit, recoverable from the ledger) → wake the outbox relay.

use std::time::Instant;

use futures::StreamExt;

use chrono::NaiveDate;
use contracts::problem::Code;
use contracts::{
    Account, Customer, DailyBalances, Estimate, InterestPosting, InterestPostingRequest, Payout, QuoteBasis,
};
use domain::{check_eligibility, payout_period, quote, BalanceHistory, Quote, RateTable, Refusal, TaxRule, TaxRules};
use uuid::Uuid;

use platform::redis::Lock;
use platform::revision;

use crate::error::InterestError;
use crate::state::AppState;
use crate::store::PriorOutcome;
use crate::{estimate_cache, store};

/// Everything a payout decision needs, gathered for one account on one business date.
pub struct Evaluation {
    pub account: Account,
    pub customer: Customer,
    pub today: NaiveDate,
    pub quote: Quote,
    pub refusal: Option<Refusal>,
    /// The versions of the inputs, verified by the ledger when it books.
    pub basis: QuoteBasis,
}

/// A quote and what it was computed from on the interest side and the ledger's.
pub(crate) struct Assessment {
    pub(crate) quote: Quote,
    /// Refusals the ledger's data decides (already paid today, nothing to pay).
    pub(crate) refusal: Option<Refusal>,
    pub(crate) history_rev: i64,
    pub(crate) balances_digest: String,
    pub(crate) rates_rev: i64,
    pub(crate) tax_rules_rev: i64,
}

async fn fetch_balances(
    state: &AppState,
    id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<DailyBalances, InterestError> {
    Ok(state.ledger.daily_balances(id, from, to).await?)
}

/// SPEC §5 refusals that come from statuses and holds (checked first).
pub(crate) fn status_refusal(account: &Account, customer: &Customer) -> Option<Refusal> {
    check_eligibility(customer.status, account.status, account.deposit_suspended).err()
}

/// The account and its customer, from the directory (cached by mutability), and the day's cached
/// estimate entry while it is good (read in the same Redis round trip).
async fn parties(state: &AppState, id: Uuid, today: NaiveDate) -> Result<Parties, InterestError> {
    let l = state.directory.lookup(id, |a| estimate_cache::keys(id, &a.product_code, today)).await?;
    let customer = l.customer.ok_or_else(|| InterestError::Inconsistent("no customer client".into()))?;
    let read = l.extra.map(|values| estimate_cache::read(&values, customer.tax_category));
    let rates = Rates {
        known: read.as_ref().and_then(|r| r.rates_rev),
        tax_known: read.as_ref().and_then(|r| r.tax_rules_rev),
        fresh: false,
    };
    Ok(Parties { account: l.account, customer, entry: read.and_then(|r| r.entry), rates })
}

struct Parties {
    account: Account,
    customer: Customer,
    entry: Option<estimate_cache::Entry>,
    rates: Rates,
}

/// How an assessment takes the product's rates and the tax rules: the revisions Redis holds for
/// them (the in-process copies are reused at those revisions), or `fresh` from the database (a
/// re-quote after a stale booking).
#[derive(Clone, Copy)]
struct Rates {
    known: platform::revision::Rev,
    tax_known: platform::revision::Rev,
    fresh: bool,
}

impl Assessment {
    /// The assessment behind a cached estimate, if the entry kept its quote and it was payable. A
    /// cached refusal is not reused: no booking would check it, and a refusal is kept under the
    /// request's key.
    fn cached(entry: estimate_cache::Entry) -> Option<Self> {
        if entry.estimate.code.is_some() {
            return None;
        }
        let c = entry.quote?;
        Some(Self {
            quote: c.quote,
            refusal: None,
            history_rev: c.history_rev,
            balances_digest: c.balances_digest,
            rates_rev: c.rates_rev,
            tax_rules_rev: c.tax_rules_rev,
        })
    }

    fn to_cache(&self) -> estimate_cache::CachedQuote {
        estimate_cache::CachedQuote {
            quote: self.quote,
            history_rev: self.history_rev,
            balances_digest: self.balances_digest.clone(),
            rates_rev: self.rates_rev,
            tax_rules_rev: self.tax_rules_rev,
        }
    }
}

/// Whether an assessment may write: a payout records a payout the ledger booked but this service
/// had not (its key's replay needs it); an estimate only reads (the recovery worker records it).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    Record,
    Skip,
}

/// The quote for the unpaid period up to yesterday, and the refusals the ledger decides (already
/// paid today, nothing to pay). Reads the ledger (one call, two if nothing is unpaid).
async fn assess(
    state: &AppState,
    account: &Account,
    customer: &Customer,
    today: NaiveDate,
    missing: Missing,
    rates: Rates,
) -> Result<Assessment, InterestError> {
    let id = account.account_id;
    let (last, (table, rates_rev), (tax_rules, tax_rules_rev)) = tokio::try_join!(
        async { store::last_payout(&state.pool, id).await.map_err(InterestError::from) },
        state.reference.rate_table(&account.product_code, rates.known, rates.fresh),
        state.reference.tax_rules(rates.tax_known, rates.fresh),
    )?;
    let mut last = last;
    // At most one repair round: if the ledger booked a payout we have not recorded (a crash
    // between its commit and ours), start again from it (recording it first for a payout).
    for _ in 0..2 {
        let paid_through = last.as_ref().map(|p| p.period_to);
        let period = payout_period(account.opened_on, paid_through, today);
        let balances =
            if period.1 >= period.0 { Some(fetch_balances(state, id, period.0, period.1).await?) } else { None };
        let ledger_last = match &balances {
            Some(b) => b.last_interest_posting.clone(),
            None => fetch_balances(state, id, today, today).await?.last_interest_posting,
        };
        if let Some(posting) =
            ledger_last.filter(|p| last.as_ref().is_none_or(|l| p.request.business_date > l.business_date))
        {
            if missing == Missing::Record {
                tracing::warn!(account_id = %id, payout_id = %posting.request.payout_id, "recording a payout the ledger booked but we had not");
                store::record_payouts(&state.pool, std::slice::from_ref(&posting), &serde_json::json!({})).await?;
            }
            last = Some(store::payout_from_posting(&posting));
            continue;
        }
        let revs = (rates_rev, tax_rules_rev);
        return assessment(&table, &tax_rules, customer, today, period, last.as_ref(), balances, revs);
    }
    Err(InterestError::Inconsistent(format!("payout records of {id} did not converge with the ledger")))
}

/// The quote of `period` from the ledger's balances of it (`None`: nothing unpaid), and the
/// refusals the ledger's data decides (already paid today, nothing to pay). No I/O: the on-demand
/// payout and a run's chunk compute it alike.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assessment(
    table: &RateTable,
    tax_rules: &TaxRules,
    customer: &Customer,
    today: NaiveDate,
    period: (NaiveDate, NaiveDate),
    last: Option<&Payout>,
    balances: Option<DailyBalances>,
    (rates_rev, tax_rules_rev): (i64, i64),
) -> Result<Assessment, InterestError> {
    let (history_rev, balances_digest) =
        balances.as_ref().map(|b| (b.history_rev, b.digest.clone())).unwrap_or_default();
    let history = BalanceHistory::new(
        balances.map(|b| b.points.into_iter().map(|p| (p.date, p.balance)).collect()).unwrap_or_default(),
    );
    // A tax rule matters only for an amount that can be paid: with the clock before the account
    // opened, or nothing accrued, there is nothing to withhold and no rule is needed.
    let untaxed = TaxRule { category: customer.tax_category, effective_from: today, components: Vec::new() };
    let rule = tax_rules.rule_for(customer.tax_category, today);
    let carry = last.map_or(0, |p| p.carry_units);
    let quote = quote(table, &history, period, carry, rule.as_ref().map_or(&untaxed, |r| *r))
        .map_err(|e| InterestError::Inconsistent(e.to_string()))?;
    if let (true, Err(e)) = (quote.payable, rule) {
        return Err(InterestError::Inconsistent(e.to_string()));
    }
    let refusal = last
        .filter(|p| p.business_date == today)
        .map(|_| Refusal::AlreadyPaidToday)
        .or_else(|| (!quote.payable).then_some(Refusal::NothingToPay));
    Ok(Assessment { quote, refusal, history_rev, balances_digest, rates_rev, tax_rules_rev })
}

/// Evaluates a payout now. With `cached`, the day's estimate entry, when good, supplies the quote
/// (no ledger read): the booking verifies its basis anyway. A re-quote after a stale booking reads
/// everything afresh.
pub async fn evaluate(state: &AppState, id: Uuid, cached: bool) -> Result<Evaluation, InterestError> {
    let today = state.clock.today().await?;
    let t = Instant::now();
    let Parties { account, customer, entry, rates } = parties(state, id, today).await?;
    stage("directory", t);
    let t = Instant::now();
    let a = match entry.filter(|_| cached).and_then(Assessment::cached) {
        Some(a) => {
            metrics::counter!("interest_payout_quotes_total", "source" => "estimate_cache").increment(1);
            stage("quote_cached", t);
            a
        }
        None => {
            metrics::counter!("interest_payout_quotes_total", "source" => "computed").increment(1);
            let a =
                assess(state, &account, &customer, today, Missing::Record, Rates { fresh: !cached, ..rates }).await?;
            stage("quote_computed", t);
            a
        }
    };
    Ok(Evaluation::new(account, customer, today, a))
}

impl Evaluation {
    /// The decision from an assessment: status refusals first, then the ledger's.
    pub(crate) fn new(account: Account, customer: Customer, today: NaiveDate, a: Assessment) -> Self {
        let refusal = status_refusal(&account, &customer).or(a.refusal);
        let basis = QuoteBasis {
            history_rev: a.history_rev,
            balances_digest: a.balances_digest,
            account_rev: account.rev,
            customer_rev: customer.rev,
            rates_rev: a.rates_rev,
            tax_rules_rev: Some(a.tax_rules_rev),
        };
        Evaluation { account, customer, today, quote: a.quote, refusal, basis }
    }
}

fn to_estimate(id: Uuid, today: NaiveDate, q: &Quote, refusal: Option<Refusal>) -> Estimate {
    Estimate {
        account_id: id,
        business_date: today,
        period_from: q.period_from,
        period_to: q.period_to,
        amounts: q.amounts,
        carry_in_units: q.carry_in_units,
        payable: refusal.is_none(),
        code: refusal.map(|r| r.code().to_string()),
    }
}

/// Status refusals come first and are never cached.
fn with_status(mut e: Estimate, status: Option<Refusal>) -> Estimate {
    if let Some(r) = status {
        e.payable = false;
        e.code = Some(r.code().to_string());
    }
    e
}

/// The estimate (see `estimate_cache`): warm, one Redis round trip and no other I/O.
pub async fn estimate(state: &AppState, id: Uuid) -> Result<Estimate, InterestError> {
    let now = state.clock.now().await?;
    let today = domain::date::business_date_at(now);
    let lookup = state.directory.lookup(id, |a| estimate_cache::keys(id, &a.product_code, today)).await?;
    let account = lookup.account;
    let customer = lookup.customer.ok_or_else(|| InterestError::Inconsistent("no customer client".into()))?;
    let status = status_refusal(&account, &customer);
    let read = lookup.extra.as_ref().map(|v| estimate_cache::read(v, customer.tax_category));
    let rates = Rates {
        known: read.as_ref().and_then(|r| r.rates_rev),
        tax_known: read.as_ref().and_then(|r| r.tax_rules_rev),
        fresh: false,
    };
    let compute = || async {
        let a = assess(state, &account, &customer, today, Missing::Skip, rates).await?;
        Ok::<_, InterestError>((to_estimate(id, today, &a.quote, a.refusal.clone()), a.to_cache()))
    };
    let (Some(redis), Some(_)) = (&state.redis_cache, &lookup.extra) else {
        // Redis unreadable: every estimate comes from the databases (slower, still correct).
        estimate_cache::count(false);
        return Ok(with_status(compute().await?.0, status));
    };
    if let Some(entry) = read.and_then(|r| r.entry) {
        estimate_cache::count(true);
        return Ok(with_status(entry.estimate, status));
    }
    let keys = estimate_cache::keys(id, &account.product_code, today);
    let entry_key = estimate_cache::key(id, today);
    let _flight = state.flights.enter(&entry_key).await;
    // Read the revisions again before reading the ledger: an entry stored under them is stale as
    // soon as either moves. Another request may have filled the entry while we waited.
    let Ok(values) = revision::read(redis, &keys).await else {
        estimate_cache::count(false);
        return Ok(with_status(compute().await?.0, status));
    };
    let read = estimate_cache::read(&values, customer.tax_category);
    if let Some(entry) = read.entry {
        estimate_cache::count(true);
        return Ok(with_status(entry.estimate, status));
    }
    let (fresh, quote) = compute().await?;
    estimate_cache::count(false);
    let ttl = domain::date::rest_of_business_date(now);
    let entry = estimate_cache::Entry {
        ledger_rev: read.ledger_rev,
        rates_rev: read.rates_rev,
        tax_rules_rev: read.tax_rules_rev,
        tax_category: customer.tax_category,
        estimate: fresh.clone(),
        quote: Some(quote),
    };
    if let (Ok(json), true) = (serde_json::to_string(&entry), ttl.as_millis() > 0) {
        if let Err(e) = redis.set_px(&entry_key, &json, ttl).await {
            tracing::warn!(error = %e, "estimate not cached");
        }
    }
    Ok(with_status(fresh, status))
}

/// The first answer kept for this key, replayed (SPEC §7; README "Idempotency").
pub(crate) fn replay(prior: PriorOutcome, request_hash: &str) -> Result<Payout, InterestError> {
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

/// "Get interest now".
pub async fn pay(state: &AppState, id: Uuid, key: &str, request_hash: &str) -> Result<Payout, InterestError> {
    let t = Instant::now();
    let prior = store::prior_outcome(&state.pool, id, key).await?;
    stage("replay_lookup", t);
    if let Some(prior) = prior {
        return replay(prior, request_hash);
    }
    let t = Instant::now();
    // The Redis lock keeps replicas from doing the same work twice; the ledger is the real guard,
    // so a Redis outage degrades to that guard instead of refusing payouts (README). Once the
    // account is paid today (the marker), other keys are refused at once instead of queueing on
    // the lock; the paying key itself goes on to its replay.
    let guard = match &state.redis {
        Some(redis) => {
            let today = state.clock.today().await?;
            let (name, marker) = (format!("payout:{id}"), paid_marker(id, today));
            let lock = redis.lock_unless(&name, &marker, state.lock_lease, state.lock_wait).await;
            match lock {
                Ok(Lock::Held(g)) => Some(g),
                Ok(Lock::Done(paid_with)) if paid_with != key => {
                    return Err(refuse(state, id, key, request_hash, Refusal::AlreadyPaidToday).await)
                }
                Ok(Lock::Done(_)) => None,
                Ok(Lock::Busy) => {
                    return Err(InterestError::Rule(
                        Code::PayoutInProgress,
                        "another payout of this account is in progress; retry".into(),
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "redis lock unavailable; relying on the ledger's guard");
                    None
                }
            }
        }
        None => None,
    };
    stage("lock", t);
    // Only a request that waited for the lock can find its key answered meanwhile.
    let recheck = guard.as_ref().is_none_or(|g| g.waited());
    let result = pay_locked(state, id, key, request_hash, recheck).await;
    let t = Instant::now();
    if let Some(g) = guard {
        if let Err(e) = g.release().await {
            tracing::warn!(error = %e, "redis lock release failed; the lease will expire");
        }
    }
    stage("unlock", t);
    result
}

/// Time spent in one stage of a payout (`interest_payout_stage_seconds{stage}`: `replay_lookup`,
/// `lock`, `directory`, `quote_cached` or `quote_computed`, `booking`, `record`, `unlock`), so
/// the milliseconds of a payout can be followed to where they go.
fn stage(name: &'static str, since: Instant) {
    metrics::histogram!("interest_payout_stage_seconds", "stage" => name).record(since.elapsed().as_secs_f64());
}

/// Redis key set once an account's payout of the business date is recorded (value: its
/// Idempotency-Key); an optimisation only — the ledger refuses a second payout that day anyway.
pub(crate) fn paid_marker(id: Uuid, today: NaiveDate) -> String {
    format!("paid:{id}:{today}")
}

/// How many times a payout is quoted before its caller is told the inputs keep changing.
const QUOTE_ATTEMPTS: u32 = 3;

async fn pay_locked(
    state: &AppState,
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
async fn refuse(state: &AppState, id: Uuid, key: &str, request_hash: &str, r: Refusal) -> InterestError {
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
pub(crate) async fn before_booking(state: &AppState) {
    platform::fault::point("payout.before_ledger_booking");
    if !state.pause_before_booking.is_zero() {
        tokio::time::sleep(state.pause_before_booking).await;
    }
}

/// Records payouts the ledger booked (and so their tax events) in one commit, wakes the outbox
/// relay, and sets each account's paid marker (its key) for the business date.
pub(crate) async fn record_booked(
    state: &AppState,
    booked: &[InterestPosting],
    today: NaiveDate,
) -> Result<(), InterestError> {
    let trace = serde_json::to_value(platform::telemetry::current_trace_headers()).unwrap_or_default();
    store::record_payouts(&state.pool, booked, &trace).await?;
    platform::fault::point("payout.after_record");
    state.outbox_wake.notify_one();
    let Some(redis) = &state.redis else { return Ok(()) };
    // The key names the date, so the day after it is never read; the TTL only frees memory.
    let ttl = std::time::Duration::from_secs(26 * 3600);
    futures::stream::iter(booked)
        .for_each_concurrent(MARKERS_IN_FLIGHT, |p| async move {
            let marker = paid_marker(p.request.account_id, today);
            if let Err(err) = redis.set_px(&marker, &p.request.idempotency_key, ttl).await {
                tracing::warn!(error = %err, "paid marker not set; later attempts queue on the lock instead");
            }
        })
        .await;
    Ok(())
}

/// Paid markers set at once when a run's chunk is recorded.
const MARKERS_IN_FLIGHT: usize = 32;

/// Asks the ledger to book the evaluated quote, then records it here with its tax event.
async fn book(
    state: &AppState,
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
    record_booked(state, std::slice::from_ref(&posting), e.today).await?;
    stage("record", t);
    tracing::info!(account_id = %posting.request.account_id, payout_id = %posting.request.payout_id, gross = posting.request.amounts.gross(), net = posting.request.amounts.net(), "interest paid");
    Ok(Ok(Booked::Paid(store::payout_from_posting(&posting))))
}
