//! SQL of the shadow comparisons with the legacy core: the mismatches they found.

use sqlx::{PgPool, Row};
use uuid::Uuid;

/// A comparison that found the sides disagreeing: the figures compared and both answers.
pub struct ShadowFinding<'a> {
    pub kind: &'a str,
    pub account_id: Uuid,
    pub business_date: chrono::NaiveDate,
    pub fields: &'a [&'a str],
    pub ours: &'a contracts::legacy::Figures,
    pub legacy: &'a contracts::legacy::Figures,
    pub ours_payload: serde_json::Value,
    pub legacy_payload: serde_json::Value,
}

pub async fn insert_shadow_mismatch(pool: &PgPool, f: ShadowFinding<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO shadow_mismatches
           (mismatch_id, kind, account_id, business_date, fields, ours, legacy, ours_payload, legacy_payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(Uuid::new_v4())
    .bind(f.kind)
    .bind(f.account_id)
    .bind(f.business_date)
    .bind(f.fields)
    .bind(serde_json::json!(f.ours))
    .bind(serde_json::json!(f.legacy))
    .bind(f.ours_payload)
    .bind(f.legacy_payload)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Mismatches, newest first, keyset-paged by `seq`.
pub async fn shadow_mismatches(
    pool: &PgPool,
    q: &contracts::legacy::ShadowMismatchesQuery,
    limit: i64,
) -> Result<Vec<(i64, contracts::legacy::ShadowMismatch)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, mismatch_id, kind, account_id, business_date, fields, ours, legacy, ours_payload, legacy_payload,
                found_at
         FROM shadow_mismatches
         WHERE ($1::uuid IS NULL OR account_id = $1) AND ($2::text IS NULL OR kind = $2)
           AND ($3::bigint IS NULL OR seq < $3)
         ORDER BY seq DESC LIMIT $4",
    )
    .bind(q.account_id)
    .bind(q.kind.map(|k| k.as_str()))
    .bind(q.before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            let figures = |name: &str| -> Result<contracts::legacy::Figures, sqlx::Error> {
                let v: serde_json::Value = r.try_get(name)?;
                serde_json::from_value(v).map_err(|e| sqlx::Error::Decode(Box::new(e)))
            };
            Ok((
                r.try_get("seq")?,
                contracts::legacy::ShadowMismatch {
                    mismatch_id: r.try_get("mismatch_id")?,
                    kind: r.try_get("kind")?,
                    account_id: r.try_get("account_id")?,
                    business_date: r.try_get("business_date")?,
                    fields: r.try_get("fields")?,
                    ours: figures("ours")?,
                    legacy: figures("legacy")?,
                    ours_payload: r.try_get("ours_payload")?,
                    legacy_payload: r.try_get("legacy_payload")?,
                    found_at: r.try_get("found_at")?,
                },
            ))
        })
        .collect()
}
