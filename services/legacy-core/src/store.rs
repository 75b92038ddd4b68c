//! The simulator's own store: withholding rates, deviations, the payouts it made.

use chrono::NaiveDate;
use contracts::legacy::{LegacyDeviations, LegacyPayout};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::arithmetic::WithholdingRates;

/// The rates in force on `day` for a category (none: nothing withheld).
pub async fn withholding_rates(pool: &PgPool, category: &str, day: NaiveDate) -> Result<WithholdingRates, sqlx::Error> {
    let row = sqlx::query(
        "SELECT income_tax_ppm, local_tax_ppm, rural_special_ppm FROM withholding_rates
         WHERE tax_category = $1 AND effective_from <= $2 ORDER BY effective_from DESC LIMIT 1",
    )
    .bind(category)
    .bind(day)
    .fetch_optional(pool)
    .await?;
    row.map_or(Ok(WithholdingRates::default()), |r| {
        Ok(WithholdingRates {
            income_tax_ppm: r.try_get(0)?,
            local_tax_ppm: r.try_get(1)?,
            rural_special_ppm: r.try_get(2)?,
        })
    })
}

pub async fn deviations(pool: &PgPool) -> Result<Option<LegacyDeviations>, sqlx::Error> {
    let v: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT settings FROM deviations WHERE id = 1").fetch_optional(pool).await?;
    Ok(v.and_then(|v| serde_json::from_value(v).ok()))
}

pub async fn set_deviations(pool: &PgPool, d: &LegacyDeviations) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO deviations (id, settings) VALUES (1, $1)
         ON CONFLICT (id) DO UPDATE SET settings = EXCLUDED.settings, changed_at = now()",
    )
    .bind(serde_json::json!(d))
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
    let row = sqlx::query("SELECT request_hash, payout FROM payouts WHERE account_id = $1 AND idempotency_key = $2")
        .bind(account)
        .bind(key)
        .fetch_optional(pool)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let payout: serde_json::Value = row.try_get(1)?;
    let payout = serde_json::from_value(payout).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(Some((row.try_get(0)?, payout)))
}

pub async fn insert_payout(pool: &PgPool, key: &str, hash: &str, p: &LegacyPayout) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payouts (idempotency_key, request_hash, payout_id, account_id, business_date, payout)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(key)
    .bind(hash)
    .bind(p.payout_id)
    .bind(p.account_id)
    .bind(p.business_date)
    .bind(serde_json::json!(p))
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn payouts_of(pool: &PgPool, account: Uuid) -> Result<Vec<LegacyPayout>, sqlx::Error> {
    let rows: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payout FROM payouts WHERE account_id = $1 ORDER BY business_date DESC")
            .bind(account)
            .fetch_all(pool)
            .await?;
    Ok(rows.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect())
}
