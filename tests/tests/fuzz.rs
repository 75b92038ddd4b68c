//! Schemathesis against each service's and the gateway's OpenAPI document, on a stack of its own:
//! generated and mutated requests (fixed seed) must never get a 5xx, and every answer must have the
//! content type the document declares (problems as `application/problem+json`). The gateway is
//! fuzzed as a customer, as ops, as a batch job and without a token. `SCHEMATHESIS` names the
//! executable (deploy/test.sh installs a pinned version).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use e2e::{service_token, Stack};
use serde_json::json;

fn schemathesis() -> String {
    std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "schemathesis".into())
}

/// Runs schemathesis against one document; returns its summary line (`N generated, N passed`).
fn fuzz(name: &str, base: &str, header: &str) -> String {
    let out = Command::new(schemathesis())
        .args(["run", &format!("{base}/openapi.json"), "--checks", "not_a_server_error,content_type_conformance"])
        .args(["--max-examples", "25", "--workers", "2", "--seed", "20261123", "--request-timeout", "20"])
        .args(if header.is_empty() { vec![] } else { vec!["-H", header] })
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (deploy/test.sh installs it): {e}", schemathesis()));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "schemathesis found failures against {name}:\n{text}");
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

    let credential = format!("X-Service-Token: {}", service_token(&stack.run));
    let tokens = [
        ("gateway as the customer", format!("Authorization: Bearer {}", stack.token(&c.to_string(), "customer"))),
        ("gateway as ops", format!("Authorization: Bearer {}", stack.token("ops", "ops:read ops:write"))),
        ("gateway as a batch job", format!("Authorization: Bearer {}", stack.token("job", "batch"))),
        ("gateway without a token", String::new()),
    ];
    let urls = stack.urls.clone();
    tokio::task::spawn_blocking(move || {
        for svc in ["customer", "account-info", "accounting", "interest", "tax-consumer"] {
            fuzz(svc, &urls[svc], &credential);
        }
        for (name, header) in &tokens {
            fuzz(name, &urls["gateway"], header);
        }
    })
    .await
    .unwrap();
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}
