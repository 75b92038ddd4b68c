//! Issue 5: the asynchronous tax pipeline under faults, on real processes and a real broker. After
//! each fault, reconciliation (bankctl) finds nothing missing, duplicated or mismatched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{Broker, Stack};
use futures::future::join_all;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

const DAY: &str = "2024-06-01";

/// `n` accounts with a month of interest to pay on 2024-06-01 (the clock is left there).
async fn accounts(stack: &Stack, n: usize) -> Vec<Uuid> {
    stack.set_today("2024-05-01").await;
    if stack.get("interest", "/v1/interest/products/TAX").await.status == StatusCode::NOT_FOUND {
        stack.product("TAX", json!([{"from": 0, "to": null, "rate": "2.0"}]), "2020-01-01").await;
    }
    let mut out = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(20) {
        out.extend(
            join_all(chunk.iter().map(|&i| async move {
                let c = stack.customer(["GENERAL", "PREFERENTIAL"][i % 2]).await;
                let a = stack.account(c, "TAX").await;
                assert_eq!(stack.deposit(a, 10_000_000 + i as i64 * 10_000, None).await.status, StatusCode::CREATED);
                a
            }))
            .await,
        );
    }
    stack.set_today(DAY).await;
    out
}

async fn pay_all(stack: &Stack, accounts: &[Uuid]) {
    for chunk in accounts.chunks(10) {
        for r in join_all(chunk.iter().map(|a| stack.pay(*a, "k"))).await {
            assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        }
    }
}

async fn wait_count(stack: &Stack, svc: &str, sql: &str, want: i64, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = -1;
    while tokio::time::Instant::now() < deadline {
        if let Ok(n) = sqlx::query_scalar::<_, i64>(sql).fetch_one(&stack.dbs[svc]).await {
            if n == want {
                return;
            }
            last = n;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{sql}: {last}, wanted {want}");
}

fn assert_clean(report: &Value, payouts: i64) {
    for list in [
        "missing_withholdings",
        "missing_in_interest",
        "missing_in_ledger",
        "unexpected_withholdings",
        "duplicates",
        "mismatched",
    ] {
        assert_eq!(report[list], json!([]), "{list}: {report}");
    }
    for n in ["interest_payouts", "ledger_postings", "withholdings"] {
        assert_eq!(report[n], payouts, "{n}: {report}");
    }
    for (_, pair) in report["tax_totals"].as_object().unwrap() {
        assert_eq!(pair[0], pair[1], "ledger tax payable = withheld: {report}");
    }
}

fn event(account: Uuid) -> Value {
    json!({
        "event_id": Uuid::new_v4(), "schema_version": 1, "payout_id": Uuid::new_v4(), "account_id": account,
        "customer_id": Uuid::new_v4(), "business_date": "2030-01-02", "gross": 1000, "income_tax": 140,
        "local_tax": 10, "rural_special_tax": 0, "tax_category": "GENERAL", "occurred_at": "2030-01-02T00:00:00Z"
    })
}

async fn produce(stack: &Stack, payloads: Vec<(String, String)>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", e2e::kafka_brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    let topic = format!("{}tax.withholding.v1", stack.topic_prefix);
    for chunk in payloads.chunks(1000) {
        let sends = chunk
            .iter()
            .map(|(k, p)| producer.send(FutureRecord::to(&topic).key(k).payload(p), Duration::from_secs(30)));
        for r in join_all(sends).await {
            r.map_err(|(e, _)| e).unwrap();
        }
    }
}

#[tokio::test]
async fn a_poison_message_among_10000_is_dead_lettered_and_replays_add_nothing_twice() {
    let stack = Stack::start().await;
    let mut payloads: Vec<(String, String)> = (0..10_000)
        .map(|_| {
            let a = Uuid::new_v4();
            (a.to_string(), event(a).to_string())
        })
        .collect();
    payloads.insert(5_000, (Uuid::new_v4().to_string(), "{\"schema_version\": 1, \"gross\": \"lots\"".into()));
    produce(&stack, payloads).await;
    wait_count(&stack, "tax-consumer", "SELECT count(*) FROM withholdings", 10_000, Duration::from_secs(180)).await;
    wait_count(&stack, "tax-consumer", "SELECT count(*) FROM dead_letters", 1, Duration::from_secs(30)).await;
    let dl = stack.get("tax-consumer", "/v1/tax/dead-letters").await.body;
    let letter = &dl["dead_letters"][0];
    assert!(letter["error"].as_str().unwrap().contains("malformed JSON"), "{letter}");
    assert!(letter["source_offset"].as_i64().is_some());

    // A dead letter that is valid today (dead-lettered by an older consumer), next to the poison one.
    let fixable = event(Uuid::new_v4());
    sqlx::query(
        "INSERT INTO dead_letters (source_topic, source_partition, source_offset, payload, error, attempts)
         VALUES ('old', 0, 0, $1, 'unknown schema_version 1 (before the upgrade)', 1)",
    )
    .bind(fixable.to_string())
    .execute(&stack.dbs["tax-consumer"])
    .await
    .unwrap();
    let replay = json!({"all": true, "replayed_by": "someone-else"});
    let first = stack.post("tax-consumer", "/v1/tax/dead-letters/replay", replay.clone()).await;
    assert_eq!(first.body, json!({"recorded": 1, "duplicate": 0, "failed": 1}), "{:?}", first.body);
    let second = stack.post("tax-consumer", "/v1/tax/dead-letters/replay", replay).await;
    assert_eq!(second.body, json!({"recorded": 0, "duplicate": 1, "failed": 1}));
    assert_eq!(stack.count("tax-consumer", "SELECT count(*) FROM withholdings").await, 10_001);
    let history = stack.get("tax-consumer", "/v1/tax/dead-letters").await.body;
    for d in history["dead_letters"].as_array().unwrap() {
        let replays = d["replays"].as_array().unwrap();
        assert_eq!(replays.len(), 2, "{d}");
        // Recorded under the caller its credential proves, not the name the body claims.
        assert!(replays.iter().all(|r| r["replayed_by"] == "ops" && r["replayed_at"].is_string()));
    }
    // The poison message also went to the DLQ topic with its error and source in headers.
    let dlq = format!("{}tax.withholding.v1.dlq", stack.topic_prefix);
    let consumer: rdkafka::consumer::StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", e2e::kafka_brokers())
        .set("group.id", format!("{}-dlq-reader", stack.run))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    use rdkafka::consumer::Consumer;
    use rdkafka::message::{Headers, Message};
    consumer.subscribe(&[&dlq]).unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await.unwrap().unwrap();
    let headers: Vec<String> = msg.headers().unwrap().iter().map(|h| h.key.to_string()).collect();
    for h in ["dlq.error", "dlq.attempts", "dlq.source.topic", "dlq.source.partition", "dlq.source.offset"] {
        assert!(headers.iter().any(|k| k == h), "{h} in {headers:?}");
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn a_consumer_killed_mid_stream_loses_and_doubles_nothing() {
    let mut stack = Stack::start().await;
    let payloads: Vec<(String, String)> = (0..5_000)
        .map(|_| {
            let a = Uuid::new_v4();
            (a.to_string(), event(a).to_string())
        })
        .collect();
    produce(&stack, payloads).await;
    // Let it get going, then kill -9 in the middle.
    for _ in 0..300 {
        if stack.count("tax-consumer", "SELECT count(*) FROM withholdings").await >= 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.kill("tax-consumer");
    let at_kill = stack.count("tax-consumer", "SELECT count(*) FROM withholdings").await;
    assert!(at_kill < 5_000, "killed mid-stream ({at_kill} recorded)");
    stack.restart_with("tax-consumer", &[]).await;
    wait_count(&stack, "tax-consumer", "SELECT count(*) FROM withholdings", 5_000, Duration::from_secs(120)).await;
    // Redelivered messages were recognised, not recorded twice.
    assert_eq!(stack.count("tax-consumer", "SELECT count(DISTINCT payout_id) FROM withholdings").await, 5_000);

    // And the real pipeline end to end after the restart.
    let accts = accounts(&stack, 20).await;
    pay_all(&stack, &accts).await;
    wait_count(
        &stack,
        "tax-consumer",
        "SELECT count(*) FROM withholdings WHERE business_date = '2024-06-01'",
        20,
        Duration::from_secs(60),
    )
    .await;
    assert_clean(&stack.reconcile(DAY, DAY), 20);
    stack.shutdown().await;
}

#[tokio::test]
async fn the_broker_killed_mid_stream_and_restarted_loses_nothing() {
    let mut broker = Broker::start().await;
    let address = broker.address();
    let stack = Stack::start_with(&[("KAFKA_BROKERS", &address)]).await;
    let accts = accounts(&stack, 60).await;
    pay_all(&stack, &accts[..30]).await;
    broker.kill();
    // Payouts go on: their tax events wait in the outbox, and interest stays ready (a payout needs
    // no broker); the relay's backlog shows it.
    pay_all(&stack, &accts[30..]).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let ready = stack.http.get(format!("{}/health/ready", stack.urls["interest"])).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK, "interest is ready without the broker");
    assert!(stack.metric("interest", "interest_outbox_unpublished", &[]).await >= 1.0, "the backlog is measured");
    broker.restart().await;
    wait_count(&stack, "tax-consumer", "SELECT count(*) FROM withholdings", 60, Duration::from_secs(120)).await;
    wait_count(
        &stack,
        "interest",
        "SELECT count(*) FROM payouts WHERE tax_event_published_at IS NULL",
        0,
        Duration::from_secs(30),
    )
    .await;
    assert_clean(&stack.reconcile(DAY, DAY), 60);
    stack.shutdown().await;
}

async fn assigned(stack: &Stack, replica: &str) -> f64 {
    stack.metric(replica, "tax_consumer_partitions_assigned", &[]).await
}

/// Two tax-consumer replicas share the topic's partitions (a consumer group) and consume in
/// parallel; one killed mid-stream hands its partitions to the other, which starts each at the
/// position the tax database holds: exactly one withholding per payout.
#[tokio::test]
async fn two_consumer_replicas_share_the_partitions_and_a_killed_ones_move_to_the_other() {
    let mut stack = Stack::start().await;
    stack.add_replica("tax-consumer", "tax-consumer-2").await;
    let payloads: Vec<(String, String)> = (0..6_000)
        .map(|_| {
            let a = Uuid::new_v4();
            (a.to_string(), event(a).to_string())
        })
        .collect();
    // The group settles with each replica holding some of the six partitions.
    for _ in 0..100 {
        if assigned(&stack, "tax-consumer").await > 0.0 && assigned(&stack, "tax-consumer-2").await > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (one, two) = (assigned(&stack, "tax-consumer").await, assigned(&stack, "tax-consumer-2").await);
    assert!(one > 0.0 && two > 0.0 && one + two == 6.0, "partitions shared: {one} and {two}");
    produce(&stack, payloads).await;
    for _ in 0..300 {
        if stack.count("tax-consumer", "SELECT count(*) FROM withholdings").await >= 1_000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.kill("tax-consumer-2");
    let at_kill = stack.count("tax-consumer", "SELECT count(*) FROM withholdings").await;
    assert!(at_kill < 6_000, "killed mid-stream ({at_kill} recorded)");
    wait_count(&stack, "tax-consumer", "SELECT count(*) FROM withholdings", 6_000, Duration::from_secs(120)).await;
    assert_eq!(assigned(&stack, "tax-consumer").await, 6.0, "the survivor holds every partition");
    // Every partition was consumed, each payout recorded exactly once.
    let partitions: i64 =
        stack.count("tax-consumer", "SELECT count(DISTINCT source_partition) FROM withholdings").await;
    assert_eq!(partitions, 6);
    assert_eq!(stack.count("tax-consumer", "SELECT count(DISTINCT payout_id) FROM withholdings").await, 6_000);
    stack.shutdown().await;
}

#[tokio::test]
async fn a_30_second_tax_database_outage_loses_nothing() {
    let stack = Stack::start().await;
    let accts = accounts(&stack, 40).await;
    pay_all(&stack, &accts[..20]).await;
    wait_count(&stack, "tax-consumer", "SELECT count(*) FROM withholdings", 20, Duration::from_secs(60)).await;

    stack.block_database("tax-consumer", true).await;
    let outage = tokio::time::Instant::now();
    pay_all(&stack, &accts[20..]).await;
    // Readiness says so while the database is away.
    let mut unready = false;
    for _ in 0..50 {
        let r = stack.http.get(format!("{}/health/ready", stack.urls["tax-consumer"])).send().await.unwrap();
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            unready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(unready, "tax-consumer readiness reports the outage");
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed())).await;
    stack.block_database("tax-consumer", false).await;

    wait_count(&stack, "tax-consumer", "SELECT count(*) FROM withholdings", 40, Duration::from_secs(120)).await;
    stack.wait_ready("tax-consumer").await;
    assert_clean(&stack.reconcile(DAY, DAY), 40);
    stack.shutdown().await;
}
