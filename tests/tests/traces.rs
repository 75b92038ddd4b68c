//! One payout is one trace, from the channel's request to the tax consumer (issue 18): with the
//! services exporting to a local OTLP receiver, "get interest now" through the gateway yields a
//! trace holding the gateway's server span, a client span for each call between services with the
//! callee's server span as its child, the ledger's booking transaction, the outbox's producer span
//! and the tax consumer's span parented through the Kafka headers — with OpenTelemetry's attribute
//! names. Log lines written while serving it carry the trace id.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::otlp::{tree, Receiver, Span, CLIENT, CONSUMER, PRODUCER, SERVER};
use e2e::Stack;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// The `service.name` a service's spans carry: its own, or `bank` when all five share a process.
fn service(name: &str) -> &str {
    if e2e::monolith() && name != "gateway" {
        "bank"
    } else {
        name
    }
}

fn find<'a>(spans: &'a [Span], what: &str, pred: impl Fn(&Span) -> bool) -> &'a Span {
    spans.iter().find(|s| pred(s)).unwrap_or_else(|| panic!("no {what} in the trace:\n{}", tree(spans)))
}

/// Whether `child` descends from `ancestor` within the trace.
fn descends(spans: &[Span], child: &Span, ancestor: &Span) -> bool {
    let mut at = child.parent_span_id.clone();
    while let Some(p) = spans.iter().find(|s| s.span_id == at) {
        if p.span_id == ancestor.span_id {
            return true;
        }
        at = p.parent_span_id.clone();
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn one_payout_is_one_trace_from_the_gateway_to_the_tax_consumer() {
    let receiver = Receiver::start().await;
    let endpoint = receiver.endpoint();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let mut stack = Stack::start_with(&env).await;
    stack.start_gateway(&[]).await;
    stack.set_today("2024-03-01").await;
    stack.product("TRACED", json!([{"from": 0, "rate": "2.0"}]), "2024-01-01").await;
    let c = stack.customer("GENERAL").await;
    let a = stack.account(c, "TRACED").await;
    stack.deposit(a, 50_000_000, None).await;
    stack.set_today("2024-03-11").await;

    let token = stack.token(&c.to_string(), "customer");
    let path = format!("/v1/me/accounts/{a}/payouts");
    // A public caller's trace context is not joined: the gateway starts the trace.
    let theirs = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{theirs}-00f067aa0ba902b7-01");
    let headers = [("Idempotency-Key", "traced-1"), ("traceparent", traceparent.as_str())];
    let r = stack.as_caller(&token, Method::POST, &path, None, &headers).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let payout_id = r.body["payout_id"].as_str().unwrap().to_string();
    stack.wait_withholding(a, &payout_id).await;

    // The gateway's span of this request is the root; wait until the consumer's span arrived.
    let mut spans = Vec::new();
    for _ in 0..100 {
        let root = receiver.all().into_iter().find(|s| {
            s.service == "gateway" && s.kind == SERVER && s.attr("http.route") == Some("/v1/me/accounts/{id}/payouts")
        });
        if let Some(root) = root {
            spans = receiver.trace(&root.trace_id);
            if spans.iter().any(|s| s.kind == CONSUMER) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("{}", tree(&spans));

    let root = find(&spans, "gateway server span", |s| s.service == "gateway" && s.kind == SERVER);
    assert!(root.parent_span_id.is_empty(), "the gateway's span is a root, not the caller's child: {root:?}");
    assert_ne!(root.trace_id, theirs, "the caller's trace id was taken");
    assert_eq!(root.attr("http.request.method"), Some("POST"));
    assert_eq!(root.attr("http.response.status_code"), Some("201"));
    for s in &spans {
        assert_eq!(s.trace_id, root.trace_id, "one trace");
    }

    // Each call between services: a client span, and the callee's server span as its child.
    let calls: Vec<&Span> = spans.iter().filter(|s| s.kind == CLIENT && s.attr("server.address").is_some()).collect();
    let callees: Vec<&str> = calls.iter().filter_map(|c| c.attr("server.address")).collect();
    for callee in ["account-info", "interest"] {
        assert!(callees.contains(&callee), "the gateway's call to {callee} has no client span:\n{}", tree(&spans));
    }
    if !e2e::monolith() {
        // Between the five services too (in one process those calls are in-process).
        assert!(callees.contains(&"accounting"), "interest → accounting has no client span:\n{}", tree(&spans));
    }
    for call in &calls {
        assert!(call.attr("http.request.method").is_some(), "{call:?}");
        assert!(call.attr("http.response.status_code").is_some(), "{call:?}");
        let server = spans.iter().find(|s| s.kind == SERVER && s.parent_span_id == call.span_id);
        let server = server.unwrap_or_else(|| panic!("no server span under {call:?}:\n{}", tree(&spans)));
        assert_eq!(server.service, service(call.attr("server.address").unwrap()), "the callee's own span");
        assert!(server.attr("http.route").is_some_and(|r| r.starts_with("/v1/")), "{server:?}");
        assert!(descends(&spans, call, root));
    }

    // The booking transaction in the ledger, under the interest service's payout.
    let pay = find(&spans, "interest's payout span", |s| {
        s.service == service("interest")
            && s.kind == SERVER
            && s.attr("http.route") == Some("/v1/interest/accounts/{id}/payouts")
    });
    let booking = find(&spans, "booking transaction", |s| s.attr("db.system") == Some("postgresql"));
    assert_eq!(booking.attr("db.operation.name"), Some("book_interest"));
    assert!(descends(&spans, booking, pay), "the booking is not part of the payout:\n{}", tree(&spans));

    // The outbox publishes under the payout; the consumer's span is the producer's child.
    let produce = find(&spans, "producer span", |s| s.kind == PRODUCER);
    assert_eq!(produce.service, service("interest"));
    assert_eq!(produce.attr("messaging.system"), Some("kafka"));
    assert!(produce.attr("messaging.destination.name").unwrap().ends_with(contracts::TAX_TOPIC));
    assert!(descends(&spans, produce, pay), "the publish is not part of the payout:\n{}", tree(&spans));
    let consume = find(&spans, "consumer span", |s| s.kind == CONSUMER);
    assert_eq!(consume.service, service("tax-consumer"));
    assert_eq!(consume.parent_span_id, produce.span_id, "the consumer's span is parented through the Kafka headers");
    assert_eq!(consume.attr("messaging.operation.type"), Some("process"));

    // Logs carry the trace id (every line written inside a request's span: here the payout's and
    // the withholding's).
    for svc in ["interest", "tax-consumer"] {
        let log = stack.log_of(svc);
        assert!(log.contains(&format!("\"trace_id\":\"{}\"", root.trace_id)), "{svc}'s log lines lack the trace id");
    }
    stack.shutdown().await;
}
