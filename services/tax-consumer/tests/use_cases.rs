//! The tax consumer on its own, started in-process on port 0 against the machine's broker: it
//! becomes ready, and a withholding event produced to its topic becomes exactly one record, even
//! when the same event is delivered twice.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use platform::config::Env;
use rdkafka::producer::FutureRecord;
use serde_json::{json, Value};
use uuid::Uuid;

// The group's rebalance places partitions with a blocking read: the multi-threaded runtime, as the
// service runs on.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_delivered_twice_is_one_withholding_record() {
    let common = peers::testing::common("tax-consumer").await;
    let mut kafka = platform::kafka::KafkaConfig::from(&Env::process()).unwrap();
    kafka.topic_prefix = format!("{}-", common.redis_prefix);
    let group = format!("{}-tax", common.redis_prefix);
    let app = tax_consumer::build(tax_consumer::Config { common, kafka: kafka.clone(), group }).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = peers::testing::client("tax-consumer");

    let (payout_id, account_id) = (Uuid::new_v4(), Uuid::new_v4());
    let event = json!({
        "event_id": Uuid::new_v4(), "schema_version": 1, "payout_id": payout_id,
        "account_id": account_id, "customer_id": Uuid::new_v4(), "business_date": "2024-02-01",
        "gross": 1000, "income_tax": 140, "local_tax": 14, "rural_special_tax": 0, "tax_category": "GENERAL",
        "occurred_at": "2024-02-01T00:00:00Z"
    })
    .to_string();
    let producer = kafka.producer().unwrap();
    let topic = kafka.topic(contracts::TAX_TOPIC);
    let key = payout_id.to_string();
    for _ in 0..2 {
        let record = FutureRecord::to(&topic).key(&key).payload(&event);
        producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e).unwrap();
    }
    for _ in 0..120 {
        let seen: Value = http
            .get(format!("{url}/v1/tax/withholdings?account_id={account_id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if seen["withholdings"].as_array().is_some_and(|w| !w.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Give the second delivery time to arrive and be recognised.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen: Value = http
        .get(format!("{url}/v1/tax/withholdings?account_id={account_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let records = seen["withholdings"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{seen}");
    assert_eq!((records[0]["income_tax"].clone(), records[0]["local_tax"].clone()), (json!(140), json!(14)));
    let ready = http.get(format!("{url}/health/ready")).send().await.unwrap().status();
    assert_eq!(ready, 200);
}
