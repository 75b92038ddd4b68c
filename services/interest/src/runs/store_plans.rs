//! A run's claim and outcome statements as a run's chunks meet them: statistics taken while the
//! items and payouts were empty, then 100,000 items listed and 100,000 payouts made. Each must reach
//! items by account (an index condition on the account, or the row address found that way), and
//! the counters' trigger each payout by key; once the outcomes hashed every pending item of the run
//! for each chunk, and the trigger every payout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{CLAIM, RECORD_OUTCOMES};
use peers::testing::{explain, planned_scans};
use sqlx::{Acquire, PgPool};
use uuid::Uuid;

#[tokio::test]
async fn claims_and_outcomes_reach_items_by_account_in_a_run_listed_after_the_statistics() {
    let common = peers::testing::common("interest").await;
    let pool = PgPool::connect(&common.database_url).await.unwrap();
    crate::MIGRATOR.run(&pool).await.unwrap();
    for table in ["payout_run_items", "payouts"] {
        sqlx::query(&format!("ALTER TABLE {table} SET (autovacuum_enabled = false)")).execute(&pool).await.unwrap();
    }
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    let run_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO payout_runs (run_id, business_date, scope, listing_done) VALUES ($1, '2024-02-01', 'ALL', true)",
    )
    .bind(run_id)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO payout_run_items (run_id, account_id) SELECT $1, md5('a' || i)::uuid FROM generate_series(1, 100000) i")
        .bind(run_id)
        .execute(&pool)
        .await
        .unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT md5('a' || i)::uuid FROM generate_series(50001, 50200) i")
        .fetch_all(&pool)
        .await
        .unwrap();
    let n = ids.len();
    let mut conn = pool.acquire().await.unwrap();
    // The run's first chunks: the counters' trigger plans (and PL/pgSQL keeps) its statements
    // while there is no payout yet.
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(RECORD_OUTCOMES)
        .bind(run_id)
        .bind(&ids)
        .bind(vec!["SKIPPED"; n])
        .bind(vec![Some("NOT_ELIGIBLE"); n])
        .bind(vec![None::<Uuid>; n])
        .bind(vec![0_i64; n])
        .bind(vec![None::<i64>; n])
        .bind(vec![None::<i64>; n])
        .bind(vec![None::<i64>; n])
        .bind(vec![None::<i64>; n])
        .bind(vec![None::<i64>; n])
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    sqlx::query(
        "INSERT INTO payouts (payout_id, account_id, customer_id, product_code, business_date, period_from, period_to,
                              gross, income_tax, local_tax, rural_special_tax, net, tax_category, carry_in_units,
                              carry_units, balance_after, entry_id, idempotency_key, request_hash, created_at, tax_event_id)
         SELECT md5('p' || i)::uuid, md5('a' || i)::uuid, md5('c' || i)::uuid, 'SAVE', '2024-02-01', '2024-01-01',
                '2024-01-31', 1000, 140, 14, 0, 846, 'GENERAL', 0, 0, 1000, md5('e' || i)::uuid, 'k', 'h', now(),
                md5('t' || i)::uuid
         FROM generate_series(1, 100000) i",
    )
    .execute(&pool)
    .await
    .unwrap();

    // A statement's first runs get plans for their parameters; later ones may keep a generic plan.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}")).execute(&mut *conn).await.unwrap();
        let (claim_sql, outcomes_sql) = (explain(CLAIM), explain(RECORD_OUTCOMES));
        let claim = |after: Uuid| sqlx::query(&claim_sql).bind(run_id).bind(200_i64).bind(60_000_i64).bind(after);
        let outcomes = sqlx::query(&outcomes_sql)
            .bind(run_id)
            .bind(&ids)
            .bind(vec!["PAID"; n])
            .bind(vec![None::<String>; n])
            .bind(vec![Some(Uuid::new_v4()); n])
            .bind(vec![0_i64; n])
            .bind(vec![Some(1000_i64); n])
            .bind(vec![Some(140_i64); n])
            .bind(vec![Some(14_i64); n])
            .bind(vec![Some(0_i64); n])
            .bind(vec![Some(846_i64); n]);
        let plans = [
            ("claim from the start", planned_scans(&mut conn, claim(Uuid::nil()), "payout_run_items").await),
            ("claim from a cursor", planned_scans(&mut conn, claim(ids[0]), "payout_run_items").await),
            ("outcomes", planned_scans(&mut conn, outcomes, "payout_run_items").await),
        ];
        for (name, (plan, scans)) in plans {
            assert!(!scans.is_empty(), "{name}, {mode}: {plan:#}");
            for scan in scans {
                let by_account =
                    scan.node == "Tid Scan" || (scan.node.starts_with("Index") && scan.cond.contains("account_id"));
                assert!(by_account, "{name}, {mode}: {scan:?}: {plan:#}");
            }
        }
    }

    // Run for real (triggers included, rolled back): claim the chunk, pay it; what each statement
    // read, from this transaction's own table statistics.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        let mut tx = conn.begin().await.unwrap();
        sqlx::query(&format!("SET LOCAL plan_cache_mode = {mode}")).execute(&mut *tx).await.unwrap();
        let claimed = sqlx::query(CLAIM)
            .bind(run_id)
            .bind(200_i64)
            .bind(60_000_i64)
            .bind(ids[0])
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 200);
        let payouts: Vec<Option<Uuid>> =
            sqlx::query_scalar("SELECT md5('p' || i)::uuid FROM generate_series(50001, 50200) i")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        let done = sqlx::query(RECORD_OUTCOMES)
            .bind(run_id)
            .bind(&ids)
            .bind(vec!["PAID"; n])
            .bind(vec![None::<String>; n])
            .bind(&payouts)
            .bind(vec![0_i64; n])
            .bind(vec![Some(1000_i64); n])
            .bind(vec![Some(140_i64); n])
            .bind(vec![Some(14_i64); n])
            .bind(vec![Some(0_i64); n])
            .bind(vec![Some(846_i64); n])
            .execute(&mut *tx)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), n as u64);
        let read: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT relname, seq_scan, COALESCE(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables
             WHERE relname IN ('payouts', 'payout_run_items') ORDER BY relname",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        for (table, seq_scans, fetched) in &read {
            assert_eq!(*seq_scans, 0, "{mode}: {read:?}");
            // A few rows per item of the chunk (the claim's pick and update, the outcome's probe),
            // never the run's 100,000 items or payouts.
            assert!(*fetched <= 10 * n as i64, "{mode}: {table} {read:?}");
        }
        let (paid, gross): (i64, i64) =
            sqlx::query_as("SELECT n, gross FROM payout_run_counts WHERE run_id = $1 AND state = 'PAID'")
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!((paid, gross), (n as i64, 1000 * n as i64));
        tx.rollback().await.unwrap();
    }
}
