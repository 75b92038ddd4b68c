//! The evaluation of an account's unpaid period: account and customer from the directory, the
//! last recorded payout, the product's rate table and the tax rules, the ledger's balances of the
//! period (or the day's cached estimate's quote); eligibility (SPEC §5) and the exact arithmetic
//! (SPEC §3–4) decide, and the quote carries its basis, which the ledger verifies when it books.

use std::time::Instant;

use chrono::NaiveDate;
use contracts::{Account, Customer, DailyBalances, Payout, QuoteBasis};
use domain::{check_eligibility, payout_period, quote, BalanceHistory, Quote, RateTable, Refusal, TaxRule, TaxRules};
use uuid::Uuid;

use super::{estimate_cache, stage, store, Payouts};
use crate::error::InterestError;

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
    /// What the quote was computed from: the balances, the rates and the tax rules (the account's
    /// and customer's revisions are the parties' at decision time: [`Evaluation::new`]).
    pub(crate) basis: QuoteBasis,
}

async fn fetch_balances(
    state: &Payouts,
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
async fn parties(state: &Payouts, id: Uuid, today: NaiveDate) -> Result<Parties, InterestError> {
    let l = state.directory.lookup(id, |a| estimate_cache::keys(id, &a.product_code, today)).await?;
    let customer = l.customer.ok_or_else(|| InterestError::Inconsistent("no customer client".into()))?;
    let read = l.extra.map(|values| estimate_cache::read(&values, customer.tax_category));
    let rates = Rates::known(read.as_ref().map(|r| r.revisions));
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
pub(super) struct Rates {
    pub(super) known: platform::revision::Rev,
    pub(super) tax_known: platform::revision::Rev,
    pub(super) fresh: bool,
}

impl Rates {
    /// At the revisions read with the estimate cache's keys (none when Redis was unreadable).
    pub(super) fn known(revisions: Option<estimate_cache::Revisions>) -> Rates {
        Rates { known: revisions.and_then(|r| r.rates), tax_known: revisions.and_then(|r| r.tax_rules), fresh: false }
    }
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
        Some(Self { quote: c.quote, refusal: None, basis: c.basis })
    }

    pub(super) fn to_cache(&self) -> estimate_cache::CachedQuote {
        estimate_cache::CachedQuote { quote: self.quote, basis: self.basis.clone() }
    }
}

/// Whether an assessment may write: a payout records a payout the ledger booked but this service
/// had not (its key's replay needs it); an estimate only reads (the recovery worker records it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    Record,
    Skip,
}

/// The quote for the unpaid period up to yesterday, and the refusals the ledger decides (already
/// paid today, nothing to pay). Reads the ledger (one call, two if nothing is unpaid).
pub(super) async fn assess(
    state: &Payouts,
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
    let basis = QuoteBasis {
        history_rev,
        balances_digest,
        rates_rev,
        tax_rules_rev: Some(tax_rules_rev),
        // Set from the parties when the decision is made (Evaluation::new).
        account_rev: 0,
        customer_rev: 0,
    };
    Ok(Assessment { quote, refusal, basis })
}

/// Evaluates a payout now. With `cached`, the day's estimate entry, when good, supplies the quote
/// (no ledger read): the booking verifies its basis anyway. A re-quote after a stale booking reads
/// everything afresh.
pub async fn evaluate(state: &Payouts, id: Uuid, cached: bool) -> Result<Evaluation, InterestError> {
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
        let basis = QuoteBasis { account_rev: account.rev, customer_rev: customer.rev, ..a.basis };
        Evaluation { account, customer, today, quote: a.quote, refusal, basis }
    }
}
