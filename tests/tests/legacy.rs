//! Moving customers off the legacy core (issue: shadow verification, batch verification, gradual
//! rollout), against the legacy-core simulator: its own store and arithmetic, switchable
//! deviations. An injected deviation is found with the right field online and in batch; the
//! legacy core down or frozen leaves customers unaffected; the gateway moves customers by policy
//! and no account is paid twice for a business date whichever side pays, while the policy changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{binary, Stack, LEGACY};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn deviations(stack: &Stack, d: Value) {
    let r = stack.call(LEGACY, Method::PUT, "/legacy/v1/admin/deviations", Some(d), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn wait_metric(stack: &Stack, labels: &[(&str, &str)], want: f64) {
    let mut seen = 0.0;
    for _ in 0..120 {
        seen = stack.metric("interest", "shadow_comparisons_total", labels).await;
        if seen >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, want, "shadow_comparisons_total{labels:?}");
}

async fn estimate(stack: &Stack, account: Uuid) -> Value {
    let r = stack.get("interest", &format!("/v1/interest/accounts/{account}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

fn verify(stack: &Stack, date: &str, out: &std::path::Path, max: &str) -> (i32, String) {
    let o = std::process::Command::new(binary("bankctl"))
        .args(["verify", "--date", date, "--all", "--no-progress", "--max-mismatches", max, "--out"])
        .arg(out)
        .env("INTEREST_URL", &stack.urls["interest"])
        .env("ACCOUNT_INFO_URL", &stack.urls["account-info"])
        .env("CUSTOMER_URL", &stack.urls["customer"])
        .env("LEGACY_CORE_URL", &stack.urls[LEGACY])
        .envs(stack.ops_env())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn the_legacy_core_agrees_by_default_and_each_deviation_is_reported_with_its_field_online_and_in_batch() {
    let stack = Stack::start_with_legacy(&[]).await;
    stack.set_today("2024-03-01").await;
    stack
        .product(
            "LG",
            json!([{"from": 0, "to": 10_000_000, "rate": "2.0"}, {"from": 10_000_000, "rate": "2.5"}]),
            "2024-01-01",
        )
        .await;
    let general = stack.account(stack.customer("GENERAL").await, "LG").await;
    let preferential = stack.account(stack.customer("PREFERENTIAL").await, "LG").await;
    let tax_free = stack.account(stack.customer("TAX_FREE").await, "LG").await;
    // 2,000,000 at 2% for a day: 109 gross, income tax 15.26 → 10 (truncated) or 20 (half up).
    assert_eq!(stack.deposit(general, 2_000_000, None).await.status, StatusCode::CREATED);
    // Tiered: 9% of the gross truncates and rounds apart.
    assert_eq!(stack.deposit(preferential, 50_000_000, None).await.status, StatusCode::CREATED);
    assert_eq!(stack.deposit(tax_free, 30_000_000, None).await.status, StatusCode::CREATED);
    stack.set_today("2024-03-02").await;

    // By default both sides agree on every account, figures and all.
    for account in [general, preferential, tax_free] {
        let ours = estimate(&stack, account).await;
        let theirs =
            stack.get(LEGACY, &format!("/legacy/v1/accounts/{account}/interest?business_date=2024-03-02")).await;
        assert_eq!(theirs.status, StatusCode::OK, "{:?}", theirs.body);
        assert_eq!(ours["gross"], theirs.body["gross"]);
        assert_eq!(ours["net"], theirs.body["net"]);
        assert_eq!(ours["period_from"], theirs.body["period_from"]);
    }
    wait_metric(&stack, &[("kind", "estimate"), ("result", "match")], 3.0).await;
    assert_eq!(stack.metric("interest", "shadow_comparisons_total", &[("result", "mismatch")]).await, 0.0);
    let dir = std::env::temp_dir().join(format!("{}-verify-clean", stack.run));
    let (code, out) = verify(&stack, "2024-03-02", &dir, "0");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("matched     3"), "{out}");

    // Tax rounded another way: the estimate's comparison names the tax and the net.
    deviations(&stack, json!({"tax_rounding": true})).await;
    let ours = estimate(&stack, general).await;
    assert_eq!((ours["gross"].clone(), ours["income_tax"].clone()), (json!(109), json!(10)));
    wait_metric(&stack, &[("kind", "estimate"), ("result", "mismatch")], 1.0).await;
    let listed = stack.get("interest", &format!("/v1/interest/shadow-mismatches?account_id={general}")).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let m = &listed.body["mismatches"][0];
    assert_eq!(m["kind"], "estimate");
    assert_eq!(m["fields"], json!(["income_tax", "net"]), "{m}");
    assert_eq!((m["ours"]["income_tax"].clone(), m["legacy"]["income_tax"].clone()), (json!(10), json!(20)), "{m}");
    assert_eq!(m["ours_payload"]["income_tax"], 10, "our answer as given: {m}");
    assert_eq!(
        m["legacy_payload"]["taxes"],
        json!([{"component": "income_tax", "amount": 20}]),
        "theirs as given: {m}"
    );

    // A payout is compared with what the legacy core would have paid that day.
    let paid = stack.pay(preferential, "pay-preferential").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    wait_metric(&stack, &[("kind", "payout"), ("result", "mismatch")], 1.0).await;
    let listed = stack.get("interest", "/v1/interest/shadow-mismatches?kind=payout").await;
    let m = &listed.body["mismatches"][0];
    assert_eq!(m["account_id"], preferential.to_string());
    assert!(m["fields"].as_array().unwrap().contains(&json!("income_tax")), "{m}");
    assert_eq!(m["ours"]["gross"], paid.body["gross"]);
    assert_eq!(m["legacy"]["gross"], paid.body["gross"], "the legacy side priced the same period");

    // A hold ignored: the comparison names eligibility and code.
    deviations(&stack, json!({"hold_ignored": true})).await;
    let r = stack
        .call(
            "account-info",
            Method::PUT,
            &format!("/v1/accounts/{tax_free}/holds"),
            Some(json!({"deposit_suspended": true, "withdrawal_suspended": false})),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(estimate(&stack, tax_free).await["code"], "DEPOSIT_SUSPENDED");
    wait_metric(&stack, &[("kind", "estimate"), ("result", "mismatch")], 2.0).await;
    let listed = stack.get("interest", &format!("/v1/interest/shadow-mismatches?account_id={tax_free}")).await;
    assert_eq!(listed.body["mismatches"][0]["fields"], json!(["eligibility", "code"]));

    // Batch: every account on both sides; the hold ignored shows on the held account only (the
    // preferential one is paid today on both sides' view, the general one agrees without rounding).
    let dir = std::env::temp_dir().join(format!("{}-verify", stack.run));
    let (code, out) = verify(&stack, "2024-03-02", &dir, "0");
    assert_eq!(code, 1, "one mismatch is above a threshold of 0: {out}");
    let csv = std::fs::read_to_string(dir.join("mismatches.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert!(rows[0].starts_with(&tax_free.to_string()), "{csv}");
    assert!(rows[0].contains(",LG,ACTIVE,eligibility;code,"), "{csv}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!((summary["accounts"].clone(), summary["mismatched"].clone()), (json!(3), json!(1)));
    assert_eq!(summary["by_field"]["eligibility"], 1);
    assert_eq!(summary["by_product"]["LG"], 1);
    assert_eq!(verify(&stack, "2024-03-02", &dir, "1").0, 0, "within a threshold of 1");
    // Batch verification is nothing paid and no shadow comparison of its own estimates.
    assert_eq!(
        stack.count("accounting", "SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'").await,
        1
    );
    assert_eq!(stack.metric("interest", "shadow_comparisons_total", &[("kind", "estimate")]).await, 5.0);

    // Rounding in batch: the general account's income tax differs.
    deviations(&stack, json!({"tax_rounding": true})).await;
    let (code, out) = verify(&stack, "2024-03-02", &dir, "0");
    assert_eq!(code, 1, "{out}");
    let csv = std::fs::read_to_string(dir.join("mismatches.csv")).unwrap();
    let row = csv.lines().find(|l| l.starts_with(&general.to_string())).unwrap_or_else(|| panic!("{csv}"));
    assert!(row.contains("income_tax;net"), "{row}");
    stack.shutdown().await;
}

#[tokio::test]
async fn customers_are_unaffected_when_the_legacy_core_is_down_or_frozen() {
    // No breaker in the way: every comparison goes to the legacy core and meets its state.
    let env = [
        ("SHADOW_QUEUE", "4"),
        ("SHADOW_CONCURRENCY", "2"),
        ("SHADOW_TIMEOUT_MS", "300"),
        ("CIRCUIT_FAILURES", "1000000"),
    ];
    let mut stack = Stack::start_with_legacy(&env).await;
    stack.set_today("2024-03-01").await;
    stack.product("LG", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let accounts: Vec<Uuid> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let a = stack.account(stack.customer("GENERAL").await, "LG").await;
            assert_eq!(stack.deposit(a, 10_000_000, None).await.status, StatusCode::CREATED);
            v.push(a);
        }
        v
    };
    stack.set_today("2024-03-05").await;

    stack.kill(LEGACY);
    for a in &accounts {
        estimate(&stack, *a).await;
    }
    let paid = stack.pay(accounts[0], "pay-while-legacy-down").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    wait_metric(&stack, &[("kind", "estimate"), ("result", "legacy_unavailable")], 3.0).await;
    wait_metric(&stack, &[("kind", "payout"), ("result", "legacy_unavailable")], 1.0).await;

    // Frozen (SIGSTOP): comparisons time out, the queue fills, the rest are dropped and counted.
    stack.restart_with(LEGACY, &[]).await;
    stack.pause(LEGACY);
    let paths: Vec<String> = (0..60).map(|i| format!("/v1/interest/accounts/{}", accounts[i % 3])).collect();
    let answers = futures::future::join_all(paths.iter().map(|p| stack.get("interest", p))).await;
    assert!(answers.iter().all(|r| r.status == StatusCode::OK));
    let paid = stack.pay(accounts[1], "pay-while-legacy-frozen").await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    let dropped = stack.metric("interest", "shadow_comparisons_dropped_total", &[]).await;
    assert!(dropped >= 1.0, "a full queue drops comparisons ({dropped})");
    stack.resume(LEGACY);
    // Back: comparisons resume and match.
    let before = stack.metric("interest", "shadow_comparisons_total", &[("result", "match")]).await;
    estimate(&stack, accounts[2]).await;
    let mut now = before;
    for _ in 0..100 {
        now = stack.metric("interest", "shadow_comparisons_total", &[("result", "match")]).await;
        if now > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(now > before, "comparisons match again once the legacy core answers");
    stack.shutdown().await;
}

/// "Get interest now" through the gateway, as the account's customer.
async fn pay_through_gateway(stack: &Stack, customer: Uuid, account: Uuid, key: &str) -> e2e::Response {
    let token = stack.token(&customer.to_string(), "customer");
    let path = format!("/v1/me/accounts/{account}/payouts");
    stack.as_caller(&token, Method::POST, &path, None, &[("Idempotency-Key", key)]).await
}

/// Changes the rollout and, with several gateways, waits until every one follows it.
async fn set_rollout(stack: &Stack, ops: &str, body: Value) -> Value {
    let policy = put_rollout(stack, ops, body).await;
    followed(stack).await;
    policy
}

async fn put_rollout(stack: &Stack, ops: &str, body: Value) -> Value {
    let r = stack.as_caller(ops, Method::PUT, "/v1/ops/rollout", Some(body), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.body
}

/// With several gateways, the others follow a rollout change within `ROLLOUT_REFRESH_MS` (1 s by
/// default; tested in replicas.rs): waited for before asserting where a customer is routed.
async fn followed(stack: &Stack) {
    if stack.replicas("gateway") > 1 {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
    }
}

/// Every interest posting of the account, `(business_date, period_from, period_to)` by date.
async fn postings(stack: &Stack, account: Uuid) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT business_date::text, payout->>'period_from', payout->>'period_to' FROM journal_entries
         WHERE kind = 'INTEREST_PAYOUT' AND account_id = $1 ORDER BY business_date",
    )
    .bind(account)
    .fetch_all(&stack.dbs["accounting"])
    .await
    .unwrap()
}

#[tokio::test]
async fn the_gateway_moves_customers_by_policy_and_no_account_is_paid_by_both_sides() {
    let mut stack = Stack::start_with_legacy(&[]).await;
    stack.start_gateway(&[("RATE_LIMIT_PAYOUTS_PER_MINUTE", "100")]).await;
    stack.set_today("2024-03-01").await;
    stack.product("LG", json!([{"from": 0, "rate": "3.0"}]), "2024-01-01").await;
    let mut people = Vec::new();
    for _ in 0..16 {
        let c = stack.customer("GENERAL").await;
        let a = stack.account(c, "LG").await;
        assert_eq!(stack.deposit(a, 40_000_000, None).await.status, StatusCode::CREATED);
        people.push((c, a));
    }
    stack.set_today("2024-03-08").await;
    let ops = stack.token("ops-lead", "ops:read ops:write");

    // The team first: everyone else stays on the legacy core.
    let team = people[0].0;
    let p = set_rollout(&stack, &ops, json!({"percent": 0, "team": [team], "reason": "team first"})).await;
    assert_eq!((p["version"].clone(), p["changed_by"].clone()), (json!(1), json!("ops-lead")));
    let side_of = |c: Uuid| {
        let (stack, ops) = (&stack, ops.clone());
        async move {
            let r = stack.as_caller(&ops, Method::GET, &format!("/v1/ops/rollout/customers/{c}"), None, &[]).await;
            r.body["side"].as_str().unwrap().to_string()
        }
    };
    assert_eq!(side_of(team).await, "new");
    assert_eq!(side_of(people[1].0).await, "legacy");
    let served_by = |c: Uuid, a: Uuid| {
        let stack = &stack;
        async move {
            let r = stack
                .http
                .get(format!("{}/v1/me/accounts/{a}/interest", stack.urls["gateway"]))
                .bearer_auth(stack.token(&c.to_string(), "customer"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.headers()["x-served-by"].to_str().unwrap().to_string()
        }
    };
    assert_eq!(served_by(team, people[0].1).await, "new");
    assert_eq!(served_by(people[1].0, people[1].1).await, "legacy");
    let audited = stack
        .count("gateway", "SELECT count(*) FROM audit_log WHERE route = '/v1/ops/rollout' AND method = 'PUT'")
        .await;
    assert_eq!(audited, 1);
    // The kill switch beats the team list.
    set_rollout(&stack, &ops, json!({"percent": 0, "team": [team], "kill_switch": true})).await;
    assert_eq!(served_by(team, people[0].1).await, "legacy");

    // Mid-day: every customer pays twice (two keys) while the percentage swings between the sides.
    let flips = async {
        for percent in [50, 100, 0, 100, 30, 0, 100] {
            put_rollout(&stack, &ops, json!({"percent": percent})).await;
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    };
    let stack_ref = &stack;
    let pays = futures::future::join_all(people.iter().flat_map(|&(c, a)| {
        (0..2).map(move |k| async move {
            tokio::time::sleep(Duration::from_millis(25 * k)).await;
            pay_through_gateway(stack_ref, c, a, &format!("{a}-{k}")).await
        })
    }));
    let (answers, ()) = tokio::join!(pays, flips);
    for r in &answers {
        let code = r.body["code"].as_str().unwrap_or("");
        assert!(
            r.status == StatusCode::CREATED
                || ["ALREADY_PAID_TODAY", "PAYOUT_IN_PROGRESS", "QUOTE_STALE", "ACCOUNT_BUSY"].contains(&code),
            "{} {:?}",
            r.status,
            r.body
        );
    }
    // Whatever was refused as busy is paid now (on whichever side the policy says).
    for (c, a) in &people {
        let r = pay_through_gateway(&stack, *c, *a, "after").await;
        assert!(r.status == StatusCode::CREATED || r.body["code"] == "ALREADY_PAID_TODAY", "{:?}", r.body);
    }
    for (_, a) in &people {
        let p = postings(&stack, *a).await;
        assert_eq!(p.len(), 1, "exactly one payout of {a} on 2024-03-08: {p:?}");
        assert_eq!((p[0].1.as_str(), p[0].2.as_str()), ("2024-03-01", "2024-03-07"));
    }

    // The next day. A key retried after the customer changed sides gets its first answer: paid by
    // the legacy core then asked of the new system, and the other way round.
    stack.set_today("2024-03-10").await;
    for (i, (first, then)) in [(0, 100), (100, 0)].into_iter().enumerate() {
        let (c, a) = people[i];
        set_rollout(&stack, &ops, json!({"percent": first})).await;
        let one = pay_through_gateway(&stack, c, a, "cross-side").await;
        assert_eq!(one.status, StatusCode::CREATED, "{:?}", one.body);
        set_rollout(&stack, &ops, json!({"percent": then})).await;
        let again = pay_through_gateway(&stack, c, a, "cross-side").await;
        assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
        assert_eq!(
            again.body["payout_id"], one.body["payout_id"],
            "{i}: the same key, the same payout: {:?} then {:?}",
            one.body, again.body
        );
        assert_eq!(
            (one.body["period_from"].clone(), one.body["period_to"].clone()),
            (json!("2024-03-08"), json!("2024-03-09"))
        );
    }
    // On the new side: each period starts after the one either side paid.
    set_rollout(&stack, &ops, json!({"percent": 100})).await;
    for (c, a) in &people[2..] {
        let r = pay_through_gateway(&stack, *c, *a, "next").await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(
            (r.body["period_from"].clone(), r.body["period_to"].clone()),
            (json!("2024-03-08"), json!("2024-03-09"))
        );
    }
    // The legacy side's payouts reach this system's records and the tax pipeline like any other.
    let booked = stack.count("accounting", "SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'").await;
    assert_eq!(booked, 32);
    let mut recorded = 0;
    for _ in 0..120 {
        recorded = stack.count("interest", "SELECT count(*) FROM payouts").await;
        if recorded == booked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(recorded, booked, "interest records every payout the ledger booked, either side's");
    let legacy_paid = stack.count(LEGACY, "SELECT count(*) FROM payouts").await;
    assert!(legacy_paid >= 1, "some customers were paid by the legacy core");
    let changes = stack.as_caller(&ops, Method::GET, "/v1/ops/rollout/changes", None, &[]).await;
    assert_eq!(changes.body.as_array().unwrap().len(), 14);
    assert!(stack.metric("gateway", "rollout_requests_total", &[("side", "legacy"), ("kind", "payout")]).await >= 1.0);
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// Issue 28, case 7: a key this system paid with on one day, reused on the legacy core another
/// day. Through the gateway the key replays its first answer (one key, one answer); asked of the
/// legacy core directly, the ledger replays the payout booked under that key instead of booking a
/// second (which interest used to drop on the key's conflict: a withholding never reported).
/// Every payout the ledger holds, whoever booked it, is recorded and withheld; reconciliation is
/// clean.
#[tokio::test]
async fn every_ledger_payout_is_recorded_and_withheld_even_under_a_reused_key() {
    let mut stack = Stack::start_with_legacy(&[]).await;
    stack.start_gateway(&[]).await;
    stack.set_today("2024-03-01").await;
    stack.product("LG", json!([{"from": 0, "rate": "3.0"}]), "2024-01-01").await;
    let c = stack.customer("GENERAL").await;
    let a = stack.account(c, "LG").await;
    let b = stack.account(c, "LG").await;
    for acct in [a, b] {
        assert_eq!(stack.deposit(acct, 40_000_000, None).await.status, StatusCode::CREATED);
    }
    stack.set_today("2024-03-08").await;
    let first = pay_through_gateway(&stack, c, a, "monthly").await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let first_b = stack.pay(b, "monthly").await;
    assert_eq!(first_b.status, StatusCode::CREATED, "{:?}", first_b.body);

    stack.set_today("2024-03-12").await;
    let ops = stack.token("ops-lead", "ops:read ops:write");
    set_rollout(&stack, &ops, json!({"percent": 0, "reason": "back to the legacy core"})).await;
    let again = pay_through_gateway(&stack, c, a, "monthly").await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.body["payout_id"], first.body["payout_id"], "the key's first answer, from either side");
    assert_eq!(postings(&stack, a).await.len(), 1, "nothing booked twice through the channel");

    // The legacy core asked directly with the key this system used for account b on 03-08: the
    // ledger replays that payout (a key names one payout, whatever day) instead of booking another.
    let direct = stack
        .call(
            LEGACY,
            Method::POST,
            &format!("/legacy/v1/accounts/{b}/payouts"),
            Some(json!({"business_date": "2024-03-12"})),
            &[("Idempotency-Key", "monthly")],
        )
        .await;
    assert_eq!(direct.status, StatusCode::CREATED, "{:?}", direct.body);
    assert_eq!(direct.body["payout_id"], first_b.body["payout_id"], "{:?}", direct.body);
    assert_eq!(postings(&stack, b).await.len(), 1, "nothing booked twice under one key");
    // A payout the legacy core books under a key of its own is recorded and withheld like ours.
    let own = stack
        .call(
            LEGACY,
            Method::POST,
            &format!("/legacy/v1/accounts/{b}/payouts"),
            Some(json!({"business_date": "2024-03-12"})),
            &[("Idempotency-Key", "legacy-own")],
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{:?}", own.body);
    let second_id = own.body["payout_id"].as_str().unwrap().to_string();
    let mut recorded = 0;
    for _ in 0..120 {
        recorded = stack.count("interest", &format!("SELECT count(*) FROM payouts WHERE account_id = '{b}'")).await;
        if recorded == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(recorded, 2, "interest records both of b's payouts");
    stack.wait_withholding(b, &second_id).await;
    stack.wait_withholding(b, first_b.body["payout_id"].as_str().unwrap()).await;
    // The key still answers with its first payout on the new side.
    set_rollout(&stack, &ops, json!({"percent": 100})).await;
    let replay = stack.pay(b, "monthly").await;
    assert_eq!(replay.body["payout_id"], first_b.body["payout_id"], "{:?}", replay.body);
    let report = stack.reconcile("2024-03-01", "2024-03-31");
    assert_eq!(report["missing_withholdings"], json!([]), "{report}");
    assert_eq!(report["missing_in_interest"], json!([]), "{report}");
    assert_eq!(report["ledger_postings"], 3, "{report}");
    stack.shutdown().await;
}

/// Issue 28, case 8: a payout run follows the rollout — an account whose customer the legacy core
/// serves is skipped (`ROUTED_TO_LEGACY`, counted), the others are paid — and offers its payouts
/// to the shadow comparison with the legacy core.
#[tokio::test]
async fn a_payout_run_follows_the_rollout_and_is_shadow_compared() {
    let mut stack = Stack::start_with_legacy(&[("SHADOW_RUN_SAMPLE_RATIO", "1")]).await;
    stack.start_gateway(&[("ROLLOUT_REFRESH_MS", "200")]).await;
    stack.set_today("2024-03-01").await;
    stack.product("LG", json!([{"from": 0, "rate": "3.0"}]), "2024-01-01").await;
    let mut people = Vec::new();
    for _ in 0..6 {
        let c = stack.customer("GENERAL").await;
        let a = stack.account(c, "LG").await;
        assert_eq!(stack.deposit(a, 40_000_000, None).await.status, StatusCode::CREATED);
        people.push((c, a));
    }
    stack.set_today("2024-03-08").await;
    let ops = stack.token("ops-lead", "ops:read ops:write");
    let team: Vec<Uuid> = people[..2].iter().map(|(c, _)| *c).collect();
    set_rollout(&stack, &ops, json!({"percent": 0, "team": team, "reason": "team first"})).await;
    // The policy reaches the runs through Redis within the gateway's refresh.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ids: Vec<Uuid> = people.iter().map(|(_, a)| *a).collect();
    let r = stack.post("interest", "/v1/interest/payout-runs", json!({"account_ids": ids})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let run = r.body["run_id"].as_str().unwrap().to_string();
    let mut report = Value::Null;
    for _ in 0..300 {
        report = stack.get("interest", &format!("/v1/interest/payout-runs/{run}")).await.body;
        if report["state"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(report["state"], "COMPLETED", "{report}");
    assert_eq!(report["paid"], 2, "{report}");
    assert_eq!(report["skipped"]["ROUTED_TO_LEGACY"], 4, "{report}");
    for (i, (_, a)) in people.iter().enumerate() {
        assert_eq!(postings(&stack, *a).await.len(), usize::from(i < 2), "account {i}");
    }
    wait_metric(&stack, &[("kind", "payout"), ("result", "match")], 2.0).await;
    stack.shutdown().await;
}
