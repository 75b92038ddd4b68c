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
    let http = peers::testing::client("customer");
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
    let http = peers::testing::client("customer");
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
        peers::testing::client("customer")
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
async fn every_route_but_health_needs_a_granted_service_credential() {
    use platform::credential::{generated, LIFETIME};
    let fakes = Fakes::new();
    let common = peers::testing::common("customer").await;
    let app = customer::build(customer::Config { common, fence_catch_up: Duration::from_secs(30) }, fakes.peers())
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = reqwest::Client::new();
    let body = json!({"name": "Han", "tax_category": "GENERAL"});
    let signed = |caller: &str, audience: &str| generated(caller).unwrap().signer.mint(audience, LIFETIME).unwrap();
    // No credential, a made-up one, one for another service, a forged signature: 401.
    let mut forged = signed("ops", "customer");
    forged.pop();
    for token in [None, Some("wrong".to_string()), Some(signed("ops", "accounting")), Some(forged)] {
        let mut req = http.post(format!("{url}/v1/customers")).json(&body);
        if let Some(t) = &token {
            req = req.bearer_auth(t);
        }
        let (status, problem) = send(req).await;
        assert_eq!((status, problem["code"].as_str()), (401, Some("UNAUTHORIZED")), "{token:?}");
    }
    // An unknown route is 401 to a stranger (nothing about the routes is learned), 404 to a caller.
    let unknown = http.get(format!("{url}/v1/nothing-here")).send().await.unwrap();
    assert_eq!(unknown.status(), 401);
    let known = http.get(format!("{url}/v1/nothing-here")).bearer_auth(signed("ops", "customer")).send().await;
    assert_eq!(known.unwrap().status(), 404);
    for path in ["/metrics", "/openapi.json"] {
        assert_eq!(http.get(format!("{url}{path}")).send().await.unwrap().status(), 401, "{path}");
        let r = http.get(format!("{url}{path}")).bearer_auth(signed("gateway", "customer")).send().await.unwrap();
        assert_eq!(r.status(), 200, "any trusted caller reads {path}");
    }
    for path in ["/health/live", "/health/ready"] {
        assert_eq!(http.get(format!("{url}{path}")).send().await.unwrap().status(), 200, "{path}");
    }
    // Trusted but not granted: the gateway may not create customers, nor interest change one.
    for caller in ["gateway", "interest", "tax-consumer"] {
        let (status, problem) =
            send(http.post(format!("{url}/v1/customers")).bearer_auth(signed(caller, "customer")).json(&body)).await;
        assert_eq!((status, problem["code"].as_str()), (403, Some("CALLER_NOT_ALLOWED")), "{caller}");
    }
    let (status, created) =
        send(http.post(format!("{url}/v1/customers")).bearer_auth(signed("ops", "customer")).json(&body)).await;
    assert_eq!(status, 201);
    let id = created["customer_id"].as_str().unwrap();
    let read = http.get(format!("{url}/v1/customers/{id}")).bearer_auth(signed("interest", "customer")).send().await;
    assert_eq!(read.unwrap().status(), 200, "interest reads customers");
    let change = http
        .put(format!("{url}/v1/customers/{id}/status"))
        .bearer_auth(signed("interest", "customer"))
        .json(&json!({"status": "RESTRICTED"}))
        .send()
        .await;
    assert_eq!(change.unwrap().status(), 403, "but may not change them");
}
