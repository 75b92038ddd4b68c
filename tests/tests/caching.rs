//! Issue 6: the estimate cached until midnight and invalidated by every change it depends on, the
//! call budget of a payout with account and customer data cached by mutability, and degradation
//! when Redis or a dependency is down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::{RedisServer, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const BANDS: &str = r#"[{"from": 0, "to": null, "rate": "2.0"}]"#;

async fn setup(stack: &Stack, opened: &str) -> (Uuid, Uuid) {
    stack.set_today(opened).await;
    if stack.get("interest", "/v1/interest/products/SAVE").await.status == StatusCode::NOT_FOUND {
        stack.product("SAVE", serde_json::from_str(BANDS).unwrap(), "2020-01-01").await;
    }
    let c = stack.customer("GENERAL").await;
    let a = stack.account(c, "SAVE").await;
    assert_eq!(stack.deposit(a, 10_000_000, None).await.status, StatusCode::CREATED);
    (c, a)
}

/// These tests measure one interest process's caches (estimates, rate tables, the directory,
/// breakers), so their estimates and payouts go to interest replica 0 on its own port (the only
/// process in the other topologies); what other replicas keep is tested in replicas.rs.
fn interest(stack: &Stack) -> String {
    stack.replica_url("interest", 0)
}

async fn estimate(stack: &Stack, a: Uuid) -> Value {
    let r = stack.call_at(&interest(stack), Method::GET, &format!("/v1/interest/accounts/{a}"), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

async fn pay(stack: &Stack, a: Uuid, key: &str) -> e2e::Response {
    let path = format!("/v1/interest/accounts/{a}/payouts");
    stack.call_at(&interest(stack), Method::POST, &path, None, &[("Idempotency-Key", key)]).await
}

async fn hits(stack: &Stack) -> (f64, f64) {
    let hit = stack.metric("interest", "interest_estimate_cache_total", &[("result", "hit")]).await;
    let miss = stack.metric("interest", "interest_estimate_cache_total", &[("result", "miss")]).await;
    (hit, miss)
}

async fn put(stack: &Stack, svc: &str, path: &str, body: Value) {
    let r = stack.call(svc, Method::PUT, path, Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn redis_pttl(stack: &Stack, key: &str) -> i64 {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // As the services connect: AUTH and TLS in the URL, a private CA in REDIS_CA_FILE.
    let client = platform::redis::client(&url, platform::redis::ca_file_from_env().as_deref()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PTTL").arg(format!("{}:{key}", stack.run)).query_async(&mut c).await.unwrap()
}

#[tokio::test]
async fn estimate_is_cached_until_midnight_and_never_served_stale() {
    let stack = Stack::start().await;
    let (c, a) = setup(&stack, "2024-03-01").await;

    // 23:59:50: computed once, then served from the cache, which expires at midnight.
    stack.set_clock("2024-03-10", "23:59:50").await;
    let (h0, m0) = hits(&stack).await;
    let first = estimate(&stack, a).await;
    let ledger_calls = stack.calls_to("accounting").await;
    let second = estimate(&stack, a).await;
    assert_eq!(first, second);
    assert_eq!(first["payable"], true);
    assert_eq!(hits(&stack).await, (h0 + 1.0, m0 + 1.0));
    assert_eq!(stack.calls_to("accounting").await, ledger_calls, "a hit reads nothing from the ledger");
    let ttl = redis_pttl(&stack, &format!("estimate:{a}:2024-03-10")).await;
    assert!(ttl > 0 && ttl <= 10_000, "the entry lives until Seoul midnight, 10 s away: PTTL {ttl}");

    // A deposit dated today cannot change an estimate that ends yesterday: still a hit.
    assert_eq!(stack.deposit(a, 5_000_000, None).await.status, StatusCode::CREATED);
    assert_eq!(estimate(&stack, a).await, first);
    assert_eq!(hits(&stack).await, (h0 + 2.0, m0 + 1.0));

    // A back-dated deposit changes a past day: the ledger bumps its revision, the entry is stale.
    assert_eq!(stack.deposit(a, 20_000_000, Some("2024-03-05")).await.status, StatusCode::CREATED);
    let backdated = estimate(&stack, a).await;
    assert!(backdated["gross"].as_i64() > first["gross"].as_i64(), "{backdated} vs {first}");
    assert_eq!(hits(&stack).await, (h0 + 2.0, m0 + 2.0));

    // Statuses are applied on every read from current data, never from the cached quote.
    put(&stack, "customer", &format!("/v1/customers/{c}/status"), json!({"status": "DECEASED", "reason": "r"})).await;
    let restricted = estimate(&stack, a).await;
    assert_eq!(
        (restricted["payable"].clone(), restricted["code"].clone()),
        (json!(false), json!("CUSTOMER_RESTRICTED"))
    );
    assert_eq!(restricted["gross"], backdated["gross"]);
    put(&stack, "customer", &format!("/v1/customers/{c}/status"), json!({"status": "ACTIVE"})).await;
    assert_eq!(estimate(&stack, a).await, backdated);
    let holds = json!({"deposit_suspended": true, "withdrawal_suspended": false});
    put(&stack, "account-info", &format!("/v1/accounts/{a}/holds"), holds).await;
    assert_eq!(estimate(&stack, a).await["code"], "DEPOSIT_SUSPENDED");
    let holds = json!({"deposit_suspended": false, "withdrawal_suspended": false});
    put(&stack, "account-info", &format!("/v1/accounts/{a}/holds"), holds).await;
    assert_eq!(estimate(&stack, a).await, backdated);
    assert_eq!(hits(&stack).await, (h0 + 6.0, m0 + 2.0), "status changes reuse the cached quote");

    // A new rate schedule for unpaid days invalidates every estimate of the product.
    let r = stack
        .post(
            "interest",
            "/v1/interest/products/SAVE/rate-schedules",
            json!({"effective_from": "2024-03-08", "bands": [{"from": 0, "to": null, "rate": "4.0"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let new_rates = estimate(&stack, a).await;
    assert!(new_rates["gross"].as_i64() > backdated["gross"].as_i64());
    assert_eq!(hits(&stack).await, (h0 + 6.0, m0 + 3.0));

    // A payout: the next estimate says so at once.
    let paid = pay(&stack, a, "k1").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    assert_eq!(paid.body["gross"], new_rates["gross"]);
    let after = estimate(&stack, a).await;
    assert_eq!((after["payable"].clone(), after["code"].clone()), (json!(false), json!("ALREADY_PAID_TODAY")));

    // 00:00:00 the next day: a new business date, a new entry, one more day to pay.
    stack.set_clock("2024-03-11", "00:00:00").await;
    let next = estimate(&stack, a).await;
    assert_eq!(next["business_date"], "2024-03-11");
    assert_eq!((next["period_from"].clone(), next["period_to"].clone()), (json!("2024-03-10"), json!("2024-03-10")));
    assert_eq!(next["payable"], true);
    let ttl = redis_pttl(&stack, &format!("estimate:{a}:2024-03-11")).await;
    assert!(ttl > 86_000_000 && ttl <= 86_400_000, "a full day left: PTTL {ttl}");
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn concurrent_cold_estimates_compute_once() {
    let stack = Stack::start().await;
    let (_, a) = setup(&stack, "2024-03-01").await;
    stack.set_today("2024-04-01").await;
    let (h0, m0) = hits(&stack).await;
    let ledger0 = stack.calls_to("accounting").await;
    let all = futures::future::join_all((0..16).map(|_| estimate(&stack, a))).await;
    assert!(all.iter().all(|e| *e == all[0]));
    assert_eq!(hits(&stack).await, (h0 + 15.0, m0 + 1.0));
    assert_eq!(stack.calls_to("accounting").await, ledger0 + 1.0, "one read of the ledger for 16 requests");
    stack.shutdown().await;
}

#[tokio::test]
async fn payout_call_budget_cold_and_warm() {
    let stack = Stack::start().await;
    let (_, cold) = setup(&stack, "2024-03-01").await;
    let (_, warm) = setup(&stack, "2024-03-01").await;
    stack.set_today("2024-04-01").await;

    let before =
        [stack.calls_to("account-info").await, stack.calls_to("customer").await, stack.calls_to("accounting").await];
    assert_eq!(pay(&stack, cold, "c").await.status, StatusCode::CREATED);
    let after =
        [stack.calls_to("account-info").await, stack.calls_to("customer").await, stack.calls_to("accounting").await];
    assert_eq!(after[0] - before[0], 1.0, "cold: one call to account-info");
    assert_eq!(after[1] - before[1], 1.0, "cold: one call to customer");
    assert!(after[2] - before[2] <= 2.0, "at most two calls to accounting");

    // The estimate warms the account and customer; the payout then reads neither.
    estimate(&stack, warm).await;
    let before =
        [stack.calls_to("account-info").await, stack.calls_to("customer").await, stack.calls_to("accounting").await];
    assert_eq!(pay(&stack, warm, "w").await.status, StatusCode::CREATED);
    let after =
        [stack.calls_to("account-info").await, stack.calls_to("customer").await, stack.calls_to("accounting").await];
    assert_eq!(after[0] - before[0], 0.0, "warm: no call to account-info");
    assert_eq!(after[1] - before[1], 0.0, "warm: no call to customer");
    assert_eq!(after[2] - before[2], 1.0, "warm: the estimate's quote is booked; one call to accounting");
    stack.shutdown().await;
}

#[tokio::test]
async fn with_redis_down_estimates_and_payouts_stay_correct() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let stack = Stack::start_with(&[("REDIS_URL", &url)]).await;
    let (_, a) = setup(&stack, "2024-03-01").await;
    stack.set_today("2024-04-01").await;
    let cached = estimate(&stack, a).await;
    // Every process of every service reads the clock once more, so each remembers it while Redis
    // is away.
    for svc in ["customer", "account-info", "accounting", "interest", "tax-consumer"] {
        for url in stack.replica_urls(svc) {
            assert_eq!(stack.call_at(&url, Method::GET, "/v1/admin/clock", None, &[]).await.status, StatusCode::OK);
        }
    }

    redis.stop();
    let (_, m0) = hits(&stack).await;
    assert_eq!(estimate(&stack, a).await, cached, "computed from the databases, same figures");
    assert_eq!(hits(&stack).await.1, m0 + 1.0);
    let paid = pay(&stack, a, "k1").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    assert_eq!(paid.body["net"], cached["net"]);
    let again = pay(&stack, a, "k2").await;
    assert_eq!((again.status, again.body["code"].clone()), (StatusCode::CONFLICT, json!("ALREADY_PAID_TODAY")));
    assert_eq!(estimate(&stack, a).await["code"], "ALREADY_PAID_TODAY");

    // Redis back, empty: nothing stale comes back with it.
    redis.restart().await;
    stack.set_today("2024-04-01").await;
    assert_eq!(estimate(&stack, a).await["code"], "ALREADY_PAID_TODAY");
    let payouts: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'")
        .fetch_one(&stack.dbs["accounting"])
        .await
        .unwrap();
    assert_eq!(payouts, 1);
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

async fn pay_raw(stack: &Stack, a: Uuid, key: &str) -> (StatusCode, Option<String>, Value) {
    let r = stack
        .http
        .post(format!("{}/v1/interest/accounts/{a}/payouts", interest(stack)))
        .header("Idempotency-Key", key)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_dead_dependency_fails_payouts_fast_and_the_breaker_stops_calling_it() {
    if e2e::monolith() {
        // One process: no service can be down while the interest service runs, and no wire.
        eprintln!("not applicable to TOPOLOGY=monolith: a dependency cannot die alone there");
        return;
    }
    let mut stack = Stack::start_with(&[("CIRCUIT_FAILURES", "3"), ("CIRCUIT_OPEN_MS", "1500")]).await;
    let (_, a1) = setup(&stack, "2024-03-01").await;
    let (_, a2) = setup(&stack, "2024-03-01").await;
    stack.set_today("2024-04-01").await;

    let counts = |stack: &Stack| {
        let (ledger, interest) = (stack.dbs["accounting"].clone(), stack.dbs["interest"].clone());
        async move {
            let booked: i64 = sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'")
                .fetch_one(&ledger)
                .await
                .unwrap();
            let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM payouts").fetch_one(&interest).await.unwrap();
            (booked, recorded)
        }
    };
    for (svc, account) in [("customer", a1), ("account-info", a2)] {
        stack.kill(svc);
        let attempts0 = stack.wire_attempts_to(svc).await;
        let counts0 = counts(&stack).await;
        for i in 0..8 {
            let (status, retry_after, body) = pay_raw(&stack, account, &format!("{svc}-{i}")).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert_eq!(body["code"], "DEPENDENCY_UNAVAILABLE");
            assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1), "a retry hint");
        }
        let attempts = stack.wire_attempts_to(svc).await - attempts0;
        assert!(attempts <= 4.0, "the open breaker stopped calling {svc}: {attempts} attempts for 8 payouts");
        assert_eq!(counts(&stack).await, counts0, "nothing half done");

        // Back up: after the open period one trial call goes through and closes the breaker.
        stack.restart_with(svc, &[]).await;
        tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
        let (status, _, body) = pay_raw(&stack, account, &format!("{svc}-ok")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(counts(&stack).await, (counts0.0 + 1, counts0.1 + 1));
    }
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// Issue 15: rate tables kept in the interest process are reused at the revision Redis holds and
/// dropped at the next schedule change; what is quoted after the change is the new rate.
#[tokio::test]
async fn rate_tables_kept_in_process_follow_each_schedule_change() {
    let stack = Stack::start().await;
    stack.set_today("2024-03-01").await;
    stack.product("REF", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let mut accounts = Vec::new();
    for _ in 0..3 {
        let a = stack.account(stack.customer("TAX_FREE").await, "REF").await;
        // 36,500,000 won at 2% for a day is exactly 2,000 won.
        assert_eq!(stack.deposit(a, 36_500_000, None).await.status, StatusCode::CREATED);
        accounts.push(a);
    }
    stack.set_today("2024-03-02").await;
    let rates = |result: &'static str| {
        let stack = &stack;
        async move {
            stack.metric("interest", "interest_reference_cache_total", &[("data", "rates"), ("result", result)]).await
        }
    };
    assert_eq!(estimate(&stack, accounts[0]).await["gross"], 2000);
    let hit_before = rates("hit").await;
    assert_eq!(estimate(&stack, accounts[1]).await["gross"], 2000);
    assert_eq!(rates("hit").await, hit_before + 1.0, "the second quote reused the table");
    let r = stack
        .post(
            "interest",
            "/v1/interest/products/REF/rate-schedules",
            json!({"effective_from": "2024-03-01", "bands": [{"from": 0, "rate": "4.0"}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let miss_before = rates("miss").await;
    assert_eq!(estimate(&stack, accounts[0]).await["gross"], 4000, "the new rate, not the table kept");
    assert_eq!(rates("miss").await, miss_before + 1.0);
    let paid = pay(&stack, accounts[2], "after-change").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    assert_eq!(paid.body["gross"], 4000);
    stack.shutdown().await;
}
