//! Money movements are decided where their inputs are locked (SPEC §7): a hold, status or
//! restriction change that has been answered governs every deposit, withdrawal and transfer that
//! commits after it; an Idempotency-Key names one operation and one parsed request and keeps its
//! first answer, refusals included; the business date is read under the lock. The windows are made
//! deterministic by holding the balance row open from the test, as a busy row under load would be.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{Response, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

/// A stack with one product and a customer's account holding 100,000 won.
async fn funded() -> (Stack, Uuid, Uuid) {
    let stack = Stack::start().await;
    stack.set_today("2025-04-01").await;
    stack.product("SAVE", json!([{ "from": 0, "rate": "2.0" }]), "2025-01-01").await;
    let customer = stack.customer("GENERAL").await;
    let account = stack.account(customer, "SAVE").await;
    assert_eq!(stack.deposit(account, 100_000, None).await.status, StatusCode::CREATED);
    (stack, customer, account)
}

/// The account's balance row held by another transaction until it is rolled back.
async fn hold_row(stack: &Stack, account: Uuid) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = stack.dbs["accounting"].begin().await.unwrap();
    sqlx::query("SELECT 1 FROM ledger_accounts WHERE account_id = $1 FOR UPDATE")
        .bind(account)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

async fn movement(stack: &Stack, path: &str, key: &str, body: Value) -> Response {
    stack.call("accounting", Method::POST, path, Some(body), &[("Idempotency-Key", key)]).await
}

/// A movement started now, which meets the held row and waits (within the ledger's retry budget).
fn waiting(stack: &Stack, path: String, key: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let req = stack.http.post(format!("{}{path}", stack.urls["accounting"])).header("Idempotency-Key", key).json(&body);
    tokio::spawn(async move {
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    })
}

async fn put(stack: &Stack, svc: &str, path: &str, body: Value) {
    let r = stack.call(svc, Method::PUT, path, Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {:?}", r.body);
}

async fn entries(stack: &Stack, account: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM journal_lines WHERE account_id = $1")
        .bind(account)
        .fetch_one(&stack.dbs["accounting"])
        .await
        .unwrap()
}

/// Issue 28, case 1: a withdrawal waiting on a busy row while a hold is set and answered, a deposit
/// while the account goes dormant, a withdrawal while the customer is restricted — each is decided
/// on the state at its commit, every time.
#[tokio::test]
async fn a_change_that_was_answered_governs_every_movement_that_commits_after_it() {
    let (stack, customer, account) = funded().await;
    let withdrawals = format!("/v1/ledger/accounts/{account}/withdrawals");
    let deposits = format!("/v1/ledger/accounts/{account}/deposits");
    let holds = format!("/v1/accounts/{account}/holds");
    let status = format!("/v1/accounts/{account}/status");
    for trial in 0..3 {
        // A withdrawal first goes through (and warms every cache on the way).
        let r = movement(&stack, &withdrawals, &format!("warm-{trial}"), json!({"amount": 1})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let before = entries(&stack, account).await;

        let row = hold_row(&stack, account).await;
        let w = waiting(&stack, withdrawals.clone(), &format!("held-{trial}"), json!({"amount": 100}));
        tokio::time::sleep(Duration::from_millis(300)).await;
        put(&stack, "account-info", &holds, json!({"deposit_suspended": false, "withdrawal_suspended": true})).await;
        row.rollback().await.unwrap();
        let (code, body) = w.await.unwrap();
        assert_eq!((code, body["code"].as_str()), (403, Some("WITHDRAWAL_SUSPENDED")), "trial {trial}: {body}");
        assert_eq!(entries(&stack, account).await, before, "trial {trial}: nothing booked after the hold");
        put(&stack, "account-info", &holds, json!({"deposit_suspended": false, "withdrawal_suspended": false})).await;

        let row = hold_row(&stack, account).await;
        let d = waiting(&stack, deposits.clone(), &format!("dormant-{trial}"), json!({"amount": 100}));
        tokio::time::sleep(Duration::from_millis(300)).await;
        put(&stack, "account-info", &status, json!({"status": "DORMANT"})).await;
        row.rollback().await.unwrap();
        let (code, body) = d.await.unwrap();
        assert_eq!((code, body["code"].as_str()), (403, Some("ACCOUNT_NOT_ACTIVE")), "trial {trial}: {body}");
        put(&stack, "account-info", &status, json!({"status": "ACTIVE"})).await;
        assert_eq!(entries(&stack, account).await, before);
    }

    // The customer restricted (a hacking victim) while a withdrawal and a transfer out wait.
    let other = stack.account(stack.customer("GENERAL").await, "SAVE").await;
    let row = hold_row(&stack, account).await;
    let w = waiting(&stack, withdrawals.clone(), "victim-w", json!({"amount": 50_000}));
    let t = waiting(
        &stack,
        "/v1/ledger/transfers".into(),
        "victim-t",
        json!({"from_account_id": account, "to_account_id": other, "amount": 50_000}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    put(
        &stack,
        "customer",
        &format!("/v1/customers/{customer}/status"),
        json!({"status": "HACKING_VICTIM", "reason": "phished"}),
    )
    .await;
    row.rollback().await.unwrap();
    for (what, handle) in [("withdrawal", w), ("transfer", t)] {
        let (code, body) = handle.await.unwrap();
        assert_eq!((code, body["code"].as_str()), (403, Some("CUSTOMER_RESTRICTED")), "{what}: {body}");
    }
    // Money still comes in; nothing goes out.
    assert_eq!(stack.deposit(account, 10, None).await.status, StatusCode::CREATED);
    assert_eq!(stack.withdraw(account, 10, None).await.body["code"], "CUSTOMER_RESTRICTED");
    assert_eq!(stack.balance(account).await, 100_000 - 3 + 10);
    assert_eq!(stack.balance(other).await, 0);
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// Issue 28, cases 3 and 4: a key names one operation and one parsed request; its first answer,
/// a refusal included, is its answer for good.
#[tokio::test]
async fn a_key_is_one_operation_one_request_and_one_answer() {
    let (stack, _, account) = funded().await;
    let raw = |kind: &str, key: &str, body: &'static str| {
        stack
            .http
            .post(format!("{}/v1/ledger/accounts/{account}/{kind}", stack.urls["accounting"]))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    let first = raw("deposits", "k", r#"{"amount":700}"#).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let other_op = raw("withdrawals", "k", r#"{"amount":700}"#).await.unwrap();
    assert_eq!(other_op.status(), 422);
    assert_eq!(other_op.json::<Value>().await.unwrap()["code"], "IDEMPOTENCY_KEY_REUSED");
    let spaced = raw("deposits", "k", "{ \"amount\" : 700 }\n").await.unwrap();
    assert_eq!(spaced.status(), 201);
    assert_eq!(spaced.json::<Value>().await.unwrap(), first, "the same parsed request replays its answer");
    assert_eq!(stack.balance(account).await, 100_700, "booked once");

    let refused = raw("withdrawals", "w", r#"{"amount":500000}"#).await.unwrap();
    assert_eq!(refused.status(), 422);
    assert_eq!(stack.deposit(account, 1_000_000, None).await.status, StatusCode::CREATED);
    let again = raw("withdrawals", "w", r#"{"amount":500000}"#).await.unwrap();
    assert_eq!(again.status(), 422, "the refusal is the key's answer");
    assert_eq!(again.json::<Value>().await.unwrap()["code"], "INSUFFICIENT_FUNDS");
    assert_eq!(stack.balance(account).await, 1_100_700);
    stack.shutdown().await;
}

/// Issue 28, case 5: a transfer that waited on a busy row while the date turned is dated the day it
/// commits, never the day before (which a payout of the new day may already cover).
#[tokio::test]
async fn a_transfer_waiting_across_midnight_is_dated_the_day_it_commits() {
    let (stack, customer, account) = funded().await;
    let other = stack.account(customer, "SAVE").await;
    assert_eq!(stack.deposit(other, 1, None).await.status, StatusCode::CREATED, "its balance row exists");
    stack.set_clock("2025-04-01", "23:59:59").await;
    let row = hold_row(&stack, other).await;
    let t = waiting(
        &stack,
        "/v1/ledger/transfers".into(),
        "midnight",
        json!({"from_account_id": account, "to_account_id": other, "amount": 1_000}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.set_clock("2025-04-02", "00:00:01").await;
    row.rollback().await.unwrap();
    let (code, body) = t.await.unwrap();
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["value_date"], "2025-04-02", "{body}");
    assert_eq!(body["to_balance_after"], 1_001);
    let dated: Vec<(chrono::NaiveDate, chrono::NaiveDate)> =
        sqlx::query_as("SELECT business_date, value_date FROM journal_entries WHERE kind = 'TRANSFER'")
            .fetch_all(&stack.dbs["accounting"])
            .await
            .unwrap();
    assert_eq!(dated, vec![(e2e::date("2025-04-02"), e2e::date("2025-04-02"))]);
    stack.shutdown().await;
}
