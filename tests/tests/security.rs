//! Least privilege and fail-closed, tried from the outside (issue 32): each service credential
//! reaches only its granted routes; the gateway audits before it acts and refuses when it cannot;
//! it checks scopes before reading bodies, limits across replicas and before authentication, and
//! tells the public nothing about its insides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::{binary, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

async fn stack_with_gateway(extra: &[(&str, &str)]) -> (Stack, Uuid, Uuid) {
    let mut stack = Stack::start().await;
    stack.start_gateway(extra).await;
    stack.set_today("2024-03-01").await;
    stack.product("SEC", json!([{"from": 0, "rate": "3.0"}]), "2024-01-01").await;
    let customer = stack.customer("GENERAL").await;
    let account = stack.account(customer, "SEC").await;
    assert_eq!(stack.deposit(account, 50_000_000, None).await.status, StatusCode::CREATED);
    stack.set_today("2024-03-11").await;
    (stack, customer, account)
}

async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = req.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_service_credential_reaches_only_its_granted_routes() {
    let (stack, customer, account) = stack_with_gateway(&[]).await;
    let http = reqwest::Client::new();
    let ledger = &stack.urls["accounting"];
    let deposit = json!({"amount": 1_000});
    // The internet-facing gateway may read the ledger's payout feed, never post to it.
    let as_gateway = stack.credential_of("gateway", "accounting");
    let (status, body) = send(
        http.post(format!("{ledger}/v1/ledger/accounts/{account}/deposits"))
            .bearer_auth(&as_gateway)
            .header("Idempotency-Key", "gw-deposit")
            .json(&deposit),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::FORBIDDEN, Some("CALLER_NOT_ALLOWED")), "{body}");
    let feed = http.get(format!("{ledger}/v1/ledger/interest-postings")).bearer_auth(&as_gateway).send().await;
    assert_eq!(feed.unwrap().status(), StatusCode::OK);
    // Only interest books interest.
    let booking = json!({"payout_id": Uuid::new_v4()});
    for caller in ["gateway", "account-info", "customer", "tax-consumer"] {
        let token = stack.credential_of(caller, "accounting");
        let (status, _) =
            send(http.post(format!("{ledger}/v1/ledger/interest-postings")).bearer_auth(&token).json(&booking)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{caller} booked interest");
    }
    // Only a fence's owner raises it: account-info an account's, not interest or the customer service.
    let fence = json!({"subject": format!("account:{account}"), "rev": 1});
    for (caller, want) in
        [("interest", StatusCode::FORBIDDEN), ("customer", StatusCode::FORBIDDEN), ("account-info", StatusCode::OK)]
    {
        let token = stack.credential_of(caller, "accounting");
        let (status, body) =
            send(http.post(format!("{ledger}/v1/ledger/payout-fences")).bearer_auth(&token).json(&fence)).await;
        assert_eq!(status, want, "{caller}: {body}");
    }
    // A credential is for one service: the gateway's for the ledger is refused by interest.
    let interest = &stack.urls["interest"];
    let r = http.get(format!("{interest}/v1/interest/accounts/{account}")).bearer_auth(&as_gateway).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::UNAUTHORIZED);
    // The gateway reads estimates, but products are changed by ops only.
    let as_gateway = stack.credential_of("gateway", "interest");
    let r = http.get(format!("{interest}/v1/interest/accounts/{account}")).bearer_auth(&as_gateway).send().await;
    assert_eq!(r.unwrap().status(), StatusCode::OK);
    let product = json!({"code": "EVIL", "name": "by the gateway"});
    let (status, _) =
        send(http.post(format!("{interest}/v1/interest/products")).bearer_auth(&as_gateway).json(&product)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing about the routes is learned without a credential: an unknown route is 401, not 404.
    let r = http.get(format!("{interest}/v1/no-such-route")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // And the ledger holds no deposit or booking from any of this.
    let entries = stack.count("accounting", "SELECT count(*) FROM journal_entries").await;
    assert_eq!(entries, 1, "only the setup's deposit");
    let _ = customer;
    stack.shutdown().await;
}

#[tokio::test]
async fn a_service_without_its_credentials_does_not_start() {
    let stack = Stack::start().await;
    for (env, needle) in
        [(vec![], "SERVICE_TRUST"), (vec![("SERVICE_TRUST_FILE", "/nonexistent")], "SERVICE_TRUST_FILE")]
    {
        let mut cmd = std::process::Command::new(binary("customer"));
        cmd.env_clear().env("PORT", "0").env("DATABASE_URL", stack.database_url("customer"));
        cmd.envs(env);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "started without credentials");
        assert!(err.contains(needle), "the refusal names {needle}: {err}");
    }
    // Another service's key is not this one's.
    let mut cmd = std::process::Command::new(binary("customer"));
    cmd.env_clear().env("PORT", "0").env("DATABASE_URL", stack.database_url("customer"));
    cmd.envs(stack.ops_env());
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && err.contains("not customer's"), "{err}");
    stack.shutdown().await;
}

#[tokio::test]
async fn every_money_moving_request_is_on_record_before_it_is_acted_on() {
    let (stack, customer, account) = stack_with_gateway(&[]).await;
    let me = stack.token(&customer.to_string(), "customer");
    // The account id percent-encoded: the audit records the account the payout is for.
    let id = account.to_string();
    let encoded: String = id.chars().map(|c| format!("%{:02X}", c as u32)).collect();
    let r = stack
        .as_caller(
            &me,
            Method::POST,
            &format!("/v1/me/accounts/{encoded}/payouts"),
            None,
            &[("Idempotency-Key", "sec-1"), ("X-Request-Id", "client-chosen-id")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let row: (String, Option<Uuid>, String, Option<String>, String, Option<i16>) = sqlx::query_as(
        "SELECT subject, account_id, request_id, client_request_id, request_digest, status FROM audit_trail
         WHERE method = 'POST' AND route = '/v1/me/accounts/{id}/payouts'",
    )
    .fetch_one(&stack.dbs["gateway"])
    .await
    .unwrap();
    assert_eq!((row.0.as_str(), row.1), (customer.to_string().as_str(), Some(account)));
    assert!(row.2.len() >= 32 && row.2 != "client-chosen-id", "the server's own request id: {}", row.2);
    assert_eq!(row.3.as_deref(), Some("client-chosen-id"), "the client's is kept apart");
    assert!(row.4.len() == 64 && row.4.chars().all(|c| c.is_ascii_hexdigit()), "a digest: {}", row.4);
    assert_eq!(row.5, Some(201));

    // Append-only, for the gateway's own connection too.
    let db = &stack.dbs["gateway"];
    for sql in [
        "UPDATE audit_log SET subject = 'nobody'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log CASCADE",
        "UPDATE audit_outcomes SET status = 200",
        "DELETE FROM audit_outcomes",
    ] {
        let e = sqlx::query(sql).execute(db).await.unwrap_err().to_string();
        assert!(e.contains("append-only"), "{sql}: {e}");
    }

    // The audit database unavailable: nothing is acted on, 503 for every audited request.
    stack.block_database("gateway", true).await;
    let before = stack.count("accounting", "SELECT count(*) FROM journal_entries").await;
    stack.set_today("2024-03-12").await;
    let ops = stack.token("ops-w", "ops:write");
    for (token, method, path, body) in [
        (&me, Method::POST, format!("/v1/me/accounts/{account}/payouts"), None),
        (&ops, Method::POST, "/v1/ops/payout-runs".to_string(), Some(json!({"account_ids": [account]}))),
        (&ops, Method::PUT, "/v1/ops/clock".to_string(), Some(json!({"today": "2024-03-13"}))),
    ] {
        let r = stack.as_caller(token, method, &path, body, &[("Idempotency-Key", "sec-2")]).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("DEPENDENCY_UNAVAILABLE")),
            "{path}: {:?}",
            r.body
        );
    }
    // Readiness (open to anyone reaching the port) names what is down, not the driver's words.
    let ready = reqwest::get(format!("{}/health/ready", stack.replica_url("gateway", 0))).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = ready.text().await.unwrap();
    assert!(text.contains("database") && !text.contains(&stack.run) && !text.contains("127.0.0.1"), "{text}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.count("accounting", "SELECT count(*) FROM journal_entries").await, before, "nothing booked");
    assert_eq!(stack.count("interest", "SELECT count(*) FROM payout_runs").await, 0, "no run started");
    let clock = stack.get("interest", "/v1/admin/clock").await.body;
    assert_eq!(clock["today"], "2024-03-12", "the clock did not move");
    stack.block_database("gateway", false).await;
    stack.shutdown().await;
}

/// Sends a request's head announcing an 8 MiB body and 1 KiB of it, then nothing more; returns
/// the status line of the answer, if one comes while the rest of the body is still owed.
async fn answer_to_a_stalled_body(gateway: &str, path: &str, token: Option<&str>) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = gateway.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        8 * 1024 * 1024
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&[b' '; 1024]).await.unwrap();
    let mut answer = vec![0u8; 256];
    let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut answer)).await.ok()?.ok()?;
    String::from_utf8_lossy(&answer[..n]).lines().next().map(str::to_string)
}

#[tokio::test]
async fn scopes_and_tokens_are_checked_before_a_body_is_read() {
    let (stack, customer, _) = stack_with_gateway(&[]).await;
    let read = stack.token("ops-r", "ops:read");
    let me = stack.token(&customer.to_string(), "customer");
    for (token, want) in [(None, "401"), (Some(&read), "403"), (Some(&me), "403")] {
        for gateway in stack.replica_urls("gateway") {
            let line = answer_to_a_stalled_body(&gateway, "/v1/ops/payout-runs", token.map(String::as_str)).await;
            let line = line.expect("answered before the body was sent");
            assert!(line.starts_with("HTTP/1.1 ") && line.contains(want), "{token:?}: {line}");
        }
    }
    stack.shutdown().await;
}

#[tokio::test]
async fn limits_hold_across_gateway_replicas_and_before_authentication() {
    let extra = [("RATE_LIMIT_OPS_PER_MINUTE", "3"), ("RATE_LIMIT_PER_ADDRESS_PER_MINUTE", "8")];
    let (stack, _, _) = stack_with_gateway(&extra).await;
    let http = reqwest::Client::new();
    let gateways = stack.replica_urls("gateway");
    let read = stack.token("ops-r", "ops:read");
    let mut statuses = Vec::new();
    for i in 0..4 {
        let url = format!("{}/v1/ops/rollout", gateways[i % gateways.len()]);
        statuses.push(http.get(url).bearer_auth(&read).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "three ops requests a minute, whichever replica answers");
    // Every request counts against the client's address, before its token is read: 4 so far.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let url = format!("{}/v1/me/accounts", gateways[i % gateways.len()]);
        let r = http.get(url).bearer_auth("not-a-token").send().await.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429], "eight requests a minute per address");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_public_learns_nothing_of_the_insides() {
    let (mut stack, customer, account) = stack_with_gateway(&[]).await;
    let http = reqwest::Client::new();
    let gateway = stack.urls["gateway"].clone();
    // HEAD is ruled as its GET: refused without a token, not a server error.
    let head = http.head(format!("{gateway}/v1/me/accounts")).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::UNAUTHORIZED);
    // Metrics are not public.
    assert_eq!(http.get(format!("{gateway}/metrics")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let as_ops = stack.credential_of("ops", "gateway");
    let r = http.get(format!("{gateway}/metrics")).bearer_auth(as_ops).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A customer's answers are never for a shared cache.
    let me = stack.token(&customer.to_string(), "customer");
    for path in
        [format!("/v1/me/accounts/{account}"), format!("/v1/me/accounts/{account}/interest"), "/v1/me/accounts".into()]
    {
        let r = http.get(format!("{gateway}{path}")).bearer_auth(&me).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert_eq!(r.headers()["cache-control"], "no-store", "{path}");
    }
    // A refused token says only that it is refused.
    let expired = {
        let pem = std::fs::read(e2e::fixtures().join("test-issuer.key.pem")).unwrap();
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"sub": customer.to_string(), "scope": "customer", "iss": "interest-bank",
            "aud": "interest-bank-api", "iat": now - 600, "exp": now - 300});
        let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key).unwrap()
    };
    let (status, body) = send(http.get(format!("{gateway}/v1/me/accounts")).bearer_auth(expired)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let detail = body["detail"].as_str().unwrap().to_lowercase();
    assert!(!detail.contains("expired") && !detail.contains("signature"), "the library's reason leaked: {detail}");
    // A service down: a 503 naming no address.
    stack.kill("account-info");
    let (status, body) = send(http.get(format!("{gateway}/v1/me/accounts/{account}")).bearer_auth(&me)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let text = body.to_string();
    assert!(!text.contains("127.0.0.1") && !text.contains("http://"), "an address leaked: {text}");
    stack.shutdown().await;
}
