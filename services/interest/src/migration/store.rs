//! SQL of the shadow comparisons with the legacy core: the mismatches they found. Every statement is
//! checked against the schema at compile time (`sqlx::query!`, with the offline metadata in `.sqlx/`).

use contracts::legacy::{Figures, ShadowMismatch};
use sqlx::PgPool;
use uuid::Uuid;

/// A comparison that found the sides disagreeing: the figures compared and both answers.
pub struct ShadowFinding<'a> {
    pub kind: &'a str,
    pub account_id: Uuid,
    pub business_date: chrono::NaiveDate,
    pub fields: &'a [&'a str],
    pub ours: &'a Figures,
    pub legacy: &'a Figures,
    pub ours_payload: serde_json::Value,
    pub legacy_payload: serde_json::Value,
}

pub async fn insert_shadow_mismatch(pool: &PgPool, f: ShadowFinding<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO shadow_mismatches
           (mismatch_id, kind, account_id, business_date, fields, ours, legacy, ours_payload, legacy_payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        Uuid::new_v4(),
        f.kind,
        f.account_id,
        f.business_date,
        f.fields as &[&str],
        serde_json::json!(f.ours),
        serde_json::json!(f.legacy),
        f.ours_payload,
        f.legacy_payload,
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// Figures kept as JSON, read back.
fn figures(v: serde_json::Value) -> Result<Figures, sqlx::Error> {
    serde_json::from_value(v).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Mismatches, newest first, keyset-paged by `seq`.
pub async fn shadow_mismatches(
    pool: &PgPool,
    q: &contracts::legacy::ShadowMismatchesQuery,
    limit: i64,
) -> Result<Vec<(i64, ShadowMismatch)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT seq, mismatch_id, kind, account_id, business_date, fields, ours, legacy, ours_payload, legacy_payload,
                found_at
         FROM shadow_mismatches
         WHERE ($1::uuid IS NULL OR account_id = $1) AND ($2::text IS NULL OR kind = $2)
           AND ($3::bigint IS NULL OR seq < $3)
         ORDER BY seq DESC LIMIT $4",
        q.account_id,
        q.kind.map(|k| k.as_str()),
        q.before,
        limit,
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let mismatch = ShadowMismatch {
                mismatch_id: r.mismatch_id,
                kind: r.kind,
                account_id: r.account_id,
                business_date: r.business_date,
                fields: r.fields,
                ours: figures(r.ours)?,
                legacy: figures(r.legacy)?,
                ours_payload: r.ours_payload,
                legacy_payload: r.legacy_payload,
                found_at: r.found_at,
            };
            Ok((r.seq, mismatch))
        })
        .collect()
}
