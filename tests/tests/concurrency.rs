//! A hot account under concurrent payouts (across manual-clock days), deposits, withdrawals and
//! transfers: no update is lost, every balance equals the sum of its postings, debits equal
//! credits, and money is conserved — with the Redis payout lock and without it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::Stack;
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

async fn hot_account(stack: Stack) {
    stack.set_today("2024-09-01").await;
    stack.product("P", json!([{"from": 0, "rate": "3.5"}]), "2024-01-01").await;
    let c = stack.customer("GENERAL").await;
    let hot = stack.account(c, "P").await;
    let x = stack.account(c, "P").await;
    let y = stack.account(c, "P").await;
    let mut external_in = 0i64; // deposits minus withdrawals that succeeded
    let mut interest_net = 0i64;
    for (a, amount) in [(hot, 100_000_000), (x, 10_000_000), (y, 10_000_000)] {
        assert_eq!(stack.deposit(a, amount, None).await.status, StatusCode::CREATED);
        external_in += amount;
    }
    for day in ["2024-09-02", "2024-09-03", "2024-09-04"] {
        stack.set_today(day).await;
        let mut ops = Vec::new();
        for i in 0..8 {
            ops.push(("pay", Uuid::nil(), Uuid::nil(), 0, format!("pay-{day}-{i}")));
            ops.push(("deposit", hot, Uuid::nil(), 1_000 + i, format!("d-{day}-{i}")));
            ops.push(("withdraw", hot, Uuid::nil(), 700 + i, format!("w-{day}-{i}")));
            ops.push(("transfer", hot, x, 500 + i, format!("t1-{day}-{i}")));
            ops.push(("transfer", x, hot, 400 + i, format!("t2-{day}-{i}")));
            ops.push(("transfer", y, hot, 300 + i, format!("t3-{day}-{i}")));
        }
        let results = futures::future::join_all(ops.iter().map(|(op, a, b, amount, key)| {
            let stack = &stack;
            async move {
                let h = [("Idempotency-Key", key.as_str())];
                let r = match *op {
                    "pay" => stack.pay(hot, key).await,
                    "deposit" => {
                        stack
                            .call(
                                "accounting",
                                Method::POST,
                                &format!("/v1/ledger/accounts/{a}/deposits"),
                                Some(json!({"amount": amount})),
                                &h,
                            )
                            .await
                    }
                    "withdraw" => {
                        stack
                            .call(
                                "accounting",
                                Method::POST,
                                &format!("/v1/ledger/accounts/{a}/withdrawals"),
                                Some(json!({"amount": amount})),
                                &h,
                            )
                            .await
                    }
                    _ => {
                        stack
                            .call(
                                "accounting",
                                Method::POST,
                                "/v1/ledger/transfers",
                                Some(json!({"from_account_id": a, "to_account_id": b, "amount": amount})),
                                &h,
                            )
                            .await
                    }
                };
                (*op, *amount, r)
            }
        }))
        .await;
        let mut paid = 0;
        for (op, amount, r) in results {
            match (op, r.status) {
                ("pay", StatusCode::CREATED) => {
                    paid += 1;
                    interest_net += r.body["net"].as_i64().unwrap();
                }
                ("pay", _) => assert!(
                    ["ALREADY_PAID_TODAY", "PAYOUT_IN_PROGRESS"].contains(&r.body["code"].as_str().unwrap_or("")),
                    "{:?}",
                    r.body
                ),
                ("deposit", StatusCode::CREATED) => external_in += amount,
                ("withdraw", StatusCode::CREATED) => external_in -= amount,
                (_, StatusCode::CREATED) => {}
                (op, s) => panic!("{op} failed: {s} {:?}", r.body),
            }
        }
        assert_eq!(paid, 1, "exactly one payout on {day}");
    }
    let total: i64 = {
        let mut t = 0;
        for a in [hot, x, y] {
            t += stack.balance(a).await;
        }
        t
    };
    assert_eq!(total, external_in + interest_net, "money is conserved");
    let payouts: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'")
        .fetch_one(&stack.dbs["accounting"])
        .await
        .unwrap();
    assert_eq!(payouts, 3);
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn hot_account_with_redis_lock() {
    hot_account(Stack::start().await).await;
}

#[tokio::test]
async fn hot_account_without_redis_lock() {
    hot_account(Stack::start_with(&[("PAYOUT_REDIS_LOCK", "false")]).await).await;
}

#[tokio::test]
async fn money_movements_are_idempotent_per_key() {
    let stack = Stack::start().await;
    stack.set_today("2024-09-01").await;
    stack.product("P", json!([{"from": 0, "rate": "1"}]), "2024-01-01").await;
    let c = stack.customer("GENERAL").await;
    let a = stack.account(c, "P").await;
    let b = stack.account(c, "P").await;
    let h = [("Idempotency-Key", "dep-1")];
    let path = format!("/v1/ledger/accounts/{a}/deposits");
    let all = futures::future::join_all(
        (0..20).map(|_| stack.call("accounting", Method::POST, &path, Some(json!({"amount": 5000})), &h)),
    )
    .await;
    assert!(
        all.iter().all(|r| r.status == StatusCode::CREATED && r.body == all[0].body),
        "one first response, replayed"
    );
    let reused = stack.call("accounting", Method::POST, &path, Some(json!({"amount": 6000})), &h).await;
    assert_eq!(
        (reused.status, reused.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("IDEMPOTENCY_KEY_REUSED"))
    );
    let t = [("Idempotency-Key", "tr-1")];
    let body = json!({"from_account_id": a, "to_account_id": b, "amount": 1000});
    let first = stack.call("accounting", Method::POST, "/v1/ledger/transfers", Some(body.clone()), &t).await;
    let second = stack.call("accounting", Method::POST, "/v1/ledger/transfers", Some(body), &t).await;
    assert_eq!((first.status, &first.body), (StatusCode::CREATED, &second.body));
    assert_eq!((stack.balance(a).await, stack.balance(b).await), (4000, 1000));
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}
