//! Issue 8: payout runs pay exactly the eligible accounts through the on-demand use case, resume
//! after a crash without paying twice, start once per date and scope, and share accounts safely
//! with customers' own payouts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use e2e::Stack;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn setup_product(stack: &Stack) {
    stack.set_today("2024-05-01").await;
    let bands = json!([{"from": 0, "to": 50_000_000, "rate": "2.0"}, {"from": 50_000_000, "to": null, "rate": "1.0"}]);
    stack.product("RUN", bands, "2020-01-01").await;
}

/// `n` accounts opened on 2024-05-01, each with a deposit (`amount(i)` won, none when 0).
async fn accounts(stack: &Stack, n: usize, amount: impl Fn(usize) -> i64) -> Vec<Uuid> {
    let mut out = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let made = join_all(chunk.iter().map(|&i| {
            let amount = amount(i);
            async move {
                let c = stack.customer(if i % 3 == 0 { "PREFERENTIAL" } else { "GENERAL" }).await;
                let a = stack.account(c, "RUN").await;
                if amount > 0 {
                    assert_eq!(stack.deposit(a, amount, None).await.status, StatusCode::CREATED);
                }
                (c, a)
            }
        }))
        .await;
        out.extend(made.into_iter().map(|(_, a)| a));
    }
    out
}

async fn owner(stack: &Stack, a: Uuid) -> Uuid {
    stack.get("account-info", &format!("/v1/accounts/{a}")).await.body["customer_id"].as_str().unwrap().parse().unwrap()
}

async fn put(stack: &Stack, svc: &str, path: &str, body: Value) {
    let r = stack.call(svc, Method::PUT, path, Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn start_run(stack: &Stack, body: Value) -> Uuid {
    let r = stack.post("interest", "/v1/interest/payout-runs", body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    r.body["run_id"].as_str().unwrap().parse().unwrap()
}

async fn wait_run(stack: &Stack, run: Uuid, until: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let r = stack.get("interest", &format!("/v1/interest/payout-runs/{run}")).await;
        if r.status == StatusCode::OK && until(&r.body) {
            return r.body;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("run {run} did not get there");
}

/// The run's counters (kept per chunk by triggers) equal a fresh count of its items.
async fn assert_counters_match_items(stack: &Stack, run: Uuid) {
    let counted: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT state, reason, n, gross, net FROM payout_run_counts WHERE run_id = $1 AND n <> 0 ORDER BY 1, 2",
    )
    .bind(run)
    .fetch_all(&stack.dbs["interest"])
    .await
    .unwrap();
    let items: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT i.state, COALESCE(i.reason, ''), count(*), COALESCE(sum(p.gross), 0)::int8, COALESCE(sum(p.net), 0)::int8
         FROM payout_run_items i LEFT JOIN payouts p ON p.payout_id = i.payout_id
         WHERE i.run_id = $1 GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(run)
    .fetch_all(&stack.dbs["interest"])
    .await
    .unwrap();
    assert_eq!(counted, items, "run {run}: counters and items");
}

async fn ledger_payouts(stack: &Stack) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT account_id) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'")
        .fetch_one(&stack.dbs["accounting"])
        .await
        .unwrap()
}

#[tokio::test]
async fn a_run_pays_exactly_the_eligible_accounts_with_the_right_amounts() {
    let stack = Stack::start().await;
    setup_product(&stack).await;
    // 300 accounts: 200 payable (balances around the band edge), then 20 each of no money,
    // inactive, restricted owner, deposits suspended, and already paid by the customer today.
    let all =
        accounts(&stack, 300, |i| if (200..220).contains(&i) { 0 } else { 1_000_000 + (i as i64) * 337_000 }).await;
    stack.set_today("2024-06-01").await;
    for &a in &all[220..240] {
        let status = if a.as_u128() % 2 == 0 { "DORMANT" } else { "CLOSED" };
        put(&stack, "account-info", &format!("/v1/accounts/{a}/status"), json!({ "status": status })).await;
    }
    for &a in &all[240..260] {
        let c = owner(&stack, a).await;
        put(
            &stack,
            "customer",
            &format!("/v1/customers/{c}/status"),
            json!({"status": "HACKING_VICTIM", "reason": "r"}),
        )
        .await;
    }
    for &a in &all[260..280] {
        let holds = json!({"deposit_suspended": true, "withdrawal_suspended": false});
        put(&stack, "account-info", &format!("/v1/accounts/{a}/holds"), holds).await;
    }
    for &a in &all[280..300] {
        assert_eq!(stack.pay(a, "mine").await.status, StatusCode::CREATED);
    }
    // What each payable account should get, from the estimate.
    let mut expected = HashMap::new();
    for &a in &all[..200] {
        let e = stack.get("interest", &format!("/v1/interest/accounts/{a}")).await.body;
        assert_eq!(e["payable"], true, "{e}");
        expected.insert(a, e);
    }

    let run = start_run(&stack, json!({})).await;
    let done = wait_run(&stack, run, |r| r["state"] != "RUNNING").await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    assert_eq!(done["accounts"], 300);
    assert_eq!(done["paid"], 200, "{done}");
    assert_eq!(
        done["skipped"],
        json!({"ACCOUNT_NOT_ACTIVE": 20, "ALREADY_PAID_TODAY": 20, "CUSTOMER_RESTRICTED": 20,
               "DEPOSIT_SUSPENDED": 20, "NOTHING_TO_PAY": 20})
    );
    assert_eq!(
        (done["failed"].clone(), done["pending"].clone(), done["progress"].clone()),
        (json!(0), json!(0), json!(1.0))
    );
    let sum = |field: &str| expected.values().map(|e| e[field].as_i64().unwrap()).sum::<i64>();
    for f in ["gross", "income_tax", "local_tax", "rural_special_tax", "net"] {
        assert_eq!(done["totals"][f].as_i64().unwrap(), sum(f), "{f}");
    }
    for (&a, e) in &expected {
        let p = &stack.get("interest", &format!("/v1/interest/accounts/{a}/payouts")).await.body["payouts"];
        assert_eq!(p.as_array().unwrap().len(), 1);
        assert_eq!((p[0]["gross"].clone(), p[0]["net"].clone()), (e["gross"].clone(), e["net"].clone()));
    }
    assert_eq!(ledger_payouts(&stack).await, (220, 220));
    stack.assert_ledger_consistent().await;
    assert_counters_match_items(&stack, run).await;

    // The ops tool follows a run and says how it ended in its exit code.
    let out = std::process::Command::new(e2e::binary("bankctl"))
        .args(["payout-run", "--follow", &run.to_string(), "--no-progress"])
        .env("INTEREST_URL", &stack.urls["interest"])
        .envs(stack.ops_env())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text} {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("COMPLETED") && text.contains("paid      200"), "{text}");
    stack.shutdown().await;
}

#[tokio::test]
async fn concurrent_starts_make_one_run_per_date_and_scope() {
    let stack = Stack::start().await;
    setup_product(&stack).await;
    let ids = accounts(&stack, 5, |_| 10_000_000).await;
    stack.set_today("2024-06-01").await;
    let tries = join_all((0..10).map(|_| stack.post("interest", "/v1/interest/payout-runs", json!({})))).await;
    let started: Vec<&Value> = tries.iter().filter(|r| r.status == StatusCode::ACCEPTED).map(|r| &r.body).collect();
    assert_eq!(started.len(), 1);
    let run_id = started[0]["run_id"].as_str().unwrap();
    for r in tries.iter().filter(|r| r.status != StatusCode::ACCEPTED) {
        assert_eq!((r.status, r.body["code"].clone()), (StatusCode::CONFLICT, json!("RUN_EXISTS")));
        assert_eq!(r.body["instance"], format!("/v1/interest/payout-runs/{run_id}"));
    }
    // Another scope (a list of accounts) is another run; the same list again is not.
    let list = json!({ "account_ids": [ids[1], ids[0]] });
    let other = start_run(&stack, list).await;
    let again =
        stack.post("interest", "/v1/interest/payout-runs", json!({ "account_ids": [ids[0], ids[1], ids[0]] })).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.body["instance"], format!("/v1/interest/payout-runs/{other}"));
    let bad = stack.post("interest", "/v1/interest/payout-runs", json!({ "business_date": "2024-06-02" })).await;
    assert_eq!((bad.status, bad.body["field"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!("business_date")));
    let done = wait_run(&stack, run_id.parse().unwrap(), |r| r["state"] == "COMPLETED").await;
    let listed = wait_run(&stack, other, |r| r["state"] == "COMPLETED").await;
    // Both runs covered the two listed accounts; each was paid once.
    assert_eq!(done["paid"].as_i64().unwrap() + listed["paid"].as_i64().unwrap(), 5);
    assert_eq!(ledger_payouts(&stack).await, (5, 5));
    stack.shutdown().await;
}

#[tokio::test]
async fn a_killed_run_resumes_and_customers_paying_meanwhile_are_not_paid_twice() {
    let settings = [
        ("RUN_CONCURRENCY", "2"),
        ("RUN_CHUNK", "10"),
        ("RUN_PAGE", "40"),
        ("RUN_CLAIM_LEASE_MS", "1500"),
        ("PAYOUT_LOCK_LEASE_MS", "1500"),
    ];
    let mut stack = Stack::start_with(&settings).await;
    setup_product(&stack).await;
    let all = accounts(&stack, 150, |i| 5_000_000 + i as i64 * 1_000).await;
    stack.set_today("2024-06-01").await;

    let run = start_run(&stack, json!({})).await;
    // Customers ask for their interest while the run pays.
    let s = &stack;
    let customers = join_all(all.iter().step_by(5).map(|&a| async move { s.pay(a, "own").await.status })).await;
    assert!(customers.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{customers:?}");
    let before = wait_run(&stack, run, |r| r["paid"].as_i64().unwrap() >= 20).await;
    stack.kill("interest");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM payout_run_items WHERE state = 'PENDING'")
        .fetch_one(&stack.dbs["interest"])
        .await
        .unwrap();
    assert!(left > 0 && before["state"] == "RUNNING", "killed mid-run: {left} accounts left, {before}");
    stack.restart_with("interest", &[]).await;
    let done = wait_run(&stack, run, |r| r["state"] != "RUNNING").await;
    assert_eq!(done["state"], "COMPLETED", "{done}");
    let own_paid = customers.iter().filter(|s| **s == StatusCode::CREATED).count() as i64;
    let skipped_paid = done["skipped"]["ALREADY_PAID_TODAY"].as_i64().unwrap_or(0);
    assert_eq!(done["paid"].as_i64().unwrap() + skipped_paid, 150, "{done}");
    assert_eq!(skipped_paid, own_paid, "every account a customer paid is skipped by the run");
    assert_eq!(done["failed"], 0);
    // Exactly one payout per account: in the ledger, and recorded by the interest service.
    assert_eq!(ledger_payouts(&stack).await, (150, 150));
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM payouts").fetch_one(&stack.dbs["interest"]).await.unwrap();
    assert_eq!(recorded, 150);
    stack.assert_ledger_consistent().await;
    assert_counters_match_items(&stack, run).await;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_cancelled_run_claims_nothing_more_and_starting_it_again_resumes_it() {
    let stack = Stack::start_with(&[("RUN_CONCURRENCY", "1"), ("RUN_CHUNK", "5"), ("RUN_PAGE", "50")]).await;
    setup_product(&stack).await;
    accounts(&stack, 120, |i| 5_000_000 + i as i64 * 1_000).await;
    stack.set_today("2024-06-01").await;

    let run = start_run(&stack, json!({})).await;
    wait_run(&stack, run, |r| r["paid"].as_i64().unwrap() >= 5).await;
    let cancelled = stack.post("interest", &format!("/v1/interest/payout-runs/{run}/cancel"), json!({})).await;
    assert_eq!(
        (cancelled.status, cancelled.body["state"].as_str()),
        (StatusCode::OK, Some("CANCELLED")),
        "{:?}",
        cancelled.body
    );
    // A chunk in flight finishes; then nothing moves.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let settled = stack.get("interest", &format!("/v1/interest/payout-runs/{run}")).await.body;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = stack.get("interest", &format!("/v1/interest/payout-runs/{run}")).await.body;
    assert_eq!(settled["paid"], later["paid"], "nothing is paid after the cancellation settles");
    assert!(later["paid"].as_i64().unwrap() < 120, "cancelled before the end: {later}");
    assert_eq!(ledger_payouts(&stack).await.0, later["paid"].as_i64().unwrap(), "the ledger agrees with the run");
    let again = stack.post("interest", &format!("/v1/interest/payout-runs/{run}/cancel"), json!({})).await;
    assert_eq!(again.status, StatusCode::OK, "cancelling twice is the same");
    let listed = stack.get("interest", "/v1/interest/payout-runs").await.body;
    assert_eq!(listed["runs"][0]["run_id"], run.to_string());
    assert_eq!(listed["runs"][0]["state"], "CANCELLED");

    // Starting the same run again resumes it, and it pays the rest exactly once.
    assert_eq!(start_run(&stack, json!({})).await, run);
    let done = wait_run(&stack, run, |r| r["state"] != "RUNNING").await;
    assert_eq!((done["state"].as_str(), done["paid"].as_i64()), (Some("COMPLETED"), Some(120)), "{done}");
    assert_eq!(ledger_payouts(&stack).await, (120, 120));
    let finished = stack.post("interest", &format!("/v1/interest/payout-runs/{run}/cancel"), json!({})).await;
    assert_eq!((finished.status, finished.body["code"].as_str()), (StatusCode::CONFLICT, Some("RUN_FINISHED")));
    stack.assert_ledger_consistent().await;
    assert_counters_match_items(&stack, run).await;
    stack.shutdown().await;
}

/// The business date ends before the run does: what is left fails as BUSINESS_DATE_ENDED, the run
/// is EXPIRED, and its counters still equal its items.
#[tokio::test]
async fn a_run_outlived_by_its_business_date_expires_with_its_counts_right() {
    let stack = Stack::start_with(&[("RUN_CHUNK", "4"), ("RUN_CONCURRENCY", "1")]).await;
    setup_product(&stack).await;
    accounts(&stack, 80, |_| 10_000_000).await;
    stack.set_today("2024-05-08").await;
    let run = start_run(&stack, json!({})).await;
    wait_run(&stack, run, |r| r["paid"].as_i64().unwrap() >= 4).await;
    stack.set_today("2024-05-09").await;
    let done = wait_run(&stack, run, |r| r["state"] != "RUNNING").await;
    assert_eq!(done["state"], "EXPIRED", "{done}");
    let failed = done["failed"].as_i64().unwrap();
    assert!(failed > 0, "{done}");
    assert_eq!(done["paid"].as_i64().unwrap() + failed, 80, "{done}");
    assert_eq!(done["pending"], 0);
    assert_eq!(ledger_payouts(&stack).await.0, done["paid"].as_i64().unwrap());
    assert_counters_match_items(&stack, run).await;
    stack.shutdown().await;
}

/// A batch caller's list of accounts is larger than an ordinary request body: the route takes it.
#[tokio::test]
async fn a_run_over_a_long_list_of_accounts_starts() {
    let stack = Stack::start().await;
    let ids: Vec<Uuid> = (0..20_000).map(|_| Uuid::new_v4()).collect();
    let run = start_run(&stack, json!({ "account_ids": ids })).await;
    let r = stack.post("interest", &format!("/v1/interest/payout-runs/{run}/cancel"), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let items = stack.count("interest", &format!("SELECT count(*) FROM payout_run_items WHERE run_id = '{run}'")).await;
    assert_eq!(items, 20_000);
}
