//! Fault injection: the interest service dies (as with kill -9) between each pair of a payout's
//! steps. After a restart and a client retry with the same Idempotency-Key, each case converges
//! to exactly one payout, one ledger posting, one credit and one withholding record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::Stack;
use reqwest::StatusCode;
use serde_json::json;

/// A GENERAL customer's account at flat 2% with 50,000,000 won since 2024-10-01; today 2024-10-02
/// (one day to pay: 2,739 gross, 2,329 net).
async fn account_with_a_day_unpaid(stack: &Stack) -> (uuid::Uuid, uuid::Uuid) {
    stack.set_today("2024-10-01").await;
    stack.product("P", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let c = stack.customer("GENERAL").await;
    let a = stack.account(c, "P").await;
    assert_eq!(stack.deposit(a, 50_000_000, None).await.status, StatusCode::CREATED);
    stack.set_today("2024-10-02").await;
    (c, a)
}

async fn crash_at(point: &str) {
    // A crashed holder's Redis lock lives until its lease ends; a short lease keeps the test quick.
    let mut stack = Stack::start_with(&[("FAULT_POINT", point), ("PAYOUT_LOCK_LEASE_MS", "2000")]).await;
    let (_, a) = account_with_a_day_unpaid(&stack).await;

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

/// An owner dies after raising its payout fence in the ledger and before committing its change
/// (as with kill -9): the change is lost, the fence stays ahead. Once the owner restarts, it
/// catches its revision up with the fence, so the account's payouts are not refused as stale
/// forever; and the change, retried, takes effect as usual.
async fn owner_crash_after_fence(svc: &'static str, point: &str) {
    let mut stack = Stack::start().await;
    let (c, a) = account_with_a_day_unpaid(&stack).await;
    stack.restart_with(svc, &[("FAULT_POINT", point)]).await;
    let (path, body) = match svc {
        "customer" => (format!("/v1/customers/{c}/tax-category"), json!({"tax_category": "TAX_FREE"})),
        "account-info" => {
            (format!("/v1/accounts/{a}/holds"), json!({"deposit_suspended": false, "withdrawal_suspended": true}))
        }
        _ => (
            "/v1/interest/products/P/rate-schedules".to_string(),
            json!({"effective_from": "2024-10-05", "bands": [{"from": 0, "rate": "9.0"}]}),
        ),
    };
    let method = if svc == "interest" { reqwest::Method::POST } else { reqwest::Method::PUT };
    let sent = stack.http.request(method.clone(), format!("{}{path}", stack.urls[svc])).json(&body).send().await;
    assert!(sent.is_err() || sent.unwrap().status().is_server_error(), "{point}: the caller saw the crash");
    assert!(stack.wait_exit(svc, Duration::from_secs(20)).await, "{svc} should have died at {point}");
    stack.restart_with(svc, &[("FAULT_POINT", "")]).await;
    // The change was not committed: the payout is the old one (GENERAL tax, 2%, no hold), not
    // refused as stale.
    let mut paid = stack.pay(a, "after-restart").await;
    for _ in 0..40 {
        if paid.body["code"] != "QUOTE_STALE" && paid.body["code"] != "DEPENDENCY_UNAVAILABLE" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        paid = stack.pay(a, &format!("after-restart-{}", uuid::Uuid::new_v4())).await;
    }
    assert_eq!(paid.status, StatusCode::CREATED, "{point}: {:?}", paid.body);
    assert_eq!((paid.body["gross"].as_i64(), paid.body["net"].as_i64()), (Some(2739), Some(2329)), "{point}");
    // Retried, the change commits and governs the next payouts.
    let r = stack.call(svc, method, &path, Some(body), &[]).await;
    assert!(r.status.is_success(), "{point}: {:?}", r.body);
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn customer_crash_after_raising_its_fence() {
    owner_crash_after_fence("customer", "customer.after_fence").await;
}

#[tokio::test]
async fn account_info_crash_after_raising_its_fence() {
    owner_crash_after_fence("account-info", "account.after_fence").await;
}

#[tokio::test]
async fn interest_crash_after_raising_the_rates_fence() {
    owner_crash_after_fence("interest", "rates.after_fence").await;
}

/// A fence left ahead without any crash (the owner lost the ledger's answer and rolled back): the
/// running owner catches up by itself — customer, account-info and interest (rates and tax rules)
/// alike — and the account's payouts go through again; each owner counts the fences it found ahead.
#[tokio::test]
async fn a_fence_left_ahead_heals_while_the_owner_runs() {
    let stack = Stack::start_with(&[("FENCE_CATCH_UP_MS", "500")]).await;
    let (c, a) = account_with_a_day_unpaid(&stack).await;
    let subjects = [
        ("customer", format!("customer:{c}"), "customer"),
        ("account-info", format!("account:{a}"), "account-info"),
        ("interest", "rates:P".to_string(), "interest-rates"),
        ("interest", "tax:GENERAL".to_string(), "interest-tax"),
    ];
    for (i, (svc, subject, owner)) in subjects.iter().enumerate() {
        let r = stack.post("accounting", "/v1/ledger/payout-fences", json!({"subject": subject, "rev": 7})).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let mut paid = stack.pay(a, &format!("{i}-0")).await;
        for k in 1..40 {
            if paid.status == StatusCode::CREATED {
                break;
            }
            assert_eq!(paid.body["code"], "QUOTE_STALE", "{subject}: {:?}", paid.body);
            tokio::time::sleep(Duration::from_millis(250)).await;
            paid = stack.pay(a, &format!("{i}-{k}")).await;
        }
        assert_eq!(paid.status, StatusCode::CREATED, "{subject}: {:?}", paid.body);
        assert!(stack.metric(svc, "payout_fences_ahead_total", &[("owner", owner)]).await >= 1.0, "{owner}");
        // The next business date, for the next subject's payout.
        stack.set_today(&format!("2024-10-{:02}", 3 + i)).await;
    }
    assert_eq!(stack.get("customer", &format!("/v1/customers/{c}")).await.body["rev"], 7);
    assert_eq!(stack.get("account-info", &format!("/v1/accounts/{a}")).await.body["rev"], 7);
    assert_eq!(stack.get("interest", "/v1/interest/products/P").await.body["rates_rev"], 7);
    assert_eq!(stack.get("interest", "/v1/interest/tax-rules").await.body["rev"], 7);
    stack.shutdown().await;
}

/// No look-back an outage can outlast: a fence raised ahead and last changed three days ago (as if
/// the owner had been away since) is caught up with when the owner starts.
#[tokio::test]
async fn a_fence_left_ahead_days_ago_heals_when_the_owner_starts() {
    let mut stack = Stack::start().await;
    let (_, a) = account_with_a_day_unpaid(&stack).await;
    let r = stack
        .post("accounting", "/v1/ledger/payout-fences", json!({"subject": format!("account:{a}"), "rev": 4}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    sqlx::query("UPDATE payout_fences SET changed_at = now() - interval '3 days'")
        .execute(&stack.dbs["accounting"])
        .await
        .unwrap();
    stack.restart_with("account-info", &[]).await;
    let mut rev = serde_json::Value::Null;
    for _ in 0..40 {
        rev = stack.get("account-info", &format!("/v1/accounts/{a}")).await.body["rev"].clone();
        if rev == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(rev, 4, "caught up at start-up, however old the fence");
    stack.shutdown().await;
}
