//! A payout run's claimed chunk, paid with batched reads and one ledger booking call: the keys
//! already answered, the last payouts, the rate tables and the ledger's balances are read once for
//! the chunk; the quotes are computed as on demand (`payout::assessment`); the ledger books the
//! chunk in one transaction with each payout checked alone; the payouts (and so their tax events)
//! are recorded in one commit. Whatever the batch does not settle plainly — a key already answered,
//! a refusal, a payout the ledger booked but we have not recorded, a stale quote, a busy row, a
//! failed call — goes through the on-demand use case (`worker::pay_one`), so eligibility, amounts,
//! idempotency and refusals are the same whichever path an account takes.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::NaiveDate;
use contracts::{Account, BalancesBatch, BalancesQuery, Customer, InterestPosting, InterestPostingBatch};
use domain::payout_period;
use uuid::Uuid;

use super::store::Outcome;
use super::{ItemState, Runs};
use crate::error::InterestError;
use crate::payout::{self, Evaluation};

/// The key a run pays an account under: a resumed or retried run replays it.
pub fn key(run_id: Uuid, account_id: Uuid) -> String {
    format!("run:{run_id}:{account_id}")
}

/// The request hash of a run's payout (it has no body).
pub fn request_hash() -> String {
    platform::extract::hash(b"")
}

/// Pays what the batch can of `ids`: the outcomes of the accounts it paid, and the accounts left to
/// the on-demand path.
pub async fn pay(state: &Runs, run_id: Uuid, ids: &[Uuid]) -> Result<(Vec<Outcome>, Vec<Uuid>), InterestError> {
    let today = state.clock.today().await?;
    let mut rest = Vec::new();
    let keys: Vec<String> = ids.iter().map(|id| key(run_id, *id)).collect();
    let answered: HashSet<Uuid> = payout::answered(&state.payouts, ids, &keys).await?.into_iter().collect();
    let (fresh, replays): (Vec<Uuid>, Vec<Uuid>) = ids.iter().partition(|id| !answered.contains(id));
    rest.extend(replays);

    let t = Instant::now();
    let parties = parties(state, &fresh).await?;
    stage("directory", t);
    let t = Instant::now();
    let (evaluations, left) = evaluate(state, today, parties).await?;
    rest.extend(left);
    stage("quote", t);

    let hash = request_hash();
    let requests: Vec<_> =
        evaluations.iter().map(|e| payout::posting_request(e, &key(run_id, e.account.account_id), &hash)).collect();
    if requests.is_empty() {
        return Ok((Vec::new(), rest));
    }
    payout::before_booking(&state.payouts).await;
    let t = Instant::now();
    let answer = state.ledger.book_interest_many(&InterestPostingBatch { postings: requests }).await?;
    stage("booking", t);
    let mut booked: Vec<InterestPosting> = Vec::new();
    for o in answer.outcomes {
        match o.posting {
            Some(p) if p.request.request_hash == hash => booked.push(p),
            _ => {
                if o.code.as_deref() == Some(contracts::problem::Code::QuoteStale.as_str()) {
                    metrics::counter!("interest_quote_stale_total").increment(1);
                }
                rest.push(o.account_id)
            }
        }
    }
    platform::fault::point("payout.after_ledger_booking");
    let t = Instant::now();
    payout::record_booked(&state.payouts, &booked, today).await?;
    stage("record", t);
    let outcomes = booked
        .iter()
        .map(|p| {
            let payout = payout::payout_from_posting(p);
            payout::count_paid(&payout);
            if let Some(shadow) = &state.shadow {
                shadow.offer_from_run(payout.clone());
            }
            Outcome {
                account_id: p.request.account_id,
                state: ItemState::Paid,
                reason: None,
                paid: Some((payout.payout_id, payout.amounts)),
                retry_in_ms: 0,
            }
        })
        .collect();
    Ok((outcomes, rest))
}

/// Each account with its customer, read from their owners for the whole chunk (two calls, current
/// revisions: a monthly run finds the directory cold); an account either owner does not give is
/// left to the on-demand path, which answers for it.
async fn parties(state: &Runs, ids: &[Uuid]) -> Result<Vec<Result<(Account, Customer), Uuid>>, InterestError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let customers_peer =
        state.directory.customers().ok_or_else(|| InterestError::Inconsistent("no customer client".into()))?;
    let accounts: HashMap<Uuid, Account> =
        state.directory.account_info().accounts(ids).await?.accounts.into_iter().map(|a| (a.account_id, a)).collect();
    let mut owners: Vec<Uuid> = accounts.values().map(|a| a.customer_id).collect();
    owners.sort_unstable();
    owners.dedup();
    let customers: HashMap<Uuid, Customer> = if owners.is_empty() {
        HashMap::new()
    } else {
        customers_peer.customers(&owners).await?.customers.into_iter().map(|c| (c.customer_id, c)).collect()
    };
    Ok(ids
        .iter()
        .map(|id| {
            let a = accounts.get(id).ok_or(*id)?;
            let c = customers.get(&a.customer_id).ok_or(*id)?;
            Ok((a.clone(), c.clone()))
        })
        .collect())
}

/// The payable evaluations of the chunk, and the accounts left to the on-demand path (refused, or
/// the ledger booked a payout we have not recorded).
async fn evaluate(
    state: &Runs,
    today: NaiveDate,
    parties: Vec<Result<(Account, Customer), Uuid>>,
) -> Result<(Vec<Evaluation>, Vec<Uuid>), InterestError> {
    let mut rest = Vec::new();
    let mut found = Vec::new();
    for p in parties {
        match p {
            Ok((a, c)) if payout::status_refusal(&a, &c).is_none() => found.push((a, c)),
            Ok((a, _)) => rest.push(a.account_id),
            Err(id) => rest.push(id),
        }
    }
    let ids: Vec<Uuid> = found.iter().map(|(a, _)| a.account_id).collect();
    let mut last = if ids.is_empty() { HashMap::new() } else { payout::last_payouts(&state.payouts, &ids).await? };
    let mut queries = Vec::new();
    let mut quotable = Vec::new();
    for (a, c) in found {
        let prior = last.remove(&a.account_id);
        let period = payout_period(a.opened_on, prior.as_ref().map(|p| p.period_to), today);
        if period.1 < period.0 || prior.as_ref().is_some_and(|p| p.business_date == today) {
            rest.push(a.account_id);
            continue;
        }
        queries.push(BalancesQuery { account_id: a.account_id, from: period.0, to: period.1 });
        quotable.push((a, c, prior, period));
    }
    if queries.is_empty() {
        return Ok((Vec::new(), rest));
    }
    let balances = state.ledger.daily_balances_many(&BalancesBatch { queries }).await?.accounts;
    // The rules kept in process while Redis says they are current (one GET a chunk), else read
    // again; their revision goes into every quote's basis.
    let known = match &state.redis {
        Some(redis) => platform::revision::read(redis, &[contracts::revision::tax_rules()])
            .await
            .ok()
            .and_then(|v| v.first().and_then(platform::revision::parse_rev)),
        None => None,
    };
    let (tax_rules, tax_rules_rev) = state.reference.tax_rules(known, false).await?;
    let mut tables = HashMap::new();
    let mut evaluations = Vec::new();
    for ((a, c, prior, period), b) in quotable.into_iter().zip(balances) {
        // The ledger booked a payout we have not recorded: the on-demand path repairs that first.
        let unrecorded = b
            .last_interest_posting
            .as_ref()
            .is_some_and(|p| prior.as_ref().is_none_or(|l| p.request.business_date > l.business_date));
        if b.account_id != a.account_id || unrecorded {
            rest.push(a.account_id);
            continue;
        }
        if !tables.contains_key(&a.product_code) {
            let table = state.reference.rate_table(&a.product_code, None, false).await?;
            tables.insert(a.product_code.clone(), table);
        }
        let (table, rates_rev) = &tables[&a.product_code];
        let revs = (*rates_rev, tax_rules_rev);
        let assessed = payout::assessment(table, &tax_rules, &c, today, period, prior.as_ref(), Some(b), revs)?;
        let e = Evaluation::new(a, c, today, assessed);
        match e.refusal {
            None => evaluations.push(e),
            Some(_) => rest.push(e.account.account_id),
        }
    }
    Ok((evaluations, rest))
}

/// Time spent in one stage of a run's chunk (`interest_run_chunk_stage_seconds{stage}`).
fn stage(name: &'static str, since: Instant) {
    metrics::histogram!("interest_run_chunk_stage_seconds", "stage" => name).record(since.elapsed().as_secs_f64());
}
