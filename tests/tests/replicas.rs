//! Issue 30: faults only replicas have. Each test starts a replicated stack of its own (two
//! processes of every service and of the gateway behind HAProxy, whatever `TOPOLOGY` says) and
//! reaches single replicas on their own ports: one interest replica killed in the middle of a
//! payout run; a rate schedule, a tax rule, a customer's status and an account's holds changed
//! through one replica while the other serves estimates and payouts; a replica frozen past its
//! payout lock lease while the other pays the same account; the rollout changed through one
//! gateway replica and followed by the other within its refresh bound.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{Response, Stack, Topology};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn replicated(extra_env: &[(&str, &str)]) -> Stack {
    Stack::start_in(Topology::Replicated, extra_env, false).await
}

/// `n` accounts of `category` customers on `product`, each with `amount` won, opened today.
async fn funded(stack: &Stack, n: usize, category: &str, product: &str, amount: i64) -> Vec<(Uuid, Uuid)> {
    let mut out = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(20) {
        let made = join_all(chunk.iter().map(|_| async {
            let c = stack.customer(category).await;
            let a = stack.account(c, product).await;
            assert_eq!(stack.deposit(a, amount, None).await.status, StatusCode::CREATED);
            (c, a)
        }))
        .await;
        out.extend(made);
    }
    out
}

async fn pay_at(stack: &Stack, svc_replica: usize, account: Uuid, key: &str) -> Response {
    let path = format!("/v1/interest/accounts/{account}/payouts");
    stack.call_replica("interest", svc_replica, Method::POST, &path, None, &[("Idempotency-Key", key)]).await
}

async fn estimate_at(stack: &Stack, replica: usize, account: Uuid) -> Value {
    let r = stack
        .call_replica("interest", replica, Method::GET, &format!("/v1/interest/accounts/{account}"), None, &[])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// Interest payouts the ledger booked: all of them, and the accounts they were for.
async fn ledger_payouts(stack: &Stack) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT account_id) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'")
        .fetch_one(&stack.dbs["accounting"])
        .await
        .unwrap()
}

async fn postings_of(stack: &Stack, account: Uuid) -> i64 {
    stack
        .count(
            "accounting",
            &format!(
                "SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT' AND account_id = '{account}'"
            ),
        )
        .await
}

/// One interest replica is killed (-9) in the middle of a payout run while it holds claimed
/// chunks. The other finishes the run alone — the dead one's items once their claim lease has
/// passed — and every account is paid exactly once: one posting each in the ledger, one payout
/// each recorded. The killed replica is not restarted.
#[tokio::test(flavor = "multi_thread")]
async fn an_interest_replica_killed_mid_run_leaves_the_run_to_the_other_within_the_claim_lease() {
    const LEASE_MS: u64 = 3_000;
    const ACCOUNTS: usize = 120;
    let lease = LEASE_MS.to_string();
    let mut stack = replicated(&[
        ("RUN_CHUNK", "10"),
        ("RUN_WORKERS", "1"),
        ("RUN_PAGE", "40"),
        ("RUN_CLAIM_LEASE_MS", &lease),
        ("PAYOUT_LOCK_LEASE_MS", "1500"),
    ])
    .await;
    stack.set_today("2024-05-01").await;
    stack.product("RUN", json!([{"from": 0, "rate": "2.0"}]), "2020-01-01").await;
    let accounts = funded(&stack, ACCOUNTS, "GENERAL", "RUN", 20_000_000).await;
    stack.set_today("2024-06-01").await;

    // Replica 1 frozen first, so every claim held when replica 0 dies is replica 0's.
    stack.pause_replica("interest", 1);
    let r = stack.call_replica("interest", 0, Method::POST, "/v1/interest/payout-runs", Some(json!({})), &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let run: Uuid = r.body["run_id"].as_str().unwrap().parse().unwrap();
    let db = stack.dbs["interest"].clone();
    let orphaned = || {
        let db = db.clone();
        async move {
            let claims: Vec<(Uuid, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
                "SELECT account_id, claimed_until FROM payout_run_items
                 WHERE run_id = $1 AND state = 'PENDING' AND claimed_until > now()",
            )
            .bind(run)
            .fetch_all(&db)
            .await
            .unwrap();
            claims
        }
    };
    for _ in 0..600 {
        let paid: i64 =
            sqlx::query_scalar("SELECT count(*) FROM payout_run_items WHERE run_id = $1 AND state = 'PAID'")
                .bind(run)
                .fetch_one(&db)
                .await
                .unwrap();
        if paid >= 20 && !orphaned().await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stack.kill_replica("interest", 0);
    let killed = Instant::now();
    // What the dead replica held: items claimed, not finished, their lease still running.
    let claims = orphaned().await;
    assert!(!claims.is_empty(), "replica 0 held claimed items when it was killed");
    let claimed: Vec<Uuid> = claims.iter().map(|(a, _)| *a).collect();
    let lease_ends = claims.iter().map(|(_, until)| *until).max().unwrap();
    stack.resume_replica("interest", 1);

    let mut report = Value::Null;
    for _ in 0..600 {
        let r =
            stack.call_replica("interest", 1, Method::GET, &format!("/v1/interest/payout-runs/{run}"), None, &[]).await;
        report = r.body;
        if report["state"] != "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = killed.elapsed();
    assert_eq!(report["state"], "COMPLETED", "{report}");
    assert!(!stack.is_replica_running("interest", 0), "the run finished without the killed replica");
    assert!(took < Duration::from_millis(LEASE_MS) + Duration::from_secs(60), "the survivor finished: {took:?}");
    // The survivor took the dead replica's items over once their lease had passed, not before.
    let finished: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT finished_at FROM payout_runs WHERE run_id = $1")
            .bind(run)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(finished >= lease_ends, "finished {finished}, the dead replica's lease ended {lease_ends}");
    eprintln!("run completed {took:?} after the kill; {} items were held by the dead replica", claimed.len());
    assert_eq!(report["paid"], ACCOUNTS, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    // The items the dead replica held were taken over and paid.
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state FROM payout_run_items WHERE run_id = $1 AND account_id = ANY($2)")
            .bind(run)
            .bind(&claimed)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(states.iter().all(|s| s == "PAID"), "{states:?}");
    // Nothing paid twice: one posting per account in the ledger, one payout recorded each.
    assert_eq!(ledger_payouts(&stack).await, (ACCOUNTS as i64, ACCOUNTS as i64));
    assert_eq!(stack.count("interest", "SELECT count(*) FROM payouts").await, ACCOUNTS as i64);
    assert_eq!(stack.count("interest", "SELECT count(DISTINCT account_id) FROM payouts").await, ACCOUNTS as i64);
    for (_, a) in accounts.iter().take(3) {
        assert_eq!(postings_of(&stack, *a).await, 1);
    }
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// Estimates sent to one interest replica in a loop until stopped: when each was sent and what
/// it answered.
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<(Instant, Uuid, Value)>>,
}

impl Load {
    fn estimates(stack: &Stack, replica: usize, accounts: Vec<Uuid>) -> Load {
        let (http, base) = (stack.http.clone(), stack.replica_url("interest", replica));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = 0usize;
            while !flag.load(Ordering::Relaxed) {
                let a = accounts[i % accounts.len()];
                i += 1;
                let sent = Instant::now();
                let r = http.get(format!("{base}/v1/interest/accounts/{a}")).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
                seen.push((sent, a, r.json::<Value>().await.unwrap()));
            }
            seen
        });
        Load { stop, task }
    }

    async fn finish(self) -> Vec<(Instant, Uuid, Value)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// Every estimate sent after `answered` (a change's answer) passes `new`; returns how many were.
fn after_the_change(seen: &[(Instant, Uuid, Value)], answered: Instant, new: impl Fn(Uuid, &Value) -> bool) -> usize {
    let after: Vec<&(Instant, Uuid, Value)> = seen.iter().filter(|(sent, _, _)| *sent > answered).collect();
    for (_, a, body) in &after {
        assert!(new(*a, body), "an estimate sent after the change was answered shows the old state: {a} {body}");
    }
    after.len()
}

/// A rate schedule and then a tax rule are made through interest replica 0 while replica 1 —
/// its rate tables and tax rules kept in process, its estimates cached — serves estimates in a
/// loop and then payouts: nothing it answers after the change was answered is on the old state.
#[tokio::test(flavor = "multi_thread")]
async fn rates_and_tax_rules_changed_through_one_replica_govern_the_other_at_once() {
    let stack = replicated(&[]).await;
    stack.set_today("2024-03-01").await;
    stack.product("REP", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    // 36,500,000 won at 2% for a day is exactly 2,000 won; at 4%, 4,000.
    let accounts: Vec<Uuid> =
        funded(&stack, 6, "GENERAL", "REP", 36_500_000).await.into_iter().map(|(_, a)| a).collect();
    stack.set_today("2024-03-02").await;
    for replica in 0..2 {
        for a in &accounts {
            assert_eq!(estimate_at(&stack, replica, *a).await["gross"], 2000, "warm: the rate table kept");
        }
    }

    // The rate schedule, back to yesterday, through replica 0; replica 1 keeps estimating.
    let load = Load::estimates(&stack, 1, accounts[..4].to_vec());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = json!({"effective_from": "2024-03-01", "bands": [{"from": 0, "rate": "4.0"}]});
    let path = "/v1/interest/products/REP/rate-schedules";
    let r = stack.call_replica("interest", 0, Method::POST, path, Some(body), &[]).await;
    let answered = Instant::now();
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    let judged = after_the_change(&seen, answered, |_, e| e["gross"] == 4000);
    assert!(judged >= 3, "estimates after the change: {judged}");
    let paid = pay_at(&stack, 1, accounts[0], "after-rates").await;
    assert_eq!((paid.status, paid.body["gross"].clone()), (StatusCode::CREATED, json!(4000)), "{:?}", paid.body);

    // A tax rule for tomorrow through replica 0: replica 1 withholds by it from that day on.
    let rule = json!({"category": "GENERAL", "effective_from": "2024-03-03", "reason": "replicas",
        "components": [{"component": "income_tax", "base": "gross", "rate": "20"},
                       {"component": "local_tax", "base": "income_tax", "rate": "10"}]});
    let r = stack.call_replica("interest", 0, Method::POST, "/v1/interest/tax-rules", Some(rule), &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // Today still the rules in force today.
    let today = estimate_at(&stack, 1, accounts[1]).await;
    assert_eq!((today["gross"].clone(), today["income_tax"].clone()), (json!(4000), json!(560)), "{today}");
    stack.set_today("2024-03-03").await;
    let moved = Instant::now();
    // Two days at 4%: 8,000 gross, income tax 20% = 1,600, local tax 10% of it = 160.
    let load = Load::estimates(&stack, 1, accounts[1..4].to_vec());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = load.finish().await;
    let judged = after_the_change(&seen, moved, |_, e| e["income_tax"] == 1600 && e["local_tax"] == 160);
    assert!(judged >= 3, "estimates on the rule's date: {judged}");
    for (i, a) in accounts[1..].iter().enumerate() {
        let p = pay_at(&stack, 1, *a, &format!("after-tax-{i}")).await;
        assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
        assert_eq!((p.body["gross"].as_i64(), p.body["income_tax"].as_i64()), (Some(8000), Some(1600)), "{:?}", p.body);
        assert_eq!(p.body["local_tax"], 160, "{:?}", p.body);
    }
    assert_eq!(ledger_payouts(&stack).await, (6, 6));
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// A customer's restriction is made through customer replica 0 and an account's deposit hold
/// through account-info replica 0, while interest replica 1 — the account and the customer in
/// its directory — serves estimates in a loop: every estimate sent after the change was answered
/// shows the refusal, no payout is paid through either interest replica, and the owner's other
/// replica shows the new state.
#[tokio::test(flavor = "multi_thread")]
async fn a_status_and_a_hold_changed_through_one_replica_are_never_paid_on_by_the_other() {
    let stack = replicated(&[]).await;
    stack.set_today("2024-03-01").await;
    stack.product("REP", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let people = funded(&stack, 4, "GENERAL", "REP", 36_500_000).await;
    // A second account of the first customer, opened and funded the same day.
    let (c, a) = people[0];
    let b = stack.account(c, "REP").await;
    let r = stack.deposit(b, 36_500_000, Some("2024-03-01")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    stack.set_today("2024-03-02").await;
    for replica in 0..2 {
        for account in people.iter().map(|p| p.1).chain([b]) {
            assert_eq!(estimate_at(&stack, replica, account).await["payable"], true, "warm: the directory holds them");
        }
    }

    // The customer of accounts a and b is restricted.
    let load = Load::estimates(&stack, 1, vec![a, b]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = json!({"status": "DECEASED", "reason": "replicas"});
    let r =
        stack.call_replica("customer", 0, Method::PUT, &format!("/v1/customers/{c}/status"), Some(status), &[]).await;
    let answered = Instant::now();
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    let judged = after_the_change(&seen, answered, |_, e| e["payable"] == false && e["code"] == "CUSTOMER_RESTRICTED");
    assert!(judged >= 3, "estimates after the restriction: {judged}");
    let shown = stack.call_replica("customer", 1, Method::GET, &format!("/v1/customers/{c}"), None, &[]).await;
    assert_eq!(shown.body["status"], "DECEASED", "{:?}", shown.body);
    for (replica, account) in [(1, a), (0, b)] {
        let p = pay_at(&stack, replica, account, "after-status").await;
        assert_eq!(
            (p.status, p.body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("CUSTOMER_RESTRICTED")),
            "{:?}",
            p.body
        );
    }

    // A deposit hold on account 2 through account-info replica 0.
    let (_, held) = people[2];
    let load = Load::estimates(&stack, 1, vec![held]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let hold = json!({"deposit_suspended": true, "withdrawal_suspended": false});
    let r = stack
        .call_replica("account-info", 0, Method::PUT, &format!("/v1/accounts/{held}/holds"), Some(hold), &[])
        .await;
    let answered = Instant::now();
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = load.finish().await;
    let judged = after_the_change(&seen, answered, |_, e| e["payable"] == false && e["code"] == "DEPOSIT_SUSPENDED");
    assert!(judged >= 3, "estimates after the hold: {judged}");
    let shown = stack.call_replica("account-info", 1, Method::GET, &format!("/v1/accounts/{held}"), None, &[]).await;
    assert_eq!(shown.body["deposit_suspended"], true, "{:?}", shown.body);
    for replica in [1, 0] {
        let p = pay_at(&stack, replica, held, &format!("after-hold-{replica}")).await;
        assert_eq!(
            (p.status, p.body["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("DEPOSIT_SUSPENDED")),
            "{:?}",
            p.body
        );
    }

    // The untouched account is paid as usual; none of the others was.
    let p = pay_at(&stack, 1, people[3].1, "untouched").await;
    assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
    assert_eq!(ledger_payouts(&stack).await, (1, 1));
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// Interest replica 0 quotes a payout, takes the account's Redis lock and is frozen (SIGSTOP)
/// before booking, past the lock's lease; meanwhile replica 1 takes the expired lock and pays the
/// same account. When replica 0 wakes up and books, the ledger refuses a second payout for the
/// day (another key) or replays the first (the same key): one payout per account either way.
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_frozen_past_its_lock_lease_while_the_other_pays_the_same_account_pays_once() {
    const LEASE_MS: u64 = 1_500;
    let lease = LEASE_MS.to_string();
    let stack = replicated(&[
        ("PAYOUT_LOCK_LEASE_MS", &lease),
        ("PAYOUT_LOCK_WAIT_MS", "200"),
        ("PAYOUT_PAUSE_BEFORE_BOOKING_MS", "1000"),
    ])
    .await;
    stack.set_today("2024-03-01").await;
    stack.product("REP", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let people = funded(&stack, 2, "TAX_FREE", "REP", 36_500_000).await;
    stack.set_today("2024-03-02").await;

    for (i, (_, account)) in people.iter().enumerate() {
        let same_key = i == 1;
        let (first_key, second_key) = if same_key { ("tap", "tap") } else { ("tap", "tap-again") };
        let (http, url) = (stack.http.clone(), stack.replica_url("interest", 0));
        let account = *account;
        let frozen = tokio::spawn(async move {
            let r = http
                .post(format!("{url}/v1/interest/accounts/{account}/payouts"))
                .header("Idempotency-Key", first_key)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        });
        // Inside the pause between quote and booking: the lock is held, replica 1 is told so.
        tokio::time::sleep(Duration::from_millis(400)).await;
        stack.pause_replica("interest", 0);
        let paused = Instant::now();
        let probe = pay_at(&stack, 1, account, "probe").await;
        assert_eq!(probe.body["code"], "PAYOUT_IN_PROGRESS", "the frozen replica holds the lock: {:?}", probe.body);
        tokio::time::sleep(Duration::from_millis(LEASE_MS + 1_000).saturating_sub(paused.elapsed())).await;
        let second = pay_at(&stack, 1, account, second_key).await;
        assert_eq!(second.status, StatusCode::CREATED, "the lease expired, replica 1 pays: {:?}", second.body);
        stack.resume_replica("interest", 0);
        let (status, body) = frozen.await.unwrap();
        if same_key {
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert_eq!(body["payout_id"], second.body["payout_id"], "the same key, the same payout: {body}");
        } else {
            assert_eq!((status, body["code"].as_str()), (StatusCode::CONFLICT, Some("ALREADY_PAID_TODAY")), "{body}");
        }
        assert_eq!(postings_of(&stack, account).await, 1, "one payout for the account");
        assert_eq!(stack.balance(account).await, 36_502_000, "credited once");
        let again = pay_at(&stack, 0, account, first_key).await;
        assert!(
            again.body == body
                || (again.status == StatusCode::CREATED && again.body["payout_id"] == second.body["payout_id"]),
            "the key keeps its answer: {:?} then {:?}",
            body,
            again.body
        );
    }
    // Replica 0 serves again, and the interest records agree with the ledger.
    assert!(stack.is_replica_running("interest", 0));
    assert_eq!(stack.count("interest", "SELECT count(*) FROM payouts").await, 2);
    assert_eq!(ledger_payouts(&stack).await, (2, 2));
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// The rollout policy is changed through gateway replica 0; gateway replica 1, which routed a
/// customer on the old policy a moment before, routes every request sent once its refresh bound
/// (`ROLLOUT_REFRESH_MS`) has passed since the change was answered on the new one — and back.
#[tokio::test(flavor = "multi_thread")]
async fn the_rollout_changed_through_one_gateway_is_followed_by_the_other_within_its_refresh() {
    const REFRESH_MS: u64 = 1_000;
    let refresh = REFRESH_MS.to_string();
    let mut stack = Stack::start_in(Topology::Replicated, &[], true).await;
    stack.start_gateway(&[("ROLLOUT_REFRESH_MS", &refresh)]).await;
    assert_eq!(stack.replicas("gateway"), 2);
    stack.set_today("2024-03-01").await;
    stack.product("LG", json!([{"from": 0, "rate": "3.0"}]), "2024-01-01").await;
    let (c, a) = funded(&stack, 1, "GENERAL", "LG", 40_000_000).await[0];
    stack.set_today("2024-03-08").await;
    let customer = stack.token(&c.to_string(), "customer");
    let ops = stack.token("ops-lead", "ops:read ops:write");
    let served_by = |replica: usize| {
        let (stack, customer) = (&stack, customer.clone());
        async move {
            let url = format!("{}/v1/me/accounts/{a}/interest", stack.replica_url("gateway", replica));
            let r = stack.http.get(url).bearer_auth(customer).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.headers()["x-served-by"].to_str().unwrap().to_string()
        }
    };
    for (percent, before, after) in [(0, "new", "legacy"), (100, "legacy", "new")] {
        // Replica 1 routes on the policy it holds.
        assert_eq!(served_by(1).await, before);
        let body = json!({"percent": percent, "reason": "replicas"});
        let r = stack
            .call_replica(
                "gateway",
                0,
                Method::PUT,
                "/v1/ops/rollout",
                Some(body),
                &[("Authorization", &format!("Bearer {ops}"))],
            )
            .await;
        let answered = Instant::now();
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(served_by(0).await, after, "the replica that made the change routes on it at once");
        // Within the bound replica 1 may still route on the old policy; past it, never.
        tokio::time::sleep(Duration::from_millis(REFRESH_MS).saturating_sub(answered.elapsed())).await;
        for _ in 0..10 {
            assert_eq!(served_by(1).await, after, "{} ms after the change", answered.elapsed().as_millis());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    stack.shutdown().await;
}
