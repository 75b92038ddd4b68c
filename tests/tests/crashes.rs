//! Fault injection: the interest service dies (as with kill -9) between each pair of a payout's
//! steps. After a restart and a client retry with the same Idempotency-Key, each case converges
//! to exactly one payout, one ledger posting, one credit and one withholding record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::Stack;
use reqwest::StatusCode;
use serde_json::json;

async fn crash_at(point: &str) {
    // A crashed holder's Redis lock lives until its lease ends; a short lease keeps the test quick.
    let mut stack = Stack::start_with(&[("FAULT_POINT", point), ("PAYOUT_LOCK_LEASE_MS", "2000")]).await;
    stack.set_today("2024-10-01").await;
    stack.product("P", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let c = stack.customer("GENERAL").await;
    let a = stack.account(c, "P").await;
    assert_eq!(stack.deposit(a, 50_000_000, None).await.status, StatusCode::CREATED);
    stack.set_today("2024-10-02").await;

    let first = stack.try_pay(a, "crash-test").await;
    assert!(stack.wait_exit("interest", Duration::from_secs(20)).await, "interest should have died at {point}");
    if point.starts_with("payout.") {
        assert!(
            first.is_err() || first.as_ref().unwrap().status.is_server_error(),
            "{point}: the client saw the crash"
        );
    }
    stack.restart_with("interest", &[("FAULT_POINT", "")]).await;

    // The client retries as told: PAYOUT_IN_PROGRESS (the dead holder's lease) is retryable.
    let mut retry = stack.pay(a, "crash-test").await;
    for _ in 0..40 {
        if retry.body["code"] != "PAYOUT_IN_PROGRESS" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        retry = stack.pay(a, "crash-test").await;
    }
    assert_eq!(retry.status, StatusCode::CREATED, "{point}: {:?}", retry.body);
    assert_eq!(retry.body["gross"], 2739);
    assert_eq!(retry.body["net"], 2329);
    let again = stack.pay(a, "crash-test").await;
    assert_eq!(again.body, retry.body, "replayed identically");
    assert_eq!(stack.pay(a, "other-key").await.body["code"], "ALREADY_PAID_TODAY");

    assert_eq!(stack.balance(a).await, 50_002_329, "{point}: credited once");
    let postings: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'")
        .fetch_one(&stack.dbs["accounting"])
        .await
        .unwrap();
    assert_eq!(postings, 1, "{point}");
    let payouts: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payouts").fetch_one(&stack.dbs["interest"]).await.unwrap();
    assert_eq!(payouts, 1, "{point}");
    stack.wait_withholding(a, retry.body["payout_id"].as_str().unwrap()).await;
    // Give a duplicate publication time to arrive, then count.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let records: i64 =
        sqlx::query_scalar("SELECT count(*) FROM withholdings").fetch_one(&stack.dbs["tax-consumer"]).await.unwrap();
    assert_eq!(records, 1, "{point}: one tax record");
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn crash_before_the_ledger_books() {
    crash_at("payout.before_ledger_booking").await;
}

#[tokio::test]
async fn crash_after_the_ledger_books_before_recording() {
    crash_at("payout.after_ledger_booking").await;
}

#[tokio::test]
async fn crash_after_recording_before_publishing() {
    crash_at("payout.after_record").await;
}

#[tokio::test]
async fn crash_after_publishing_before_marking_published() {
    crash_at("outbox.after_publish").await;
}
