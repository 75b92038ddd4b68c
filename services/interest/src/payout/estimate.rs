//! The estimate of the interest payable now (`GET /v1/interest/accounts/{id}`), served from the
//! estimate cache while its entry is good (see `estimate_cache`).

use chrono::NaiveDate;
use contracts::Estimate;
use domain::{Quote, Refusal};
use platform::revision;
use uuid::Uuid;

use super::evaluate::{assess, status_refusal, Missing, Rates};
use super::{estimate_cache, Payouts};
use crate::error::InterestError;

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

/// The estimate (see `estimate_cache`): warm, one Redis read and no other I/O — answered from process
/// memory when the Redis mirror holds its keys (`platform::redis_mirror`).
pub async fn estimate(state: &Payouts, id: Uuid) -> Result<Estimate, InterestError> {
    let now = state.clock.now().await?;
    let today = domain::date::business_date_at(now);
    let lookup = state.directory.lookup(id, |a| estimate_cache::keys(id, &a.product_code, today)).await?;
    let account = lookup.account;
    let customer = lookup.customer.ok_or_else(|| InterestError::Inconsistent("no customer client".into()))?;
    let status = status_refusal(&account, &customer);
    let read = lookup.extra.as_ref().map(|v| estimate_cache::read(v, customer.tax_category));
    let rates = Rates::known(read.as_ref().map(|r| r.revisions));
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
        revisions: read.revisions,
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
