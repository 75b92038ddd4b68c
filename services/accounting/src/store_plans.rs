//! The journal's lookups by account, planned on a freshly loaded ledger: statistics taken over
//! 600,000 deposits and no payout, then 70,000 payouts booked (as a first run does before
//! autovacuum looks again). Each lookup must probe the (account, business date) index by account;
//! a join with the keys once walked the whole index for every chunk instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{INTEREST_POSTINGS_ON, LAST_INTEREST_POSTING, LAST_INTEREST_POSTINGS};
use chrono::NaiveDate;
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

/// Each scan of `journal_entries` in a plan (EXPLAIN's JSON): its node type, index and index
/// condition.
fn journal_scans(plan: &Value, scans: &mut Vec<(String, String, String)>) {
    let is_scan = plan.get("Node Type").and_then(Value::as_str).is_some_and(|t| t.ends_with("Scan"));
    if is_scan && plan.get("Relation Name").and_then(Value::as_str) == Some("journal_entries") {
        let text = |key: &str| plan.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        scans.push((text("Node Type"), text("Index Name"), text("Index Cond")));
    }
    for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        journal_scans(child, scans);
    }
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

async fn plan(conn: &mut PgConnection, query: Query<'_>) -> Value {
    let plan: Value = query.fetch_one(conn).await.unwrap().try_get(0).unwrap();
    plan[0]["Plan"].clone()
}

fn explain(sql: &str) -> String {
    format!("EXPLAIN (FORMAT JSON) {sql}")
}

async fn run(pool: &PgPool, sql: &str) {
    sqlx::query(sql).execute(pool).await.unwrap();
}

#[tokio::test]
async fn lookups_by_account_probe_the_account_index_on_a_freshly_loaded_ledger() {
    let common = peers::testing::common("accounting").await;
    let pool = PgPool::connect(&common.database_url).await.unwrap();
    crate::MIGRATOR.run(&pool).await.unwrap();
    run(&pool, "ALTER TABLE journal_entries SET (autovacuum_enabled = false)").await;
    run(
        &pool,
        "INSERT INTO ledger_accounts (account_id, opened_on, balance)
         SELECT md5('a' || i)::uuid, DATE '2024-01-01', 1000 FROM generate_series(1, 100000) i",
    )
    .await;
    run(
        &pool,
        "INSERT INTO journal_entries (entry_id, kind, account_id, business_date, value_date, balance_after)
         SELECT md5('e' || i || ':' || d)::uuid, 'DEPOSIT', md5('a' || i)::uuid,
                DATE '2024-01-01' + d, DATE '2024-01-01' + d, 1000
         FROM generate_series(1, 100000) i, generate_series(0, 5) d",
    )
    .await;
    run(&pool, "ANALYZE").await;
    run(
        &pool,
        "INSERT INTO journal_entries (entry_id, kind, account_id, business_date, value_date, balance_after, payout_id, payout)
         SELECT md5('p' || i)::uuid, 'INTEREST_PAYOUT', md5('a' || i)::uuid, DATE '2024-02-01', DATE '2024-02-01',
                1000, md5('q' || i)::uuid, jsonb_build_object('product_code', 'SAVE', 'period_to', '2024-01-31')
         FROM generate_series(1, 70000) i",
    )
    .await;

    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT md5('a' || i)::uuid FROM generate_series(69901, 70100) i")
        .fetch_all(&pool)
        .await
        .unwrap();
    let day: NaiveDate = "2024-02-01".parse().unwrap();
    let mut conn = pool.acquire().await.unwrap();
    // A statement's first runs get plans for their parameters; later ones may keep a generic plan.
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}")).execute(&mut *conn).await.unwrap();
        let plans = [
            ("postings on", plan(&mut conn, sqlx::query(&explain(INTEREST_POSTINGS_ON)).bind(&ids).bind([day])).await),
            (
                "last posting",
                plan(&mut conn, sqlx::query(&explain(LAST_INTEREST_POSTING)).bind(ids[0]).bind(day)).await,
            ),
            ("last postings", plan(&mut conn, sqlx::query(&explain(LAST_INTEREST_POSTINGS)).bind(&ids)).await),
        ];
        for (name, plan) in plans {
            let mut scans = vec![];
            journal_scans(&plan, &mut scans);
            assert_eq!(scans.len(), 1, "{name}, {mode}: {plan:#}");
            let (node, index, cond) = &scans[0];
            assert!(node.starts_with("Index"), "{name}, {mode}: {plan:#}");
            assert_eq!(index, "journal_entries_one_payout_a_day", "{name}, {mode}: {plan:#}");
            assert!(cond.contains("account_id = "), "{name}, {mode}: {plan:#}");
        }
    }
}
