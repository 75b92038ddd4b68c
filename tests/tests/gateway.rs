//! The gateway in front of a stack: bearer tokens from the test issuer only; a customer sees and
//! pays only their own accounts (another's is a 404 and nothing is written); each ops route has its
//! scope; payouts are rate limited per customer; money-moving and ops requests are audited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use e2e::{token_from, Stack};
use reqwest::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

async fn stack_with_gateway(payouts_per_minute: &str) -> (Stack, Uuid, Uuid, Uuid, Uuid) {
    let mut stack = Stack::start().await;
    stack.start_gateway(&[("RATE_LIMIT_PAYOUTS_PER_MINUTE", payouts_per_minute)]).await;
    stack.set_today("2024-03-01").await;
    stack.product("GW", json!([{"from": 0, "rate": "3.0"}]), "2024-01-01").await;
    let (a, b) = (stack.customer("GENERAL").await, stack.customer("GENERAL").await);
    let (acc_a, acc_b) = (stack.account(a, "GW").await, stack.account(b, "GW").await);
    for acc in [acc_a, acc_b] {
        assert_eq!(stack.deposit(acc, 50_000_000, None).await.status, StatusCode::CREATED);
    }
    stack.set_today("2024-03-11").await;
    (stack, a, acc_a, b, acc_b)
}

#[tokio::test]
async fn only_a_valid_token_gets_in() {
    let (stack, a, acc_a, _, _) = stack_with_gateway("10").await;
    let url = format!("{}/v1/me/accounts/{acc_a}/interest", stack.urls["gateway"]);
    let bare = stack.http.get(&url).send().await.unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(bare.headers()["www-authenticate"], "Bearer");
    assert!(bare.headers()["content-type"].to_str().unwrap().starts_with("application/problem+json"));
    let body: serde_json::Value = bare.json().await.unwrap();
    assert_eq!((body["status"].clone(), body["code"].clone()), (json!(401), json!("UNAUTHORIZED")));
    for forged in [
        token_from("other-issuer.key.pem", &a.to_string(), "customer", "interest-bank-api"),
        token_from("test-issuer.key.pem", &a.to_string(), "customer", "another-api"),
        "garbage".into(),
    ] {
        let r = stack.as_caller(&forged, Method::GET, &format!("/v1/me/accounts/{acc_a}/interest"), None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.body);
    }
    // Behind the gateway, the services answer only callers with the service credential.
    let direct = reqwest::Client::new();
    for (svc, path) in [
        ("accounting", format!("/v1/ledger/accounts/{acc_a}/balance")),
        ("interest", format!("/v1/interest/accounts/{acc_a}")),
    ] {
        let r = direct.get(format!("{}{path}", stack.urls[svc])).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{svc} without the service credential");
        let ready = direct.get(format!("{}/health/ready", stack.urls[svc])).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "health stays open for probes");
    }
    let ok = stack
        .as_caller(
            &stack.token(&a.to_string(), "customer"),
            Method::GET,
            &format!("/v1/me/accounts/{acc_a}/interest"),
            None,
            &[],
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert!(ok.body["gross"].as_i64().unwrap() > 0);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_customer_reaches_only_their_own_accounts_and_nothing_else_is_written() {
    let (stack, a, acc_a, _, acc_b) = stack_with_gateway("10").await;
    let me = stack.token(&a.to_string(), "customer");
    let mine = stack.as_caller(&me, Method::GET, "/v1/me/accounts", None, &[]).await;
    let ids: Vec<&str> =
        mine.body["accounts"].as_array().unwrap().iter().map(|x| x["account_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![acc_a.to_string()]);

    // Another customer's account answers exactly like an unknown one.
    for other in [acc_b, Uuid::new_v4()] {
        for (method, path) in [
            (Method::GET, format!("/v1/me/accounts/{other}")),
            (Method::GET, format!("/v1/me/accounts/{other}/interest")),
            (Method::GET, format!("/v1/me/accounts/{other}/payouts")),
            (Method::POST, format!("/v1/me/accounts/{other}/payouts")),
        ] {
            let r = stack.as_caller(&me, method, &path, None, &[("Idempotency-Key", "steal")]).await;
            assert_eq!(
                (r.status, r.body["code"].as_str()),
                (StatusCode::NOT_FOUND, Some("ACCOUNT_NOT_FOUND")),
                "{path}"
            );
        }
    }
    let booked = "SELECT count(*) FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'";
    assert_eq!(stack.count("accounting", booked).await, 0, "nothing paid from another's account");

    let paid = stack
        .as_caller(&me, Method::POST, &format!("/v1/me/accounts/{acc_a}/payouts"), None, &[("Idempotency-Key", "k1")])
        .await;
    assert_eq!(paid.status, StatusCode::CREATED, "{:?}", paid.body);
    let again = stack
        .as_caller(&me, Method::POST, &format!("/v1/me/accounts/{acc_a}/payouts"), None, &[("Idempotency-Key", "k1")])
        .await;
    assert_eq!(again.body["payout_id"], paid.body["payout_id"], "the same key replays");
    assert_eq!(stack.count("accounting", booked).await, 1);
    let history = stack.as_caller(&me, Method::GET, &format!("/v1/me/accounts/{acc_a}/payouts"), None, &[]).await;
    assert_eq!(history.body["payouts"].as_array().unwrap().len(), 1);

    // Ops reconcile the day through the gateway once the withholding is recorded.
    stack.wait_withholding(acc_a, paid.body["payout_id"].as_str().unwrap()).await;
    let ops = stack.token("ops", "ops:read");
    let day = "/v1/ops/reconcile?from=2024-03-11&to=2024-03-11";
    let report = stack.as_caller(&ops, Method::GET, day, None, &[]).await;
    assert_eq!(report.status, StatusCode::OK, "{:?}", report.body);
    assert_eq!(
        (
            report.body["interest_payouts"].clone(),
            report.body["ledger_postings"].clone(),
            report.body["withholdings"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    assert_eq!(report.body["mismatched"], json!([]));
    assert_eq!(stack.as_caller(&me, Method::GET, day, None, &[]).await.status, StatusCode::FORBIDDEN);
    let too_long =
        stack.as_caller(&ops, Method::GET, "/v1/ops/reconcile?from=2024-01-01&to=2024-03-11", None, &[]).await;
    assert_eq!(
        (too_long.status, too_long.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("VALIDATION_FAILED"))
    );

    // Audited: the refused attempts on b's account and the payout, with subject and account.
    let audited: Vec<(String, Option<Uuid>, i16)> =
        sqlx::query_as("SELECT subject, account_id, status FROM audit_trail WHERE method = 'POST' ORDER BY id")
            .fetch_all(&stack.dbs["gateway"])
            .await
            .unwrap();
    assert!(audited.contains(&(a.to_string(), Some(acc_b), 404)), "{audited:?}");
    assert!(audited.contains(&(a.to_string(), Some(acc_a), 201)), "{audited:?}");
    stack.shutdown().await;
}

#[tokio::test]
async fn each_ops_route_needs_its_scope_and_payouts_are_rate_limited() {
    let (stack, a, acc_a, _, _) = stack_with_gateway("3").await;
    let customer = stack.token(&a.to_string(), "customer");
    let (read, write, batch) =
        (stack.token("ops-r", "ops:read"), stack.token("ops-w", "ops:write"), stack.token("job", "batch"));
    let run = json!({"account_ids": [acc_a]});
    for (token, method, path, body, want) in [
        (&customer, Method::POST, "/v1/ops/payout-runs", Some(run.clone()), StatusCode::FORBIDDEN),
        (&read, Method::POST, "/v1/ops/payout-runs", Some(run.clone()), StatusCode::FORBIDDEN),
        (
            &batch,
            Method::POST,
            "/v1/ops/dead-letters/replay",
            Some(json!({"all": true, "replayed_by": "job"})),
            StatusCode::FORBIDDEN,
        ),
        (&read, Method::PUT, "/v1/ops/clock", Some(json!({"today": "2024-03-11"})), StatusCode::FORBIDDEN),
        (&customer, Method::GET, "/v1/ops/tax/reports/monthly?month=2024-03", None, StatusCode::FORBIDDEN),
        (&read, Method::GET, "/v1/ops/tax/reports/monthly?month=2024-03", None, StatusCode::OK),
        (&read, Method::GET, "/v1/ops/dead-letters", None, StatusCode::OK),
        (&write, Method::PUT, "/v1/ops/clock", Some(json!({"today": "2024-03-11"})), StatusCode::OK),
        (&batch, Method::POST, "/v1/ops/payout-runs", Some(run.clone()), StatusCode::ACCEPTED),
        (&read, Method::GET, "/v1/ops/payout-runs", None, StatusCode::OK),
        (&customer, Method::GET, "/v1/ops/payout-runs", None, StatusCode::FORBIDDEN),
    ] {
        let r = stack.as_caller(token, method, path, body, &[]).await;
        assert_eq!(r.status, want, "{path}: {:?}", r.body);
        if want == StatusCode::FORBIDDEN {
            assert_eq!(r.body["code"], "INSUFFICIENT_SCOPE");
        }
    }
    let ops_audited: i64 = stack.count("gateway", "SELECT count(*) FROM audit_log WHERE route LIKE '/v1/ops/%'").await;
    assert_eq!(ops_audited, 11, "every ops request, allowed or not, is audited");
    let runs = stack.as_caller(&read, Method::GET, "/v1/ops/payout-runs", None, &[]).await.body;
    let run_id = runs["runs"][0]["run_id"].as_str().unwrap().to_string();
    let cancel = format!("/v1/ops/payout-runs/{run_id}/cancel");
    assert_eq!(stack.as_caller(&read, Method::POST, &cancel, None, &[]).await.status, StatusCode::FORBIDDEN);
    let r = stack.as_caller(&write, Method::POST, &cancel, None, &[]).await;
    assert!(r.status == StatusCode::OK || r.body["code"] == "RUN_FINISHED", "{:?}", r.body);

    // Three payout attempts a minute per customer, then 429 with Retry-After (whatever the key):
    // shared by every gateway replica (in Redis), so spreading them over the replicas gains nothing.
    let mut statuses = Vec::new();
    let gateways = stack.replica_urls("gateway");
    for i in 0..5 {
        let gateway = &gateways[i % gateways.len()];
        let r = stack
            .http
            .post(format!("{gateway}/v1/me/accounts/{acc_a}/payouts"))
            .bearer_auth(&customer)
            .header("Idempotency-Key", format!("burst-{i}"))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 2, "{statuses:?}");
    stack.shutdown().await;
}

/// Tax rules change through ops' route only with `ops:write`, audited, and the rule keeps who
/// scheduled it (the token's subject, not anything the body or a header claims).
#[tokio::test]
async fn a_tax_rule_is_scheduled_by_ops_write_audited_and_kept_with_its_author() {
    let (stack, a, _, _, _) = stack_with_gateway("10").await;
    let (read, write) = (stack.token("ops-r", "ops:read"), stack.token("tax-officer", "ops:write"));
    let customer = stack.token(&a.to_string(), "customer");
    let rule = json!({"category": "PREFERENTIAL", "effective_from": "2024-07-01", "reason": "notice 2024-12",
        "components": [{"component": "income_tax", "base": "gross", "rate": "9"},
                       {"component": "rural_special_tax", "base": "gross", "rate": "1.4"}]});
    for token in [&read, &customer] {
        let r = stack.as_caller(token, Method::POST, "/v1/ops/tax-rules", Some(rule.clone()), &[]).await;
        assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("INSUFFICIENT_SCOPE")));
    }
    let r = stack
        .as_caller(&write, Method::POST, "/v1/ops/tax-rules", Some(rule.clone()), &[("X-Actor", "someone-else")])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let listed = stack.as_caller(&read, Method::GET, "/v1/ops/tax-rules", None, &[]).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    let new =
        listed.body["rules"].as_array().unwrap().iter().find(|r| r["effective_from"] == "2024-07-01").unwrap().clone();
    assert_eq!((new["scheduled_by"].as_str(), new["rev"].as_i64()), (Some("tax-officer"), Some(1)));
    assert_eq!(new["components"][1]["rate"], "1.4");
    let audited: i64 = stack
        .count("gateway", "SELECT count(*) FROM audit_log WHERE route = '/v1/ops/tax-rules' AND method = 'POST'")
        .await;
    assert_eq!(audited, 3, "allowed or refused, every attempt is audited");
    stack.shutdown().await;
}
