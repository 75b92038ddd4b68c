//! The ledger on its own, started in-process on port 0 with in-memory peers, called through its
//! routes and through its in-process peer: both answer alike; a booking whose quote basis moved is
//! refused and writes nothing; a fence never goes down.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use contracts::{Account, Customer, DailyBalances, InterestPostingRequest, PayoutFence, QuoteBasis};
use domain::{AccountStatus, CustomerStatus, TaxBreakdown, TaxCategory, Withheld};
use peers::testing::{common, Fakes};
use peers::PeerError;
use serde_json::{json, Value};
use uuid::Uuid;

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// An account of `customer_id` (an active customer) opened on 2024-01-01, known to the fake
/// account-info and customer services.
fn open_account(fakes: &std::sync::Arc<Fakes>, account_id: Uuid, customer_id: Uuid) {
    let customer = Customer {
        customer_id,
        name: "c".into(),
        status: CustomerStatus::Active,
        status_reason: None,
        tax_category: TaxCategory::General,
        created_at: Utc::now(),
        rev: 0,
    };
    fakes.customers.lock().unwrap().entry(customer_id).or_insert(customer);
    let account = Account {
        account_id,
        customer_id,
        product_code: "SAVE".into(),
        opened_on: date("2024-01-01"),
        status: AccountStatus::Active,
        deposit_suspended: false,
        withdrawal_suspended: false,
        created_at: Utc::now(),
        rev: 0,
    };
    fakes.accounts.lock().unwrap().insert(account_id, account);
}

/// The ledger on port 0 with its clock on 2024-02-01: its in-process peer, its URL, its database.
async fn start(fakes: &std::sync::Arc<Fakes>) -> (std::sync::Arc<dyn peers::Ledger>, String, String) {
    start_with(fakes, 2, Duration::from_millis(300)).await
}

/// [`start`] with `in_flight` on-demand booking transactions at most, each waiting `lock_timeout`
/// for a lock.
async fn start_with(
    fakes: &std::sync::Arc<Fakes>,
    in_flight: usize,
    lock_timeout: Duration,
) -> (std::sync::Arc<dyn peers::Ledger>, String, String) {
    let common = common("accounting").await;
    let database_url = common.database_url.clone();
    let config = accounting::Config {
        common,
        lock_timeout,
        lock_budget: Duration::from_secs(5),
        max_connections: 5,
        booking_batches_in_flight: in_flight,
    };
    let app = accounting::build(config, fakes.peers()).await.unwrap();
    let ledger = accounting::in_process_peer(&app.state, "test", Duration::from_secs(10));
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until(std::future::pending()));
    let clock =
        peers::testing::client("accounting").put(format!("{url}/v1/admin/clock")).json(&json!({"today": "2024-02-01"}));
    assert_eq!(send(clock).await.0, 200);
    (ledger, url, database_url)
}

/// A payout of 1,000 won gross for January 2024 quoted on `balances`, booked on 2024-02-01.
fn posting(balances: &DailyBalances, customer_id: Uuid, key: &str) -> InterestPostingRequest {
    InterestPostingRequest {
        payout_id: Uuid::new_v4(),
        account_id: balances.account_id,
        customer_id,
        product_code: "SAVE".into(),
        business_date: date("2024-02-01"),
        period_from: date("2024-01-01"),
        period_to: date("2024-01-31"),
        amounts: Withheld::new(1000, TaxBreakdown { income_tax: 140, local_tax: 10, rural_special_tax: 0 }).unwrap(),
        carry_in_units: 0,
        carry_out_units: 0,
        tax_category: TaxCategory::General,
        idempotency_key: key.into(),
        request_hash: "h".into(),
        basis: QuoteBasis {
            history_rev: balances.history_rev,
            balances_digest: balances.digest.clone(),
            ..Default::default()
        },
    }
}

#[tokio::test]
async fn routes_and_the_in_process_peer_agree_and_a_stale_booking_writes_nothing() {
    let fakes = Fakes::new();
    let (account_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    open_account(&fakes, account_id, customer_id);
    let (ledger, url, _) = start(&fakes).await;
    let http = peers::testing::client("accounting");
    deposit(&url, account_id, "d1", 1_000_000, "2024-01-02").await;

    let (from, to) = (date("2024-01-01"), date("2024-01-31"));
    let balances = ledger.daily_balances(account_id, from, to).await.unwrap();
    let (_, over_http) =
        send(http.get(format!("{url}/v1/ledger/accounts/{account_id}/daily-balances?from={from}&to={to}"))).await;
    assert_eq!(serde_json::to_value(&balances).unwrap(), over_http);
    let backwards = ledger.daily_balances(account_id, to, from).await.unwrap_err();
    assert!(matches!(backwards, PeerError::Problem { status: 422, .. }), "{backwards}");

    let mut request = posting(&balances, customer_id, "p1");
    request.basis.history_rev -= 1;
    let stale = ledger.book_interest(&request).await.unwrap_err();
    assert_eq!(stale.code(), Some("QUOTE_STALE"), "{stale}");
    assert!(ledger.interest_feed(0, 10).await.unwrap().postings.is_empty(), "nothing booked");

    // A key names one payout, whatever day: the same key the next day replays the first.
    let booked = ledger.book_interest(&posting(&balances, customer_id, "p1")).await.unwrap();
    let clock =
        peers::testing::client("accounting").put(format!("{url}/v1/admin/clock")).json(&json!({"today": "2024-02-02"}));
    assert_eq!(send(clock).await.0, 200);
    let next = DailyBalances { history_rev: booked.request.basis.history_rev + 1, ..balances.clone() };
    let mut again = posting(&next, customer_id, "p1");
    (again.business_date, again.period_from, again.period_to) =
        (date("2024-02-02"), date("2024-02-01"), date("2024-02-01"));
    let replayed = ledger.book_interest(&again).await.unwrap();
    assert_eq!(replayed.request.payout_id, booked.request.payout_id, "the first payout under the key, not a second");
    assert_eq!(ledger.interest_feed(0, 10).await.unwrap().postings.len(), 1);
    let clock =
        peers::testing::client("accounting").put(format!("{url}/v1/admin/clock")).json(&json!({"today": "2024-02-01"}));
    assert_eq!(send(clock).await.0, 200);
    let (_, balance) = send(http.get(format!("{url}/v1/ledger/accounts/{account_id}/balance"))).await;
    assert_eq!(balance["balance"], 1_000_000 + 850, "the deposit and the one payout's net");

    // One code, one status, whichever service answers: an account's state forbids it (403).
    let dormant = Uuid::new_v4();
    let mut closed = fakes.accounts.lock().unwrap()[&account_id].clone();
    (closed.account_id, closed.status) = (dormant, AccountStatus::Dormant);
    fakes.accounts.lock().unwrap().insert(dormant, closed);
    let (status, body) = send(
        http.post(format!("{url}/v1/ledger/accounts/{dormant}/deposits"))
            .header("Idempotency-Key", "d2")
            .json(&json!({"amount": 5})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("ACCOUNT_NOT_ACTIVE")), "{body}");

    let subject = format!("account:{account_id}");
    let fence = |rev| PayoutFence { subject: subject.clone(), rev, effective_from: None };
    assert_eq!(ledger.raise_fence(&fence(5)).await.unwrap().rev, 5);
    assert_eq!(ledger.raise_fence(&fence(3)).await.unwrap().rev, 5, "a fence never goes down");
    let raised = ledger.fences_after("account:", 0, 100).await.unwrap().fences;
    assert_eq!(raised.iter().map(|f| (f.subject.as_str(), f.rev)).collect::<Vec<_>>(), vec![(subject.as_str(), 5)]);
    let after = ledger.fences_after("account:", raised[0].seq, 100).await.unwrap().fences;
    assert!(after.is_empty(), "nothing raised after the last one read");
    assert_eq!(ledger.raise_fence(&fence(6)).await.unwrap().rev, 6);
    let again = ledger.fences_after("account:", raised[0].seq, 100).await.unwrap().fences;
    assert_eq!(again.iter().map(|f| f.rev).collect::<Vec<_>>(), vec![6], "a raise moves the fence to the end");
    assert!(ledger.fences_after("account:", 0, 0).await.is_err(), "the route's validation, in process too");
}

#[tokio::test]
async fn a_unique_key_guarding_a_rule_is_that_rules_refusal() {
    use platform::db::GuardedBy;
    use platform::ApiError;
    let common = common("accounting").await;
    let pool = sqlx::PgPool::connect(&common.database_url).await.unwrap();
    sqlx::query("CREATE TABLE guarded (k int CONSTRAINT guarded_k UNIQUE, v int CONSTRAINT guarded_v UNIQUE)")
        .execute(&pool)
        .await
        .unwrap();
    let insert = |k: i32, v: i32| sqlx::query("INSERT INTO guarded VALUES ($1, $2)").bind(k).bind(v).execute(&pool);
    let refusal = || ApiError::of(contracts::problem::Code::AlreadyPaidToday, "once");
    assert!(insert(1, 1).await.guarded_by("guarded_k", refusal).is_ok());
    let again = insert(1, 2).await.guarded_by("guarded_k", refusal).unwrap_err();
    assert_eq!((again.status.as_u16(), again.code.as_str()), (409, "ALREADY_PAID_TODAY"));
    // Another key's violation is not this rule's: it stays a database error (a 500).
    let other = insert(2, 1).await.guarded_by("guarded_k", refusal).unwrap_err();
    assert_eq!(other.status.as_u16(), 500);
}

/// A payout run's chunk in one call: each payout gets the answer a single booking would have given
/// it, and only the good ones are written; balances of many accounts read together equal those read
/// one by one.
#[tokio::test]
async fn a_chunk_books_each_payout_alone_and_refuses_the_others_alone() {
    use contracts::{BalancesBatch, BalancesQuery, InterestPostingBatch};
    let fakes = Fakes::new();
    let customer_id = Uuid::new_v4();
    let ids: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    for id in &ids {
        open_account(&fakes, *id, customer_id);
    }
    let (ledger, url, database_url) = start(&fakes).await;
    let http = peers::testing::client("accounting");
    for (i, id) in ids.iter().enumerate() {
        deposit(&url, *id, "d", 1_000_000 * (i as i64 + 1), "2024-01-02").await;
    }
    let (from, to) = (date("2024-01-01"), date("2024-01-31"));
    let unknown = Uuid::new_v4();
    let queries = ids.iter().chain([&unknown]).map(|id| BalancesQuery { account_id: *id, from, to }).collect();
    let many = ledger.daily_balances_many(&BalancesBatch { queries }).await.unwrap().accounts;
    for (id, b) in ids.iter().chain([&unknown]).zip(&many) {
        assert_eq!(b, &ledger.daily_balances(*id, from, to).await.unwrap(), "one by one and together agree");
    }
    let request = |i: usize, key: &str| posting(&many[i], customer_id, key);
    // Account 3 was paid today under another key; account 2's row is held by another transaction.
    let paid = ledger.book_interest(&request(3, "on-demand")).await.unwrap();
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let holder = hold_row(&pool, ids[2]).await;
    let mut stale = request(1, "run");
    stale.basis.balances_digest = "not-the-digest".into();
    let mut missing = request(0, "run");
    missing.account_id = unknown;
    let good = request(0, "run");
    let batch = InterestPostingBatch {
        postings: vec![good.clone(), stale, request(2, "run"), request(3, "run"), missing.clone()],
    };
    let (status, over_http) = send(http.post(format!("{url}/v1/ledger/interest-postings/batch")).json(&batch)).await;
    assert_eq!(status, 200, "{over_http}");
    let codes: Vec<Option<&str>> =
        over_http["outcomes"].as_array().unwrap().iter().map(|o| o["code"].as_str()).collect();
    assert_eq!(
        codes,
        vec![None, Some("QUOTE_STALE"), Some("ACCOUNT_BUSY"), Some("ALREADY_PAID_TODAY"), Some("ACCOUNT_NOT_FOUND")]
    );
    let booked = over_http["outcomes"][0]["posting"].clone();
    assert_eq!(booked["payout_id"], json!(good.payout_id));
    holder.rollback().await.unwrap();

    // The same chunk again (a retried run): the booked one replays, the rest answer as before.
    let again = ledger.book_interest_many(&batch).await.unwrap().outcomes;
    assert_eq!(serde_json::to_value(again[0].posting.as_ref().unwrap()).unwrap(), booked, "replayed, not booked twice");
    assert_eq!(again[2].code, None, "the row is free now: booked");
    let feed = ledger.interest_feed(0, 10).await.unwrap().postings;
    let mut booked_accounts: Vec<Uuid> = feed.iter().map(|p| p.request.account_id).collect();
    booked_accounts.sort();
    let mut expected = vec![ids[0], ids[2], ids[3]];
    expected.sort();
    assert_eq!(booked_accounts, expected, "one payout each for the good, the once-busy and the paid account");
    assert_eq!(feed.iter().find(|p| p.request.account_id == ids[3]).unwrap().request.payout_id, paid.request.payout_id);
    let (_, stale_balance) = send(http.get(format!("{url}/v1/ledger/accounts/{}/balance", ids[1]))).await;
    assert_eq!(stale_balance["balance"], 2_000_000, "nothing written for the stale quote");

    // A full chunk fits the batch route's body limit (the service-wide one is 64 KiB).
    let full: Vec<InterestPostingRequest> = (0..contracts::MAX_LEDGER_BATCH)
        .map(|_| InterestPostingRequest { account_id: Uuid::new_v4(), ..missing.clone() })
        .collect();
    let (status, body) = send(
        http.post(format!("{url}/v1/ledger/interest-postings/batch")).json(&InterestPostingBatch { postings: full }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["outcomes"].as_array().unwrap().iter().all(|o| o["code"] == "ACCOUNT_NOT_FOUND"));

    let twice = InterestPostingBatch { postings: vec![good.clone(), good] };
    let (status, body) = send(http.post(format!("{url}/v1/ledger/interest-postings/batch")).json(&twice)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("VALIDATION_FAILED")), "{body}");
}

/// The issue's first case, deterministic: a withdrawal waits on a balance row the test holds open
/// (as under load); meanwhile the owner sets a withdrawal hold — raising the account's fence, then
/// committing, then answering — and only then is the row released. The withdrawal must be decided
/// on the hold, not on what it read before it waited. Likewise a customer restricted meanwhile.
#[tokio::test]
async fn a_movement_waiting_on_its_row_is_decided_on_the_state_at_commit() {
    let fakes = Fakes::new();
    let (account_id, customer_id, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    open_account(&fakes, account_id, customer_id);
    open_account(&fakes, other, Uuid::new_v4());
    let (ledger, url, database_url) = start(&fakes).await;
    let http = peers::testing::client("accounting");
    let move_money = |path: String, key: &'static str, body: Value| {
        let req = http.post(format!("{url}{path}")).header("Idempotency-Key", key).json(&body);
        async move { send(req).await }
    };
    let (status, body) =
        move_money(format!("/v1/ledger/accounts/{account_id}/deposits"), "d", json!({"amount": 10_000})).await;
    assert_eq!(status, 201, "{body}");
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();

    for (case, change) in [("withdrawal hold", 0), ("customer restricted", 1)] {
        // The movement reads the current state (and caches it), then waits on the held row.
        let warm = if change == 0 { "warm-0" } else { "warm-1" };
        let (status, _) =
            move_money(format!("/v1/ledger/accounts/{account_id}/withdrawals"), warm, json!({"amount": 1})).await;
        assert_eq!(status, 201, "{case}: a withdrawal goes through before the change");
        let holder = hold_row(&pool, account_id).await;
        let key = if change == 0 { "w-hold" } else { "w-restricted" };
        let waiting = tokio::spawn(move_money(
            format!("/v1/ledger/accounts/{account_id}/withdrawals"),
            key,
            json!({"amount": 100}),
        ));
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The owner's change: its fence raised (nothing waits on it: the movement holds no fence
        // yet), then committed, then answered — all while the movement waits on the row.
        let subject = if change == 0 {
            let mut accounts = fakes.accounts.lock().unwrap();
            let a = accounts.get_mut(&account_id).unwrap();
            (a.withdrawal_suspended, a.rev) = (true, a.rev + 1);
            (contracts::fence::account(account_id), a.rev)
        } else {
            let mut customers = fakes.customers.lock().unwrap();
            let c = customers.get_mut(&customer_id).unwrap();
            (c.status, c.rev) = (CustomerStatus::HackingVictim, c.rev + 1);
            (contracts::fence::customer(customer_id), c.rev)
        };
        ledger.raise_fence(&PayoutFence { subject: subject.0, rev: subject.1, effective_from: None }).await.unwrap();
        holder.rollback().await.unwrap();
        let (status, body) = waiting.await.unwrap();
        let expected = if change == 0 { "WITHDRAWAL_SUSPENDED" } else { "CUSTOMER_RESTRICTED" };
        assert_eq!((status, body["code"].as_str()), (403, Some(expected)), "{case}: {body}");
        // The refusal is the key's answer, even once the account could pay again.
        if change == 0 {
            let rev = {
                let mut accounts = fakes.accounts.lock().unwrap();
                let a = accounts.get_mut(&account_id).unwrap();
                (a.withdrawal_suspended, a.rev) = (false, a.rev + 1);
                a.rev
            };
            let lifted = PayoutFence { subject: contracts::fence::account(account_id), rev, effective_from: None };
            ledger.raise_fence(&lifted).await.unwrap();
        }
    }
    let balance: i64 = sqlx::query_scalar("SELECT balance FROM ledger_accounts WHERE account_id = $1")
        .bind(account_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(balance, 10_000 - 2, "only the two withdrawals before the changes were booked");
    let (status, body) =
        move_money(format!("/v1/ledger/accounts/{account_id}/withdrawals"), "w-hold", json!({"amount": 100})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("WITHDRAWAL_SUSPENDED")), "replayed: {body}");
    // A restricted customer's account still takes money in; nothing goes out, not by transfer.
    let (status, body) =
        move_money(format!("/v1/ledger/accounts/{account_id}/deposits"), "in", json!({"amount": 5})).await;
    assert_eq!(status, 201, "{body}");
    let transfer = json!({"from_account_id": account_id, "to_account_id": other, "amount": 5});
    let (status, body) = move_money("/v1/ledger/transfers".into(), "t-out", transfer).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("CUSTOMER_RESTRICTED")), "{body}");
}

/// One key, one operation, one request: the same key on another operation (even with the same
/// bytes) or another request is refused; the same request in other whitespace or key order is the
/// same request; a refusal is the key's answer for good.
#[tokio::test]
async fn a_key_names_its_operation_and_its_parsed_request_and_keeps_its_refusal() {
    let fakes = Fakes::new();
    let account_id = Uuid::new_v4();
    open_account(&fakes, account_id, Uuid::new_v4());
    let (_, url, _) = start(&fakes).await;
    let http = peers::testing::client("accounting");
    let raw = |kind: &str, key: &str, body: &'static str| {
        http.post(format!("{url}/v1/ledger/accounts/{account_id}/{kind}"))
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/json")
            .body(body)
    };
    let (status, first) = send(raw("deposits", "k1", r#"{"amount": 1000}"#)).await;
    assert_eq!(status, 201, "{first}");
    let (status, body) = send(raw("withdrawals", "k1", r#"{"amount": 1000}"#)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("IDEMPOTENCY_KEY_REUSED")), "{body}");
    let (status, again) = send(raw("deposits", "k1", "{\n  \"amount\" :1000 }")).await;
    assert_eq!((status, &again), (201, &first), "the same parsed request replays");
    let (status, body) = send(raw("deposits", "k1", r#"{"amount": 1001}"#)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("IDEMPOTENCY_KEY_REUSED")), "{body}");

    let (status, refused) = send(raw("withdrawals", "k2", r#"{"amount": 5000}"#)).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("INSUFFICIENT_FUNDS")), "{refused}");
    let (status, _) = send(raw("deposits", "k3", r#"{"amount": 10000}"#)).await;
    assert_eq!(status, 201);
    let (status, body) = send(raw("withdrawals", "k2", r#"{"amount": 5000}"#)).await;
    assert_eq!((status, body["code"].as_str()), (422, Some("INSUFFICIENT_FUNDS")), "one key, one answer: {body}");
    let (status, body) = send(raw("withdrawals", "k4", r#"{"amount": 5000}"#)).await;
    assert_eq!(status, 201, "a new key is a new request: {body}");
}

/// A transaction of the test's holding the account's balance row (as a busy booking would).
async fn hold_row(pool: &sqlx::PgPool, account_id: Uuid) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM ledger_accounts WHERE account_id = $1 FOR UPDATE")
        .bind(account_id)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder
}

/// A transaction of the test's holding the SAVE rates' fence (as an owner raising it would).
async fn hold_rates_fence(pool: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(contracts::fence::rates("SAVE"))
        .execute(&mut *holder)
        .await
        .unwrap();
    holder
}

/// Deposits `amount` with its value date over HTTP, and checks it was booked (201).
async fn deposit(url: &str, account_id: Uuid, key: &str, amount: i64, value_date: &str) {
    let body = json!({"amount": amount, "value_date": value_date});
    let (status, answer) = send(
        peers::testing::client("accounting")
            .post(format!("{url}/v1/ledger/accounts/{account_id}/deposits"))
            .header("Idempotency-Key", key)
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
}

/// Opens `n` accounts of one customer with a deposit each, and answers their January balances.
async fn funded_accounts(
    fakes: &std::sync::Arc<Fakes>,
    ledger: &std::sync::Arc<dyn peers::Ledger>,
    url: &str,
    customer_id: Uuid,
    n: usize,
) -> Vec<DailyBalances> {
    let mut out = Vec::new();
    for _ in 0..n {
        let id = Uuid::new_v4();
        open_account(fakes, id, customer_id);
        deposit(url, id, "d", 1_000_000, "2024-01-02").await;
        out.push(ledger.daily_balances(id, date("2024-01-01"), date("2024-01-31")).await.unwrap());
    }
    out
}

/// How many payouts the journal holds for the account.
async fn payouts_booked(pool: &sqlx::PgPool, account_id: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM journal_entries WHERE account_id = $1 AND kind = 'INTEREST_PAYOUT'")
        .bind(account_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// The transaction that wrote each account's payout (`xmin` of its journal entry).
async fn booking_transactions(pool: &sqlx::PgPool, ids: &[Uuid]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for id in ids {
        let xmin: Option<String> = sqlx::query_scalar(
            "SELECT xmin::text FROM journal_entries WHERE account_id = $1 AND kind = 'INTEREST_PAYOUT'",
        )
        .bind(id)
        .fetch_optional(pool)
        .await
        .unwrap();
        out.push(xmin);
    }
    out
}

/// On-demand bookings queued while one is in flight go together in the next transaction, and each
/// is decided alone: among good ones, a stale quote, a second payout the same day and a replayed
/// key each get their own answer, and only the good ones are written.
#[tokio::test]
async fn on_demand_bookings_queued_meanwhile_share_a_transaction_and_are_decided_alone() {
    let fakes = Fakes::new();
    let customer_id = Uuid::new_v4();
    // The booking in flight waits for the fence longer than the test takes to queue the others.
    let (ledger, url, database_url) = start_with(&fakes, 1, Duration::from_secs(3)).await;
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let accts = funded_accounts(&fakes, &ledger, &url, customer_id, 6).await;
    let [plug, good_a, good_b, stale, paid, replayed] = [0, 1, 2, 3, 4, 5].map(|i| &accts[i]);
    let earlier_paid = ledger.book_interest(&posting(paid, customer_id, "first")).await.unwrap();
    let earlier_replayed = ledger.book_interest(&posting(replayed, customer_id, "again")).await.unwrap();

    // The rates' fence held by the test: the next booking waits for it, in flight.
    let holder = hold_rates_fence(&pool).await;
    let book = |req: InterestPostingRequest| {
        let ledger = ledger.clone();
        tokio::spawn(async move { ledger.book_interest(&req).await })
    };
    let first = book(posting(plug, customer_id, "plug"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut stale_req = posting(stale, customer_id, "k");
    stale_req.basis.balances_digest = "not-the-digest".into();
    let queued = [
        book(posting(good_a, customer_id, "k")),
        book(stale_req),
        book(posting(paid, customer_id, "second")),
        book(posting(replayed, customer_id, "again")),
        book(posting(good_b, customer_id, "k")),
    ];
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(!first.is_finished(), "the first booking waits for the fence");
    holder.commit().await.unwrap();

    let first = first.await.unwrap().unwrap();
    let [a, s, p, r, b] = queued;
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert_eq!(a.request.account_id, good_a.account_id);
    assert_eq!(b.request.account_id, good_b.account_id);
    let code = |r: Result<contracts::InterestPosting, PeerError>| match r {
        Err(PeerError::Problem { code, .. }) => code,
        other => panic!("not a refusal: {other:?}"),
    };
    assert_eq!(code(s.await.unwrap()), "QUOTE_STALE");
    assert_eq!(code(p.await.unwrap()), "ALREADY_PAID_TODAY");
    let r = r.await.unwrap().unwrap();
    assert_eq!((r.entry_id, r.seq), (earlier_replayed.entry_id, earlier_replayed.seq), "replayed, not booked again");

    let ids: Vec<Uuid> = accts.iter().map(|b| b.account_id).collect();
    let txs = booking_transactions(&pool, &ids).await;
    assert!(txs[0].is_some() && txs[1].is_some());
    assert_eq!(txs[1], txs[2], "the two good bookings queued meanwhile share one transaction");
    assert_ne!(txs[0], txs[1], "the one in flight was booked alone");
    assert_eq!(txs[3], None, "nothing written for the stale quote");
    let paid_entries = payouts_booked(&pool, paid.account_id).await;
    assert_eq!(paid_entries, 1, "one payout a day");
    let feed = ledger.interest_feed(0, 100).await.unwrap().postings;
    assert_eq!(feed.len(), 5, "plug, the two good ones, and the two booked earlier");
    assert!(feed.iter().any(|f| f.entry_id == earlier_paid.entry_id && f.entry_id != first.entry_id));
}

/// A batch does not wait for a row another transaction holds: the others are booked at once, and
/// the busy one alone once its row is free (within the lock budget). Two requests for one account
/// at once: one payout. A batch that cannot take a fence within its lock timeout is booked request
/// by request, each within its own budget: none fails because the batch did.
#[tokio::test]
async fn a_busy_row_holds_up_only_its_own_on_demand_booking() {
    let fakes = Fakes::new();
    let customer_id = Uuid::new_v4();
    let (ledger, url, database_url) = start_with(&fakes, 1, Duration::from_millis(300)).await;
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let accts = funded_accounts(&fakes, &ledger, &url, customer_id, 5).await;
    let (busy, free) = (&accts[0], &accts[1]);
    let holder = hold_row(&pool, busy.account_id).await;
    let waiting = {
        let (ledger, req) = (ledger.clone(), posting(busy, customer_id, "k"));
        tokio::spawn(async move { ledger.book_interest(&req).await })
    };
    let booked = ledger.book_interest(&posting(free, customer_id, "k")).await.unwrap();
    assert_eq!(booked.request.account_id, free.account_id);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!waiting.is_finished(), "the busy account's booking waits for its row");
    holder.rollback().await.unwrap();
    let waited = waiting.await.unwrap().unwrap();
    assert_eq!(waited.request.account_id, busy.account_id);
    assert_eq!(waited.balance_after, 1_000_000 + waited.request.amounts.net());

    // One account asked twice at once, under two keys: one payout, the other refused.
    let twice = &accts[2];
    let (first_key, second_key) = (posting(twice, customer_id, "one"), posting(twice, customer_id, "other"));
    let (one, other) = tokio::join!(ledger.book_interest(&first_key), ledger.book_interest(&second_key));
    let codes: Vec<String> = [&one, &other]
        .iter()
        .filter_map(|r| match r {
            Err(PeerError::Problem { code, .. }) => Some(code.clone()),
            _ => None,
        })
        .collect();
    assert!(one.is_ok() != other.is_ok(), "{one:?} {other:?}");
    assert_eq!(codes, vec!["ALREADY_PAID_TODAY".to_string()]);

    // The rates' fence held for a second, three lock timeouts: the batch gives up and each of its
    // requests is booked alone once the fence is free.
    let holder = hold_rates_fence(&pool).await;
    let fenced: Vec<_> = accts[3..]
        .iter()
        .map(|b| {
            let (ledger, req) = (ledger.clone(), posting(b, customer_id, "k"));
            tokio::spawn(async move { ledger.book_interest(&req).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    holder.commit().await.unwrap();
    for (booking, b) in fenced.into_iter().zip(&accts[3..]) {
        assert_eq!(booking.await.unwrap().unwrap().request.account_id, b.account_id);
    }
}

/// Bookings that waited for a balance row decide on what was committed while they waited: a row
/// held by the test, then three bookings of the account (two under one key) queued behind it and
/// behind each other. The first to get the row books; the others find its payout (a replay under
/// its key, else one payout a day), never a basis gone stale under them (which is what a read from
/// before the wait would answer: the row's history revision moved, the journal not).
#[tokio::test]
async fn a_booking_that_waited_for_its_row_decides_on_what_was_committed_meanwhile() {
    let fakes = Fakes::new();
    let customer_id = Uuid::new_v4();
    let (ledger, url, database_url) = start_with(&fakes, 1, Duration::from_secs(2)).await;
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();
    let accts = funded_accounts(&fakes, &ledger, &url, customer_id, 1).await;
    let holder = hold_row(&pool, accts[0].account_id).await;
    let bookings: Vec<_> = ["k", "k", "other"]
        .into_iter()
        .map(|key| {
            let (ledger, req) = (ledger.clone(), posting(&accts[0], customer_id, key));
            tokio::spawn(async move { ledger.book_interest(&req).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(bookings.iter().all(|b| !b.is_finished()), "all three wait for the row");
    holder.rollback().await.unwrap();
    let mut entries = std::collections::HashSet::new();
    let mut refusals = Vec::new();
    for booking in bookings {
        match booking.await.unwrap() {
            Ok(posting) => {
                entries.insert(posting.entry_id);
            }
            Err(PeerError::Problem { code, .. }) => refusals.push(code),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(entries.len(), 1, "one payout, replayed to its key's other booking: {refusals:?}");
    assert!(refusals.iter().all(|c| c == "ALREADY_PAID_TODAY"), "{refusals:?}");
    assert!(matches!(refusals.len(), 1 | 2), "{refusals:?}");
    let booked = payouts_booked(&pool, accts[0].account_id).await;
    assert_eq!(booked, 1);
}

#[tokio::test]
async fn end_of_day_balances_follow_postings_of_any_value_date_in_any_order() {
    let fakes = Fakes::new();
    let (account_id, customer_id) = (Uuid::new_v4(), Uuid::new_v4());
    open_account(&fakes, account_id, customer_id);
    let (ledger, url, _) = start(&fakes).await;
    // Today's point, then back-dated ones: before every point, onto an existing point, after the
    // last, between two, and on the first day.
    let postings = [(10, 100), (5, 200), (10, 300), (20, 400), (7, 500), (1, 600)];
    for (i, (day, amount)) in postings.iter().enumerate() {
        deposit(&url, account_id, &format!("d{i}"), *amount, &format!("2024-01-{day:02}")).await;
    }
    let balances = ledger.daily_balances(account_id, date("2024-01-01"), date("2024-01-31")).await.unwrap();
    let expected: Vec<(NaiveDate, i64)> = [1, 5, 7, 10, 20]
        .iter()
        .map(|d| {
            let total = postings.iter().filter(|(day, _)| day <= d).map(|(_, amount)| amount).sum();
            (date(&format!("2024-01-{d:02}")), total)
        })
        .collect();
    let points: Vec<(NaiveDate, i64)> = balances.points.iter().map(|p| (p.date, p.balance)).collect();
    assert_eq!(points, expected);
}
