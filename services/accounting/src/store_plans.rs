//! The journal's lookups by account, planned on a freshly loaded ledger: statistics taken over
//! 600,000 deposits and no payout, then 70,000 payouts booked (as a first run does before
//! autovacuum looks again). Each lookup must probe the (account, business date) index by account;
//! a join with the keys once walked the whole index for every chunk instead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{INTEREST_POSTINGS_ON_OR_UNDER, LAST_INTEREST_POSTING, LAST_INTEREST_POSTINGS};
use chrono::NaiveDate;
use peers::testing::{explain, planned_scans};
use sqlx::PgPool;
use uuid::Uuid;

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
        "INSERT INTO journal_entries
            (entry_id, kind, account_id, business_date, value_date, balance_after, payout_id, payout, payout_key)
         SELECT md5('p' || i)::uuid, 'INTEREST_PAYOUT', md5('a' || i)::uuid, DATE '2024-02-01', DATE '2024-02-01',
                1000, md5('q' || i)::uuid,
                jsonb_build_object('product_code', 'SAVE', 'period_to', '2024-01-31', 'idempotency_key', 'k' || i), 'k' || i
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
        let (last, lasts) = (explain(LAST_INTEREST_POSTING), explain(LAST_INTEREST_POSTINGS));
        let journal = "journal_entries";
        let plans = [
            ("last posting", planned_scans(&mut conn, sqlx::query(&last).bind(ids[0]).bind(day), journal).await),
            ("last postings", planned_scans(&mut conn, sqlx::query(&lasts).bind(&ids), journal).await),
        ];
        for (name, (plan, scans)) in plans {
            assert_eq!(scans.len(), 1, "{name}, {mode}: {plan:#}");
            assert_by_account(&scans[0], &format!("{name}, {mode}: {plan:#}"));
        }
        assert_on_or_under(&mut conn, &ids, day, mode).await;
    }
    // And once the statistics have seen the payouts (the lookup once took every row to match,
    // over a JSON expression, and scanned the journal for each chunk).
    sqlx::query("ANALYZE journal_entries").execute(&mut *conn).await.unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        sqlx::query(&format!("SET plan_cache_mode = {mode}")).execute(&mut *conn).await.unwrap();
        assert_on_or_under(&mut conn, &ids, day, mode).await;
    }
}

/// The bookings run the planned statement inside the function `booking_inputs` (migration 0008),
/// with its parameters named: the plans above are that function's as long as it holds this text.
#[tokio::test]
async fn the_booking_function_runs_the_planned_lookup() {
    let common = peers::testing::common("accounting").await;
    let pool = PgPool::connect(&common.database_url).await.unwrap();
    crate::MIGRATOR.run(&pool).await.unwrap();
    let body: String = sqlx::query_scalar("SELECT prosrc FROM pg_proc WHERE proname = 'booking_inputs'")
        .fetch_one(&pool)
        .await
        .unwrap();
    let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let named = INTEREST_POSTINGS_ON_OR_UNDER.replace("$1", "v_locked").replace("$2", "p_days").replace("$3", "p_keys");
    assert!(words(&body).contains(&words(&named)), "booking_inputs no longer runs:\n{named}\nit is:\n{body}");
}

fn assert_by_account(scan: &peers::testing::Scan, context: &str) {
    assert!(scan.node.starts_with("Index"), "{context}");
    assert_eq!(scan.index, "journal_entries_one_payout_a_day", "{context}");
    assert!(scan.cond.contains("account_id = "), "{context}");
}

/// A chunk's payouts on its day are looked up by account, and its keys by the key index, never by
/// a scan of the journal.
async fn assert_on_or_under(conn: &mut sqlx::PgConnection, ids: &[Uuid], day: NaiveDate, mode: &str) {
    let keys: Vec<String> =
        (69901..70101).map(|i| format!("k{i}")).chain((0..200).map(|i| format!("new{i}"))).collect();
    let sql = explain(INTEREST_POSTINGS_ON_OR_UNDER);
    let query = sqlx::query(&sql).bind(ids).bind([day]).bind(&keys);
    let (plan, scans) = planned_scans(conn, query, "journal_entries").await;
    let context = format!("on or under, {mode}: {plan:#}");
    assert_eq!(scans.len(), 2, "{context}");
    assert_by_account(&scans[0], &context);
    let by_key = match scans[1].node.as_str() {
        "Bitmap Heap Scan" => plan.to_string().contains("\"Index Name\":\"journal_entries_payout_key\""),
        node => node.starts_with("Index") && scans[1].index == "journal_entries_payout_key",
    };
    assert!(by_key, "{context}");
}
