//! Products and rate schedules: validation into domain types, the product's rate table, and the
//! use cases that list, create and change them.

use contracts::problem::Code;
use contracts::{PayoutFence, Product, RateScheduleBody};
use domain::{AnnualRate, Band, RateSchedule, RateTable};
use peers::Ledger;
use platform::db::GuardedBy;
use sqlx::PgPool;

use super::{store, Reference};
use crate::error::InterestError;

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> InterestError {
    InterestError::Invalid { field: field.into(), detail: detail.into() }
}

/// Parses a schedule body; errors name the offending field (`bands[1].rate`).
pub fn parse_schedule(body: &RateScheduleBody) -> Result<RateSchedule, InterestError> {
    let mut bands = Vec::with_capacity(body.bands.len());
    for (i, b) in body.bands.iter().enumerate() {
        let rate =
            AnnualRate::parse_percent(&b.rate).map_err(|e| invalid(format!("bands[{i}].rate"), e.to_string()))?;
        bands.push(Band { from: b.from, to: b.to, rate });
    }
    RateSchedule::new(body.effective_from, bands).map_err(|e| invalid(e.field(), e.to_string()))
}

/// The product's rate table and the revision it is at (carried by a quote, checked at booking).
pub async fn rate_table(pool: &PgPool, code: &str) -> Result<(RateTable, i64), InterestError> {
    let (rev, bodies) = store::schedules_at_rev(pool, code).await?;
    let schedules = bodies
        .iter()
        .map(parse_schedule)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InterestError::Inconsistent(format!("stored schedule of {code} is invalid: {e}")))?;
    Ok((RateTable::new(schedules), rev))
}

pub async fn create_product(reference: &Reference, code: &str, name: &str) -> Result<Product, InterestError> {
    if !contracts::is_product_code(code) {
        return Err(invalid("code", "code must be 1-64 letters, digits, '_' or '-'"));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "name must be 1 to 200 characters"));
    }
    store::insert_product(&reference.pool, code, name).await.guarded_by("products_pkey", || {
        InterestError::Rule(Code::ProductExists, format!("product {code} already exists"))
    })?;
    Ok(Product { code: code.into(), name: name.into(), rate_schedules: vec![], rates_rev: 0 })
}

pub async fn product(reference: &Reference, code: &str) -> Result<Product, InterestError> {
    let pool = &reference.pool;
    let name = store::product_name(pool, code).await?.ok_or_else(|| InterestError::ProductNotFound(code.into()))?;
    let (rates_rev, rate_schedules) = store::schedules_at_rev(pool, code).await?;
    Ok(Product { code: code.into(), name, rate_schedules, rates_rev })
}

pub async fn products(reference: &Reference) -> Result<Vec<Product>, InterestError> {
    let pool = &reference.pool;
    let mut out = Vec::new();
    for (code, name) in store::product_codes(pool).await? {
        let (rates_rev, rate_schedules) = store::schedules_at_rev(pool, &code).await?;
        out.push(Product { code, name, rate_schedules, rates_rev });
    }
    Ok(out)
}

/// Adds a schedule and tells cached estimates of the product's accounts that rates changed.
///
/// Race-free against payouts in flight (SPEC §7): with the product row locked and the schedule
/// written but not committed, the ledger's rates fence is raised to the new revision. That waits
/// for bookings in flight on the product, refuses the schedule if a booked payout already covers
/// its first day, and from then on refuses bookings quoted at the old rates; only then does the
/// schedule commit here.
pub async fn add_schedule(
    reference: &Reference,
    code: &str,
    body: &RateScheduleBody,
) -> Result<Product, InterestError> {
    let schedule = parse_schedule(body)?;
    // Store the canonical form (rates normalised) so reads show what the engine uses.
    let canonical = RateScheduleBody {
        effective_from: schedule.effective_from(),
        bands: schedule
            .bands()
            .iter()
            .map(|b| contracts::BandBody { from: b.from, to: b.to, rate: b.rate.to_percent_string() })
            .collect(),
    };
    let mut tx = reference.pool.begin().await?;
    let rev =
        store::lock_product_rates(&mut tx, code).await?.ok_or_else(|| InterestError::ProductNotFound(code.into()))?;
    if let Some(p) = store::product_paid_through(&mut tx, code).await?.filter(|p| canonical.effective_from <= *p) {
        return Err(affects_paid_period(code, p));
    }
    if !store::insert_schedule(&mut tx, code, &canonical).await? {
        return Err(InterestError::Rule(
            Code::RateScheduleExists,
            format!("{code} already has a schedule effective from {}", body.effective_from),
        ));
    }
    let rev =
        raise_rates_fence(reference.ledger.as_ref(), &mut tx, code, rev + 1, Some(canonical.effective_from)).await?;
    platform::fault::point("rates.after_fence");
    tx.commit().await?;
    reference.revisions.publish(contracts::revision::rates(code), rev).await;
    product(reference, code).await
}

fn affects_paid_period(code: &str, paid: chrono::NaiveDate) -> InterestError {
    InterestError::Rule(
        Code::RateScheduleAffectsPaidPeriod,
        format!("interest of {code} is already paid through {paid}; a new schedule must start after it"),
    )
}

/// Raises the ledger's rates fence of the product (locked in `tx`) to `rev` and stores the
/// revision the fence reports: higher than `rev` only if an earlier change raised it and then
/// failed to commit here, which this heals.
async fn raise_rates_fence(
    ledger: &dyn Ledger,
    tx: &mut sqlx::PgConnection,
    code: &str,
    rev: i64,
    effective_from: Option<chrono::NaiveDate>,
) -> Result<i64, InterestError> {
    let fence = PayoutFence { subject: contracts::fence::rates(code), rev, effective_from };
    let raised: PayoutFence = match ledger.raise_fence(&fence).await {
        Ok(f) => f,
        Err(e) if e.refusal() == Some(Code::RateScheduleAffectsPaidPeriod) => {
            let detail = format!("interest of {code} is already paid through the schedule's start (the ledger: {e})");
            return Err(InterestError::Rule(Code::RateScheduleAffectsPaidPeriod, detail));
        }
        Err(e) => return Err(e.into()),
    };
    store::set_rates_rev(tx, code, raised.rev).await?;
    Ok(raised.rev)
}
