//! Schemathesis against each service's and the gateway's OpenAPI document, on a stack of its own,
//! with every check: generated and mutated requests (fixed seed) must never get a 5xx, every answer
//! must be as the document declares (problems as `application/problem+json`), a request the
//! schema refuses must be refused and one it accepts must not be refused as invalid (the document
//! tells the whole truth about what is accepted). The gateway is fuzzed as a customer, as ops, as a
//! batch job and without a token. `SCHEMATHESIS` names the executable (deploy/test.sh installs a
//! pinned version).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use e2e::{token_from, Stack};
use serde_json::json;

fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into())
}

/// Every check (`checks.enabled = true` is `--checks all`: on the command line it would override
/// the exemptions below). Exempt from `positive_data_acceptance` (a schema-valid request must not
/// get a 400 or 422) are only the operations whose rules no JSON Schema can say; each says its rule
/// in its description.
const CHECKS: &str = r#"
[checks]
enabled = true

# `customer_id` and `product_code` must name a customer and a product that exist (422 naming the
# field): existence is the owners' to say, not a schema's.
[[operations]]
include-name = "POST /v1/accounts"
checks.positive_data_acceptance.enabled = false

# `to` not before `from`.
[[operations]]
include-name = "GET /v1/ledger/accounts/{id}/daily-balances"
checks.positive_data_acceptance.enabled = false

# `to` not before `from` in each query, each account at most once.
[[operations]]
include-name = "POST /v1/ledger/daily-balances"
checks.positive_data_acceptance.enabled = false

# Won amounts are JSON integers: schemathesis also writes an integer as `100.0` (JSON Schema counts
# it as one), and money never travels as a float. A transfer's two accounts must differ.
[[operations]]
include-name = ["POST /v1/ledger/accounts/{id}/deposits", "POST /v1/ledger/accounts/{id}/withdrawals", "POST /v1/ledger/transfers"]
checks.positive_data_acceptance.enabled = false

# `net` = `gross` - the taxes (arithmetic between fields), won amounts as JSON integers; a batch
# names each account at most once.
[[operations]]
include-name = ["POST /v1/ledger/interest-postings", "POST /v1/ledger/interest-postings/batch"]
checks.positive_data_acceptance.enabled = false

# Bands are contiguous: the first from 0, each next one from where the one before ends, only the
# last open-ended (relations between items).
[[operations]]
include-name = "POST /v1/interest/products/{code}/rate-schedules"
checks.positive_data_acceptance.enabled = false

# `business_date` must be today's (the bank's clock, not the request).
[[operations]]
include-name = ["POST /v1/interest/payout-runs", "POST /v1/ops/payout-runs"]
checks.positive_data_acceptance.enabled = false

# `effective_from` after today; a component's base an earlier component, each component once, the
# components together at most the gross (relations between items).
[[operations]]
include-name = ["POST /v1/interest/tax-rules", "POST /v1/ops/tax-rules"]
checks.positive_data_acceptance.enabled = false

# `to` not before `from`, at most 31 days.
[[operations]]
include-name = "GET /v1/ops/reconcile"
checks.positive_data_acceptance.enabled = false

# Whether interest is paid is the account's state, not the request's (422 NOTHING_TO_PAY while
# less than 1 won has accrued).
[[operations]]
include-name = "POST /v1/me/accounts/{id}/payouts"
checks.positive_data_acceptance.enabled = false
"#;

/// Runs schemathesis against one document with the checks of `config` (a file holding [`CHECKS`]);
/// returns its summary line (`N generated, N passed`).
fn fuzz(name: &str, base: &str, header: &str, config: &std::path::Path) -> String {
    let out = Command::new(schemathesis())
        .arg("--config-file")
        .arg(config)
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--max-examples", "25", "--workers", "1", "--seed", "20261123", "--request-timeout", "20"])
        .args(if header.is_empty() { vec![] } else { vec!["-H", header] })
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (deploy/test.sh installs it): {e}", schemathesis()));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        // The report's end: failures, errors and the summary (the full text is long).
        let tail: Vec<&str> = text.lines().rev().take(150).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!("schemathesis found failures against {name}:\n{}", tail.join("\n"));
    }
    let summary = text
        .lines()
        .map(str::trim)
        .find(|l| l.contains(" generated") && l.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or("")
        .to_string();
    println!("{name}: {summary}");
    summary
}

#[tokio::test(flavor = "multi_thread")]
async fn no_generated_request_gets_a_server_error() {
    let mut stack = Stack::start().await;
    stack
        .start_gateway(&[("RATE_LIMIT_ESTIMATES_PER_MINUTE", "100000"), ("RATE_LIMIT_PAYOUTS_PER_MINUTE", "100000")])
        .await;
    stack.set_today("2024-03-01").await;
    stack.product("FUZZ", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let c = stack.customer("GENERAL").await;
    let a = stack.account(c, "FUZZ").await;
    stack.deposit(a, 10_000_000, None).await;
    stack.set_today("2024-03-11").await;

    // Each service's run gets a service credential minted right before it (for that service).
    let credentials = stack.credentials.clone();
    // Who calls the gateway: a token is minted right before its run (they live five minutes, less
    // than the runs before it take).
    let callers = [
        ("gateway as the customer", Some((c.to_string(), "customer"))),
        ("gateway as ops", Some(("ops".to_string(), "ops:read ops:write"))),
        ("gateway as a batch job", Some(("job".to_string(), "batch"))),
        ("gateway without a token", None),
    ];
    let urls = stack.urls.clone();
    let config = std::env::temp_dir().join(format!("schemathesis-{}.toml", stack.run));
    std::fs::write(&config, CHECKS).unwrap();
    tokio::task::spawn_blocking(move || {
        for svc in ["customer", "account-info", "accounting", "interest", "tax-consumer"] {
            let credential = e2e::mint_credential(&credentials, "ops", svc);
            fuzz(svc, &urls[svc], &format!("Authorization: Bearer {credential}"), &config);
        }
        for (name, caller) in &callers {
            let header = caller.as_ref().map_or(String::new(), |(subject, scope)| {
                let token = token_from("test-issuer.key.pem", subject, scope, "interest-bank-api");
                format!("Authorization: Bearer {token}")
            });
            fuzz(name, &urls["gateway"], &header, &config);
        }
        let _ = std::fs::remove_file(&config);
    })
    .await
    .unwrap();
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// Each document is generated from the routes themselves: every operation it lists is served
/// (no 404 ROUTE_NOT_FOUND or 405), names how to authenticate (the service credential inside, a
/// bearer token with its scopes at the gateway, nothing for health), and describes its refusals
/// as problem documents.
#[tokio::test(flavor = "multi_thread")]
async fn each_document_lists_what_is_served_and_how_to_authenticate() {
    let mut stack = Stack::start().await;
    stack.start_gateway(&[]).await;
    let ops = stack.token("ops", "ops:read");
    for svc in ["customer", "account-info", "accounting", "interest", "tax-consumer", "gateway"] {
        let doc = stack.get(svc, "/openapi.json").await.body;
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        let scheme = if svc == "gateway" { "bearer" } else { "service_credential" };
        assert_eq!(schemes.keys().collect::<Vec<_>>(), [scheme], "{svc}");
        assert_eq!(doc["security"], json!([{ scheme: [] }]), "{svc}");
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 5, "{svc}: {paths:?}");
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let problem = &op["responses"]["4XX"]["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(problem, "#/components/schemas/Problem", "{svc} {method} {path}");
                if path.starts_with("/health/") {
                    assert_eq!(op["security"], json!([{}]), "{svc} {path} is open");
                }
                if svc == "gateway" && path.starts_with("/v1/") {
                    let scopes = op["security"].as_array().unwrap_or_else(|| panic!("{path}: no scopes"));
                    assert!(scopes.iter().all(|s| !s["bearer"].as_array().unwrap().is_empty()), "{path}");
                }
                // Served: a request to it reaches a handler (a made-up id is at most a 404 of
                // the resource, never of the route).
                let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string()).replace("{code}", "NOPE");
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let body = matches!(method, reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH)
                    .then(|| json!({}));
                let r = if svc == "gateway" {
                    stack.as_caller(&ops, method.clone(), &concrete, body, &[]).await
                } else {
                    stack.call(svc, method.clone(), &concrete, body, &[]).await
                };
                assert_ne!(r.status, 405, "{svc} {method} {path}: {:?}", r.body);
                assert_ne!(r.body["code"], "ROUTE_NOT_FOUND", "{svc} {method} {path}");
            }
        }
        let problem = &doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"];
        assert!(problem.as_array().unwrap().iter().any(|c| c == "ALREADY_PAID_TODAY"), "{svc}");
    }
    let pay = &stack.get("gateway", "/openapi.json").await.body["paths"]["/v1/me/accounts/{id}/payouts"]["post"];
    assert_eq!(pay["security"], json!([{"bearer": ["customer"]}]));
    assert!(pay["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));

    // Found by schemathesis: serde reads a struct from a JSON array, so `[null, null]` started a
    // payout run. Every body is an object; anything else is refused and nothing is started.
    let runs = stack.count("interest", "SELECT count(*) FROM payout_runs").await;
    let r =
        stack.call("interest", reqwest::Method::POST, "/v1/interest/payout-runs", Some(json!([null, null])), &[]).await;
    assert_eq!((r.status.as_u16(), r.body["code"].as_str()), (422, Some("VALIDATION_FAILED")), "{:?}", r.body);
    assert_eq!(stack.count("interest", "SELECT count(*) FROM payout_runs").await, runs);
    // Found by schemathesis: a NUL in a query value reached PostgreSQL (500). A problem now.
    let r = stack.get("accounting", "/v1/ledger/payout-fences?prefix=a%00b").await;
    assert_eq!((r.status.as_u16(), r.body["code"].as_str()), (400, Some("MALFORMED_QUERY")), "{:?}", r.body);
    stack.shutdown().await;
}
