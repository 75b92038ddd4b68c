//! The interest service on its own, started in-process on port 0 with in-memory peers (and the
//! machine's broker for its outbox): a rate schedule is fenced in the ledger before it commits,
//! a refused fence adds nothing, and the in-process products peer answers as the route does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use peers::testing::{common, Fakes};
use platform::config::Env;
use serde_json::{json, Value};

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn schedules_are_fenced_and_the_products_peer_answers_as_the_route_does() {
    let fakes = Fakes::new();
    let common = common("interest").await;
    let mut kafka = platform::kafka::KafkaConfig::from(&Env::process()).unwrap();
    kafka.topic_prefix = format!("{}-", common.redis_prefix);
    let config = interest::Config {
        common,
        kafka,
        runs: interest::RunSettings::from(&Env::process()).unwrap(),
        use_redis_lock: true,
        max_connections: 5,
        lock_lease: Duration::from_secs(10),
        lock_wait: Duration::from_secs(3),
        pause_before_booking: Duration::ZERO,
        legacy: None,
        fence_catch_up: Duration::from_secs(30),
        redis_mirror: true,
    };
    let app = interest::build(config, fakes.peers()).await.unwrap();
    let products = interest::in_process_peer(&app.state, "test", Duration::from_secs(1));
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = peers::testing::client("interest");

    let (status, body) =
        send(http.post(format!("{url}/v1/interest/products")).json(&json!({"code": "SAVE", "name": "S"}))).await;
    assert_eq!(status, 201, "{body}");
    let schedule = |from: &str| json!({"effective_from": from, "bands": [{"from": 0, "rate": "2.5"}]});
    let schedules = format!("{url}/v1/interest/products/SAVE/rate-schedules");
    let (status, body) = send(http.post(&schedules).json(&schedule("2024-01-01"))).await;
    assert_eq!(status, 201, "{body}");
    let fenced = fakes.fence("rates:SAVE").expect("the rates fence was raised");
    assert!(fenced >= 1);

    fakes.down.store(true, Ordering::SeqCst);
    let (status, _) = send(http.post(&schedules).json(&schedule("2024-06-01"))).await;
    assert_eq!(status, 503, "no fence, no schedule");
    fakes.down.store(false, Ordering::SeqCst);

    let (_, over_http) = send(http.get(format!("{url}/v1/interest/products/SAVE"))).await;
    let in_process = serde_json::to_value(products.product("SAVE").await.unwrap()).unwrap();
    assert_eq!(in_process, over_http);
    assert_eq!(in_process["rate_schedules"].as_array().unwrap().len(), 1, "the refused schedule is not there");
    assert!(products.product("NOPE").await.unwrap_err().is_not_found());
}
