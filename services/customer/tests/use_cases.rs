//! The customer service on its own, started in-process on port 0 with in-memory peers: every
//! change of a payout input raises the customer's fence before it commits, a refused fence
//! changes nothing, and a fence found ahead is adopted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use peers::testing::{common, Fakes};
use serde_json::{json, Value};

async fn start(fakes: &std::sync::Arc<Fakes>) -> String {
    let config = customer::Config { common: common("customer").await, fence_catch_up: Duration::from_millis(100) };
    let app = customer::build(config, fakes.peers()).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    url
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_change_raises_the_fence_and_a_refused_fence_changes_nothing() {
    let fakes = Fakes::new();
    let url = start(&fakes).await;
    let http = reqwest::Client::new();
    let (status, c) =
        send(http.post(format!("{url}/v1/customers")).json(&json!({"name": "Kim", "tax_category": "GENERAL"}))).await;
    assert_eq!(status, 201, "{c}");
    let id = c["customer_id"].as_str().unwrap().to_string();
    let subject = format!("customer:{id}");

    let (status, changed) =
        send(http.put(format!("{url}/v1/customers/{id}/tax-category")).json(&json!({"tax_category": "TAX_FREE"})))
            .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(fakes.fence(&subject), changed["rev"].as_i64(), "fenced at the new revision");

    fakes.down.store(true, Ordering::SeqCst);
    let (status, refused) =
        send(http.put(format!("{url}/v1/customers/{id}/status")).json(&json!({"status": "DECEASED", "reason": "r"})))
            .await;
    assert_eq!(status, 503, "{refused}");
    fakes.down.store(false, Ordering::SeqCst);
    let (_, now) = send(http.get(format!("{url}/v1/customers/{id}"))).await;
    assert_eq!((now["status"].clone(), now["rev"].clone()), (json!("ACTIVE"), changed["rev"].clone()), "unchanged");
}

#[tokio::test]
async fn a_fence_ahead_of_the_revision_is_adopted_while_the_service_runs() {
    let fakes = Fakes::new();
    let url = start(&fakes).await;
    let http = reqwest::Client::new();
    let (_, c) =
        send(http.post(format!("{url}/v1/customers")).json(&json!({"name": "Lee", "tax_category": "GENERAL"}))).await;
    let id = c["customer_id"].as_str().unwrap().to_string();
    // As if a change raised the fence and this service died before committing it.
    fakes.fences.lock().unwrap().insert(format!("customer:{id}"), 7);
    for _ in 0..100 {
        let (_, now) = send(http.get(format!("{url}/v1/customers/{id}"))).await;
        if now["rev"] == 7 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the customer's revision never caught up with its fence");
}

#[tokio::test]
async fn the_in_process_peer_answers_as_the_route_does() {
    let fakes = Fakes::new();
    let config = customer::Config { common: common("customer").await, fence_catch_up: Duration::from_secs(30) };
    let app = customer::build(config, fakes.peers()).await.unwrap();
    let peer = customer::in_process_peer(&app.state, "test", Duration::from_secs(1));
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let (_, c) = send(
        reqwest::Client::new()
            .post(format!("{url}/v1/customers"))
            .json(&json!({"name": "Park", "tax_category": "GENERAL"})),
    )
    .await;
    let id = c["customer_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(serde_json::to_value(peer.customer(id).await.unwrap()).unwrap(), c);
    let missing = peer.customer(uuid::Uuid::new_v4()).await.unwrap_err();
    assert_eq!((missing.code(), missing.is_not_found()), (Some("CUSTOMER_NOT_FOUND"), true));
}

#[tokio::test]
async fn with_a_service_token_every_route_but_health_needs_it() {
    let fakes = Fakes::new();
    let common = peers::testing::common("customer").await;
    let common = platform::config::Common { service_token: Some("s3cret-token".into()), ..common };
    let app = customer::build(customer::Config { common, fence_catch_up: Duration::from_secs(30) }, fakes.peers())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();
    let body = json!({"name": "Han", "tax_category": "GENERAL"});
    for token in [None, Some("wrong"), Some("s3cret-tokeN")] {
        let mut req = http.post(format!("{url}/v1/customers")).json(&body);
        if let Some(t) = token {
            req = req.header("x-service-token", t);
        }
        let (status, problem) = send(req).await;
        assert_eq!((status, problem["code"].as_str()), (401, Some("UNAUTHORIZED")), "{token:?}");
    }
    for path in ["/metrics", "/openapi.json"] {
        assert_eq!(http.get(format!("{url}{path}")).send().await.unwrap().status(), 401, "{path}");
    }
    for path in ["/health/live", "/health/ready"] {
        assert_eq!(http.get(format!("{url}{path}")).send().await.unwrap().status(), 200, "{path}");
    }
    let (status, _) =
        send(http.post(format!("{url}/v1/customers")).header("x-service-token", "s3cret-token").json(&body)).await;
    assert_eq!(status, 201);
}
