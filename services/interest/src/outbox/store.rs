//! SQL of the ledger-feed recovery: its cursor, and the payouts it records with it. Every statement
//! is checked against the schema at compile time (`sqlx::query!` and friends, with the offline
//! metadata in `.sqlx/`).

use contracts::InterestPosting;
use sqlx::PgPool;
use uuid::Uuid;

use crate::payout;

pub async fn feed_cursor(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!("SELECT last_seq FROM ledger_feed_cursor WHERE id = 1").fetch_one(pool).await
}

pub async fn record_recovered(
    pool: &PgPool,
    postings: &[InterestPosting],
    new_cursor: i64,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Nearly every posting is already recorded by the payout itself: one read finds the few that
    // are not, instead of an insert attempt per posting.
    let ids: Vec<Uuid> = postings.iter().map(|p| p.request.payout_id).collect();
    let known: std::collections::HashSet<Uuid> =
        sqlx::query_scalar!("SELECT payout_id FROM payouts WHERE payout_id = ANY($1)", &ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let mut recorded = 0;
    for p in postings.iter().filter(|p| !known.contains(&p.request.payout_id)) {
        recorded += payout::insert_payout(&mut tx, p, &serde_json::json!({})).await?;
    }
    sqlx::query!("UPDATE ledger_feed_cursor SET last_seq = GREATEST(last_seq, $1) WHERE id = 1", new_cursor)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(recorded)
}
