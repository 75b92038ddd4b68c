//! Account-info on its own, started in-process on port 0 with in-memory peers: an account opens
//! only for a customer and a product their owners know, status and holds changes raise the
//! account's fence before they commit, and the in-process peer answers as the routes do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use contracts::{Customer, Product};
use domain::{CustomerStatus, TaxCategory};
use peers::testing::{common, Fakes};
use serde_json::{json, Value};
use uuid::Uuid;

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn known(fakes: &Fakes) -> Uuid {
    let id = Uuid::new_v4();
    let customer = Customer {
        customer_id: id,
        name: "Kim".into(),
        status: CustomerStatus::Active,
        status_reason: None,
        tax_category: TaxCategory::General,
        created_at: Utc::now(),
        rev: 0,
    };
    fakes.customers.lock().unwrap().insert(id, customer);
    let product = Product { code: "SAVE".into(), name: "Savings".into(), rate_schedules: Vec::new(), rates_rev: 0 };
    fakes.products.lock().unwrap().insert("SAVE".into(), product);
    id
}

#[tokio::test]
async fn opening_checks_the_owners_and_changes_are_fenced() {
    let fakes = Fakes::new();
    let customer = known(&fakes);
    let config = account_info::Config { common: common("account-info").await, fence_catch_up: Duration::from_secs(30) };
    let app = account_info::build(config, fakes.peers()).await.unwrap();
    let peer = account_info::in_process_peer(&app.state, "test", Duration::from_secs(1));
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let http = peers::testing::client("account-info");
    let open = |customer: Uuid, product: &str| {
        http.post(format!("{url}/v1/accounts")).json(&json!({"customer_id": customer, "product_code": product}))
    };

    let (status, body) = send(open(Uuid::new_v4(), "SAVE")).await;
    assert_eq!((status, body["code"].clone()), (422, json!("CUSTOMER_NOT_FOUND")));
    let (status, body) = send(open(customer, "NOPE")).await;
    assert_eq!((status, body["code"].clone()), (422, json!("PRODUCT_NOT_FOUND")));
    fakes.down.store(true, Ordering::SeqCst);
    let (status, _) = send(open(customer, "SAVE")).await;
    assert_eq!(status, 503, "an owner unavailable is not a refusal");
    fakes.down.store(false, Ordering::SeqCst);
    let (status, account) = send(open(customer, "SAVE")).await;
    assert_eq!(status, 201, "{account}");
    let id: Uuid = account["account_id"].as_str().unwrap().parse().unwrap();

    let holds = json!({"deposit_suspended": true, "withdrawal_suspended": false});
    let (status, held) = send(http.put(format!("{url}/v1/accounts/{id}/holds")).json(&holds)).await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(fakes.fence(&format!("account:{id}")), held["rev"].as_i64());
    fakes.down.store(true, Ordering::SeqCst);
    let (status, _) =
        send(http.put(format!("{url}/v1/accounts/{id}/status")).json(&json!({"status": "DORMANT"}))).await;
    assert_eq!(status, 503, "no fence, no change");
    fakes.down.store(false, Ordering::SeqCst);

    let read = peer.account(id).await.unwrap();
    assert_eq!(serde_json::to_value(&read).unwrap(), held, "unchanged by the refused change");
    let page = peer.list(None, 10).await.unwrap();
    assert_eq!(page.accounts.iter().map(|a| a.account_id).collect::<Vec<_>>(), vec![id]);
    let refused = peer.list(None, 0).await.unwrap_err();
    assert_eq!(refused.code(), Some("VALIDATION_FAILED"), "the route's validation, in process too");
    assert!(peer.account(Uuid::new_v4()).await.unwrap_err().is_not_found());
}
