//! The simulator's own store: withholding rates, deviations, the payouts it made. Every statement
//! is checked against the schema at compile time (`sqlx::query!` and friends, with the offline
//! metadata in `.sqlx/`).

use chrono::NaiveDate;
use contracts::legacy::{LegacyDeviations, LegacyPayout};
use sqlx::PgPool;
use uuid::Uuid;

use crate::arithmetic::WithholdingRates;

/// The rates in force on `day` for a category (none: nothing withheld).
pub async fn withholding_rates(pool: &PgPool, category: &str, day: NaiveDate) -> Result<WithholdingRates, sqlx::Error> {
    let rates = sqlx::query_as!(
        WithholdingRates,
        "SELECT income_tax_ppm, local_tax_ppm, rural_special_ppm FROM withholding_rates
         WHERE tax_category = $1 AND effective_from <= $2 ORDER BY effective_from DESC LIMIT 1",
        category,
        day,
    )
    .fetch_optional(pool)
    .await?;
    Ok(rates.unwrap_or_default())
}

pub async fn deviations(pool: &PgPool) -> Result<Option<LegacyDeviations>, sqlx::Error> {
    let v = sqlx::query_scalar!("SELECT settings FROM deviations WHERE id = 1").fetch_optional(pool).await?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

pub async fn set_deviations(pool: &PgPool, d: &LegacyDeviations) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO deviations (id, settings) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET settings = EXCLUDED.settings, changed_at = now()",
        serde_json::json!(d),
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// The payout made on the account under a key, with the hash of the request that made it.
pub async fn payout_by_key(
    pool: &PgPool,
    account: Uuid,
    key: &str,
) -> Result<Option<(String, LegacyPayout)>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT request_hash, payout FROM payouts WHERE account_id = $1 AND idempotency_key = $2",
        account,
        key,
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let payout = serde_json::from_value(row.payout).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Some((row.request_hash, payout)))
}

pub async fn insert_payout(pool: &PgPool, key: &str, hash: &str, p: &LegacyPayout) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO payouts (idempotency_key, request_hash, payout_id, account_id, business_date, payout)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        key,
        hash,
        p.payout_id,
        p.account_id,
        p.business_date,
        serde_json::json!(p),
    )
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn payouts_of(pool: &PgPool, account: Uuid) -> Result<Vec<LegacyPayout>, sqlx::Error> {
    let rows =
        sqlx::query_scalar!("SELECT payout FROM payouts WHERE account_id = $1 ORDER BY business_date DESC", account)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect())
}
