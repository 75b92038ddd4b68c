//! Products and rate schedules: validation into domain types, and the product's rate table.

use contracts::{Product, RateScheduleBody};
use domain::{AnnualRate, Band, RateSchedule, RateTable};
use platform::revision::{self, Publisher};
use sqlx::PgPool;

use crate::error::InterestError;
use crate::store::{self, ScheduleConflict};

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

pub async fn rate_table(pool: &PgPool, code: &str) -> Result<RateTable, InterestError> {
    let bodies = store::schedules(pool, code).await?;
    let schedules = bodies
        .iter()
        .map(parse_schedule)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| InterestError::Inconsistent(format!("stored schedule of {code} is invalid: {e}")))?;
    Ok(RateTable::new(schedules))
}

pub async fn create_product(pool: &PgPool, code: &str, name: &str) -> Result<Product, InterestError> {
    if code.is_empty() || code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid("code", "code must be 1-64 letters, digits, '_' or '-'"));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name", "name must be 1 to 200 characters"));
    }
    match store::insert_product(pool, code, name).await {
        Err(e) if platform::db::is_unique_violation(&e, None) => {
            Err(InterestError::Conflict("PRODUCT_EXISTS", format!("product {code} already exists")))
        }
        Err(e) => Err(e.into()),
        Ok(()) => Ok(Product { code: code.into(), name: name.into(), rate_schedules: vec![] }),
    }
}

pub async fn product(pool: &PgPool, code: &str) -> Result<Product, InterestError> {
    let name = store::product_name(pool, code).await?.ok_or_else(|| InterestError::ProductNotFound(code.into()))?;
    Ok(Product { code: code.into(), name, rate_schedules: store::schedules(pool, code).await? })
}

pub async fn products(pool: &PgPool) -> Result<Vec<Product>, InterestError> {
    let mut out = Vec::new();
    for (code, name) in store::product_codes(pool).await? {
        let rate_schedules = store::schedules(pool, &code).await?;
        out.push(Product { code, name, rate_schedules });
    }
    Ok(out)
}

/// Adds a schedule and tells cached estimates of the product's accounts that rates changed.
pub async fn add_schedule(
    pool: &PgPool,
    revisions: &Publisher,
    code: &str,
    body: &RateScheduleBody,
) -> Result<Product, InterestError> {
    let schedule = parse_schedule(body)?;
    store::product_name(pool, code).await?.ok_or_else(|| InterestError::ProductNotFound(code.into()))?;
    // Store the canonical form (rates normalised) so reads show what the engine uses.
    let canonical = RateScheduleBody {
        effective_from: schedule.effective_from(),
        bands: schedule
            .bands()
            .iter()
            .map(|b| contracts::BandBody { from: b.from, to: b.to, rate: b.rate.to_percent_string() })
            .collect(),
    };
    match store::insert_schedule(pool, code, &canonical).await? {
        Ok(rev) => {
            revisions.publish(revision::rates_key(code), rev).await;
            product(pool, code).await
        }
        Err(ScheduleConflict::Exists) => Err(InterestError::Conflict(
            "RATE_SCHEDULE_EXISTS",
            format!("{code} already has a schedule effective from {}", body.effective_from),
        )),
        Err(ScheduleConflict::AffectsPaidPeriod(p)) => Err(InterestError::Conflict(
            "RATE_SCHEDULE_AFFECTS_PAID_PERIOD",
            format!("interest of {code} is already paid through {p}; a new schedule must start after it"),
        )),
    }
}
