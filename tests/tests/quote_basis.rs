//! A payout books only what its quote saw (SPEC §7): every input of the amount and of eligibility
//! that changes between the quote and the booking makes the ledger refuse the booking as stale, and
//! the interest service quotes again. Deterministic cases widen the window with the test-only
//! PAYOUT_PAUSE_BEFORE_BOOKING_MS and commit a change inside it; a randomized race runs without it.
//! Every assertion is on the ledger's and the tax service's records, against an independent
//! recomputation over the final history.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::NaiveDate;
use domain::{quote, AnnualRate, BalanceHistory, Band, RateSchedule, RateTable, TaxCategory, TaxRules};
use e2e::{date, Stack};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

const OPENED: &str = "2025-03-01";
const TODAY: &str = "2025-03-11";
const INSIDE: &str = "2025-03-06";
/// Long enough that the change lands inside the first attempt's pause, whatever the machine.
const PAUSE_MS: u64 = 1500;
const CHANGE_AFTER: Duration = Duration::from_millis(400);

fn flat(rate: &str) -> Value {
    json!([{ "from": 0, "rate": rate }])
}

/// The product's rate table as the interest service stores it, read back over its API.
async fn rate_table(stack: &Stack, product: &str) -> RateTable {
    let p = stack.get("interest", &format!("/v1/interest/products/{product}")).await;
    let schedules = p.body["rate_schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let bands = s["bands"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| Band {
                    from: b["from"].as_i64().unwrap(),
                    to: b["to"].as_i64(),
                    rate: AnnualRate::parse_percent(b["rate"].as_str().unwrap()).unwrap(),
                })
                .collect();
            RateSchedule::new(date(s["effective_from"].as_str().unwrap()), bands).unwrap()
        })
        .collect();
    RateTable::new(schedules)
}

/// The end-of-day balances of the period as the ledger holds them now, straight from its database.
async fn final_history(stack: &Stack, account: Uuid, to: NaiveDate) -> BalanceHistory {
    let rows: Vec<(NaiveDate, i64)> =
        sqlx::query_as("SELECT day, balance FROM daily_balances WHERE account_id = $1 AND day <= $2 ORDER BY day")
            .bind(account)
            .bind(to)
            .fetch_all(&stack.dbs["accounting"])
            .await
            .unwrap();
    BalanceHistory::new(rows)
}

/// Asserts the payout equals an independent recomputation over the final history, rates and tax
/// category, in the payout's answer, the ledger and the tax record.
async fn assert_paid_exactly(stack: &Stack, product: &str, account: Uuid, category: TaxCategory, payout: &Value) {
    let (from, to) = (date(OPENED), date(payout["period_to"].as_str().unwrap()));
    assert_eq!(payout["period_from"], OPENED);
    let table = rate_table(stack, product).await;
    let history = final_history(stack, account, to).await;
    let rules = TaxRules::korea_since_2015();
    let q = quote(&table, &history, (from, to), 0, rules.rule_for(category, date(TODAY)).unwrap()).unwrap();
    assert_eq!(
        (payout["gross"].as_i64(), payout["income_tax"].as_i64(), payout["rural_special_tax"].as_i64()),
        (Some(q.amounts.gross()), Some(q.amounts.taxes().income_tax), Some(q.amounts.taxes().rural_special_tax)),
        "paid {payout} but the final history gives {q:?}"
    );
    let booked: i64 = sqlx::query_scalar(
        "SELECT COALESCE(sum(debit), 0)::int8 FROM journal_lines l JOIN journal_entries e USING (entry_id)
         WHERE e.account_id = $1 AND e.kind = 'INTEREST_PAYOUT' AND l.ledger_account = 'INTEREST_EXPENSE'",
    )
    .bind(account)
    .fetch_one(&stack.dbs["accounting"])
    .await
    .unwrap();
    assert_eq!(booked, q.amounts.gross(), "the ledger booked what was paid");
    let w = stack.wait_withholding(account, payout["payout_id"].as_str().unwrap()).await;
    assert_eq!(
        (w["gross"].as_i64(), w["income_tax"].as_i64()),
        (Some(q.amounts.gross()), Some(q.amounts.taxes().income_tax))
    );
    assert_eq!(w["tax_category"], category.as_str());
}

/// Nothing was written for a refused payout: no posting, no payout record, the balance untouched.
async fn assert_nothing_paid(stack: &Stack, account: Uuid, balance: i64) {
    let postings = stack
        .count(
            "accounting",
            &format!(
                "SELECT count(*) FROM journal_entries WHERE account_id = '{account}' AND kind = 'INTEREST_PAYOUT'"
            ),
        )
        .await;
    let records =
        stack.count("interest", &format!("SELECT count(*) FROM payouts WHERE account_id = '{account}'")).await;
    assert_eq!((postings, records), (0, 0));
    assert_eq!(stack.balance(account).await, balance);
}

/// A product of its own (a schedule change touches every account of a product), a customer, and
/// an account opened on OPENED with 100,000,000 won.
async fn funded(stack: &Stack, product: &str, category: &str) -> (Uuid, Uuid) {
    stack.set_today(OPENED).await;
    stack.product(product, flat("2.0"), "2025-01-01").await;
    let c = stack.customer(category).await;
    let a = stack.account(c, product).await;
    let r = stack.deposit(a, 100_000_000, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    stack.set_today(TODAY).await;
    (c, a)
}

async fn put(stack: &Stack, svc: &str, path: String, body: Value) -> e2e::Response {
    stack.call(svc, Method::PUT, &path, Some(body), &[]).await
}

/// Runs a payout and, inside its pause between quote and booking, `change`.
async fn pay_while<F: std::future::Future<Output = e2e::Response>>(
    stack: &Stack,
    account: Uuid,
    key: &str,
    change: F,
) -> (e2e::Response, e2e::Response) {
    tokio::join!(stack.pay(account, key), async {
        tokio::time::sleep(CHANGE_AFTER).await;
        change.await
    })
}

/// A payout refused with `code` because of `change(customer, account)`, committed inside its
/// quote window (the change succeeds): nothing written. Returns the ids and the change's answer.
async fn refused_while<F, Fut>(
    stack: &Stack,
    product: &str,
    category: &str,
    code: &str,
    change: F,
) -> (Uuid, Uuid, e2e::Response)
where
    F: FnOnce(Uuid, Uuid) -> Fut,
    Fut: std::future::Future<Output = e2e::Response>,
{
    let (c, a) = funded(stack, product, category).await;
    let key = product.to_lowercase();
    let (p, r) = pay_while(stack, a, &key, change(c, a)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!((p.status, p.body["code"].as_str()), (StatusCode::FORBIDDEN, Some(code)), "{:?}", p.body);
    assert_nothing_paid(stack, a, 100_000_000).await;
    (c, a, r)
}

#[tokio::test]
async fn a_change_inside_the_quote_window_is_never_paid_on_stale_inputs() {
    let pause = PAUSE_MS.to_string();
    let stack = Stack::start_with(&[("PAYOUT_PAUSE_BEFORE_BOOKING_MS", &pause)]).await;

    // (a) A back-dated deposit inside the period: paid with the deposit's days.
    let (_, a) = funded(&stack, "PA", "TAX_FREE").await;
    let (p, d) = pay_while(&stack, a, "a", stack.deposit(a, 900_000_000, Some(INSIDE))).await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
    assert_paid_exactly(&stack, "PA", a, TaxCategory::TaxFree, &p.body).await;
    assert!(p.body["gross"].as_i64().unwrap() > 300_000, "the deposit's five days at 2% are in: {:?}", p.body);

    // (a') The same after an estimate: the payout starts from the cached quote, which the booking
    // finds stale.
    let (_, a2) = funded(&stack, "PA2", "TAX_FREE").await;
    let e = stack.get("interest", &format!("/v1/interest/accounts/{a2}")).await;
    assert_eq!(e.body["payable"], true, "{:?}", e.body);
    let cached0 = stack.metric("interest", "interest_payout_quotes_total", &[("source", "estimate_cache")]).await;
    let (p, d) = pay_while(&stack, a2, "a2", stack.deposit(a2, 900_000_000, Some(INSIDE))).await;
    assert_eq!((d.status, p.status), (StatusCode::CREATED, StatusCode::CREATED), "{:?} {:?}", d.body, p.body);
    let cached = stack.metric("interest", "interest_payout_quotes_total", &[("source", "estimate_cache")]).await;
    assert_eq!(cached - cached0, 1.0, "the first attempt used the estimate's quote");
    assert_paid_exactly(&stack, "PA2", a2, TaxCategory::TaxFree, &p.body).await;
    assert!(p.body["gross"].as_i64() > e.body["gross"].as_i64(), "not the estimate's amount: {:?}", p.body);

    // (b) A rate schedule effective inside the period: accepted, and the payout uses it.
    let (_, b) = funded(&stack, "PB", "TAX_FREE").await;
    let schedule = json!({"effective_from": INSIDE, "bands": flat("10.0")});
    let (p, s) =
        pay_while(&stack, b, "b", stack.post("interest", "/v1/interest/products/PB/rate-schedules", schedule)).await;
    assert_eq!(s.status, StatusCode::CREATED, "{:?}", s.body);
    assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
    assert_paid_exactly(&stack, "PB", b, TaxCategory::TaxFree, &p.body).await;
    // Once paid, a schedule reaching back into the paid period is refused.
    let late = json!({"effective_from": "2025-03-08", "bands": flat("5.0")});
    let r = stack.post("interest", "/v1/interest/products/PB/rate-schedules", late).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::CONFLICT, Some("RATE_SCHEDULE_AFFECTS_PAID_PERIOD")));

    // (c) The customer restricted: refused, nothing written; the same key ("pc") replays the refusal.
    let (c, acc, _) = refused_while(&stack, "PC", "GENERAL", "CUSTOMER_RESTRICTED", |c, _| {
        put(
            &stack,
            "customer",
            format!("/v1/customers/{c}/status"),
            json!({"status": "HACKING_VICTIM", "reason": "reported"}),
        )
    })
    .await;
    let r = put(&stack, "customer", format!("/v1/customers/{c}/status"), json!({"status": "ACTIVE"})).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let again = stack.pay(acc, "pc").await;
    assert_eq!((again.status, again.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("CUSTOMER_RESTRICTED")));
    let other = stack.pay(acc, "c-after-lifting").await;
    assert_eq!(other.status, StatusCode::CREATED, "{:?}", other.body);

    // (d) The tax category changed: withheld at the new category.
    let (c, acc) = funded(&stack, "PD", "GENERAL").await;
    let category = json!({"tax_category": "PREFERENTIAL"});
    let (p, r) =
        pay_while(&stack, acc, "d", put(&stack, "customer", format!("/v1/customers/{c}/tax-category"), category)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
    assert_eq!(p.body["tax_category"], "PREFERENTIAL");
    assert_paid_exactly(&stack, "PD", acc, TaxCategory::Preferential, &p.body).await;

    // (d') The same through PATCH /v1/customers/{id}, with a restriction at once: refused.
    let s = &stack;
    let (c, _, r) = refused_while(s, "PD2", "GENERAL", "CUSTOMER_RESTRICTED", |c, _| async move {
        let amend = json!({"tax_category": "TAX_FREE", "status": "DECEASED", "reason": "registry"});
        s.call("customer", Method::PATCH, &format!("/v1/customers/{c}"), Some(amend), &[]).await
    })
    .await;
    assert_eq!((r.body["tax_category"].as_str(), r.body["status"].as_str()), (Some("TAX_FREE"), Some("DECEASED")));
    let empty = stack.call("customer", Method::PATCH, &format!("/v1/customers/{c}"), Some(json!({})), &[]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY, "{:?}", empty.body);

    // (e) A deposit hold, and dormancy: refused, nothing written.
    refused_while(&stack, "PE", "TAX_FREE", "DEPOSIT_SUSPENDED", |_, a| {
        put(
            &stack,
            "account-info",
            format!("/v1/accounts/{a}/holds"),
            json!({"deposit_suspended": true, "withdrawal_suspended": false}),
        )
    })
    .await;
    refused_while(&stack, "PF", "TAX_FREE", "ACCOUNT_NOT_ACTIVE", |_, a| {
        put(&stack, "account-info", format!("/v1/accounts/{a}/status"), json!({"status": "DORMANT"}))
    })
    .await;

    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

#[tokio::test]
async fn refusals_are_replayed_for_their_key() {
    let stack = Stack::start().await;
    let (_, a) = funded(&stack, "PR", "TAX_FREE").await;
    stack.set_today("2025-03-02").await;
    let first = stack.pay(a, "same").await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let refused = stack.pay(a, "refused").await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (StatusCode::CONFLICT, Some("ALREADY_PAID_TODAY")));
    // The next day the account is payable, but the key that was refused keeps its answer.
    stack.set_today("2025-03-03").await;
    let again = stack.pay(a, "refused").await;
    assert_eq!((again.status, again.body["code"].clone()), (refused.status, refused.body["code"].clone()));
    // The same key with another body is still a misuse of the key.
    let misuse = stack
        .call(
            "interest",
            Method::POST,
            &format!("/v1/interest/accounts/{a}/payouts"),
            Some(json!({"x": 1})),
            &[("Idempotency-Key", "refused")],
        )
        .await;
    assert_eq!(misuse.body["code"], "IDEMPOTENCY_KEY_REUSED", "{:?}", misuse.body);
    let fresh = stack.pay(a, "next-day").await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.body);
    stack.shutdown().await;
}

/// 200 trials of "get interest now" racing a back-dated deposit inside the unpaid period, no pause:
/// every payout equals the recomputation over the final history (the deposit is either in the
/// paid period's balances or refused as VALUE_DATE_IN_PAID_PERIOD), so no interest is lost. The
/// deposits start at random moments spread over a payout's duration, so some land between a
/// quote and its booking (counted by `interest_quote_stale_total`).
#[tokio::test]
async fn payouts_racing_back_dated_deposits_lose_nothing() {
    let stack = Stack::start().await;
    stack.set_today(OPENED).await;
    stack.product("RACE", flat("2.0"), "2025-01-01").await;
    let c = stack.customer("TAX_FREE").await;
    let mut accounts = Vec::new();
    for _ in 0..201 {
        let a = stack.account(c, "RACE").await;
        assert_eq!(stack.deposit(a, 100_000_000, None).await.status, StatusCode::CREATED);
        accounts.push(a);
    }
    stack.set_today(TODAY).await;
    // How long a payout takes here, to spread the deposits over it.
    let started = std::time::Instant::now();
    assert_eq!(stack.pay(accounts.pop().unwrap(), "probe").await.status, StatusCode::CREATED);
    let span_us = (started.elapsed().as_micros() as u64 * 3 / 2).max(1000);
    let table = rate_table(&stack, "RACE").await;
    let rule = TaxRules::korea_since_2015().rule_for(TaxCategory::TaxFree, date(TODAY)).unwrap().clone();
    let stale0 = stack.metric("interest", "interest_quote_stale_total", &[]).await;
    let (mut deposits_in, mut stale_losses) = (0, Vec::new());
    let s = &stack;
    for chunk in accounts.chunks(4) {
        let trials = chunk.iter().map(|a| async move {
            let delay = Duration::from_micros(rand::random::<u64>() % span_us);
            let (p, d) = tokio::join!(s.pay(*a, "race"), async {
                tokio::time::sleep(delay).await;
                s.deposit(*a, 900_000_000, Some(INSIDE)).await
            });
            (*a, p, d)
        });
        for (a, p, d) in futures::future::join_all(trials).await {
            assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
            match d.status {
                StatusCode::CREATED => deposits_in += 1,
                _ => assert_eq!(d.body["code"], "VALUE_DATE_IN_PAID_PERIOD", "{:?}", d.body),
            }
            let to = date(p.body["period_to"].as_str().unwrap());
            let history = final_history(&stack, a, to).await;
            let q = quote(&table, &history, (date(OPENED), to), 0, &rule).unwrap();
            if p.body["gross"].as_i64() != Some(q.amounts.gross()) {
                stale_losses.push((a, p.body["gross"].clone(), q.amounts.gross()));
            }
        }
    }
    let stale = stack.metric("interest", "interest_quote_stale_total", &[]).await - stale0;
    eprintln!("race: {deposits_in} of 200 deposits landed before their payout's booking, {stale} quotes found stale at booking");
    assert!(stale_losses.is_empty(), "periods paid on stale balances: {stale_losses:?}");
    assert!(stale > 0.0, "no deposit landed between a quote and its booking: the race did not test the window");
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// The ledger's side of the contract, driven directly: a booking whose basis differs in any way
/// from the ledger's state is refused with 409 QUOTE_STALE and writes nothing; the true basis books.
#[tokio::test]
async fn the_ledger_refuses_a_booking_on_a_stale_basis() {
    let stack = Stack::start().await;
    let (c, a) = funded(&stack, "PL", "GENERAL").await;
    let balances =
        stack.get("accounting", &format!("/v1/ledger/accounts/{a}/daily-balances?from={OPENED}&to=2025-03-10")).await;
    let rates_rev: i64 = sqlx::query_scalar("SELECT rates_rev FROM products WHERE code = 'PL'")
        .fetch_one(&stack.dbs["interest"])
        .await
        .unwrap();
    let truth = json!({
        "history_rev": balances.body["history_rev"], "balances_digest": balances.body["digest"],
        "account_rev": 0, "customer_rev": 0, "rates_rev": rates_rev,
    });
    let book = |basis: Value| {
        json!({
            "payout_id": Uuid::new_v4(), "account_id": a, "customer_id": c, "product_code": "PL",
            "business_date": TODAY, "period_from": OPENED, "period_to": "2025-03-10",
            "gross": 54794, "income_tax": 7670, "local_tax": 760, "rural_special_tax": 0, "net": 46364,
            "carry_in_units": 0, "carry_out_units": 0, "tax_category": "GENERAL",
            "idempotency_key": "direct", "request_hash": "h", "basis": basis,
        })
    };
    let mut stale = Vec::new();
    for (field, value) in [
        ("history_rev", json!(truth["history_rev"].as_i64().unwrap() + 1)),
        ("balances_digest", json!("not-the-digest")),
        ("rates_rev", json!(rates_rev - 1)),
    ] {
        let mut basis = truth.clone();
        basis[field] = value;
        stale.push((field, basis));
    }
    // An owner raised a fence after the quote read the customer.
    let r = stack
        .post("accounting", "/v1/ledger/payout-fences", json!({"subject": format!("customer:{c}"), "rev": 1}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    stale.push(("customer fence", truth.clone()));
    for (what, basis) in stale {
        let r = stack.post("accounting", "/v1/ledger/interest-postings", book(basis)).await;
        assert_eq!(
            (r.status, r.body["code"].as_str()),
            (StatusCode::CONFLICT, Some("QUOTE_STALE")),
            "{what}: {:?}",
            r.body
        );
    }
    assert_nothing_paid(&stack, a, 100_000_000).await;
    let mut current = truth.clone();
    current["customer_rev"] = json!(1);
    let r = stack.post("accounting", "/v1/ledger/interest-postings", book(current)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // A fence never goes down.
    let r = stack
        .post("accounting", "/v1/ledger/payout-fences", json!({"subject": format!("customer:{c}"), "rev": 0}))
        .await;
    assert_eq!(r.body["rev"], 1);
    stack.shutdown().await;
}

/// 100 trials of a payout racing a rate schedule effective inside its period (a product each, no
/// pause): either the schedule is accepted and the payout paid at it, or the payout committed
/// first and the schedule is refused as reaching into a paid period. Never both the old rates paid
/// and the new schedule accepted.
#[tokio::test]
async fn payouts_racing_rate_schedules_pay_the_rates_the_product_ends_with() {
    let stack = Stack::start().await;
    stack.set_today(OPENED).await;
    let c = stack.customer("TAX_FREE").await;
    let mut trials = Vec::new();
    for i in 0..101 {
        let product = format!("SR{i}");
        stack.product(&product, flat("2.0"), "2025-01-01").await;
        let a = stack.account(c, &product).await;
        assert_eq!(stack.deposit(a, 100_000_000, None).await.status, StatusCode::CREATED);
        trials.push((product, a));
    }
    stack.set_today(TODAY).await;
    let started = std::time::Instant::now();
    let (_, probe) = trials.pop().unwrap();
    assert_eq!(stack.pay(probe, "probe").await.status, StatusCode::CREATED);
    let span_us = (started.elapsed().as_micros() as u64 * 3 / 2).max(1000);
    let rule = TaxRules::korea_since_2015().rule_for(TaxCategory::TaxFree, date(TODAY)).unwrap().clone();
    let (mut accepted, mut wrong) = (0, Vec::new());
    let s = &stack;
    for chunk in trials.chunks(4) {
        let races = chunk.iter().map(|(product, a)| async move {
            let delay = Duration::from_micros(rand::random::<u64>() % span_us);
            let schedule = json!({"effective_from": INSIDE, "bands": flat("10.0")});
            let (p, r) = tokio::join!(s.pay(*a, "race"), async {
                tokio::time::sleep(delay).await;
                s.post("interest", &format!("/v1/interest/products/{product}/rate-schedules"), schedule).await
            });
            (product, *a, p, r)
        });
        for (product, a, p, r) in futures::future::join_all(races).await {
            assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
            match r.status {
                StatusCode::CREATED => accepted += 1,
                _ => assert_eq!(r.body["code"], "RATE_SCHEDULE_AFFECTS_PAID_PERIOD", "{:?}", r.body),
            }
            let to = date(p.body["period_to"].as_str().unwrap());
            let table = rate_table(&stack, product).await;
            let q = quote(&table, &final_history(&stack, a, to).await, (date(OPENED), to), 0, &rule).unwrap();
            if p.body["gross"].as_i64() != Some(q.amounts.gross()) {
                wrong.push((product.clone(), p.body["gross"].clone(), q.amounts.gross()));
            }
        }
    }
    eprintln!("schedule race: {accepted} of 100 schedules accepted (the payout paid at them), the rest refused");
    assert!(wrong.is_empty(), "payouts at rates other than the product's: {wrong:?}");
    stack.shutdown().await;
}

/// Everything at once, no pause: 120 payouts, each racing one change of a different kind —
/// back-dated deposit or withdrawal, a schedule of its product (shared by 30 accounts), a tax
/// category change, a customer restriction, a deposit hold. Afterwards every booked payout equals
/// the recomputation over its account's final history, its product's final schedules and the tax
/// category it recorded: no amount decided on an input that changed before the booking committed,
/// no schedule accepted over a paid day.
#[tokio::test]
async fn payouts_racing_every_kind_of_change_pay_exactly() {
    let stack = Stack::start().await;
    stack.set_today(OPENED).await;
    for p in 0..4 {
        stack.product(&format!("MIX{p}"), flat("2.0"), "2025-01-01").await;
    }
    let categories = ["GENERAL", "TAX_FREE", "PREFERENTIAL"];
    let mut trials = Vec::new();
    for i in 0..121usize {
        let c = stack.customer(categories[i % 3]).await;
        let product = format!("MIX{}", i % 4);
        let a = stack.account(c, &product).await;
        assert_eq!(stack.deposit(a, 100_000_000, None).await.status, StatusCode::CREATED);
        trials.push((i, c, a, product));
    }
    stack.set_today(TODAY).await;
    let started = std::time::Instant::now();
    let (_, _, probe, _) = trials.pop().unwrap();
    assert_eq!(stack.pay(probe, "probe").await.status, StatusCode::CREATED);
    let span_us = (started.elapsed().as_micros() as u64 * 3 / 2).max(1000);
    let s = &stack;
    let mut outcomes = std::collections::BTreeMap::<String, u32>::new();
    for chunk in trials.chunks(6) {
        let races = chunk.iter().map(|(i, c, a, product)| async move {
            let delay = Duration::from_micros(rand::random::<u64>() % span_us);
            let change = async {
                tokio::time::sleep(delay).await;
                match i % 6 {
                    0 => s.deposit(*a, 900_000_000, Some(INSIDE)).await,
                    1 => {
                        let day = format!("2025-03-{:02}", 2 + rand::random::<u32>() % 9);
                        let rate = format!("{}.0", 3 + i % 5);
                        let body = json!({"effective_from": day, "bands": flat(&rate)});
                        s.post("interest", &format!("/v1/interest/products/{product}/rate-schedules"), body).await
                    }
                    2 => {
                        put(
                            s,
                            "customer",
                            format!("/v1/customers/{c}/tax-category"),
                            json!({"tax_category": categories[(i + 1) % 3]}),
                        )
                        .await
                    }
                    3 => {
                        put(
                            s,
                            "customer",
                            format!("/v1/customers/{c}/status"),
                            json!({"status": "IDENTITY_THEFT", "reason": "race"}),
                        )
                        .await
                    }
                    4 => {
                        put(
                            s,
                            "account-info",
                            format!("/v1/accounts/{a}/holds"),
                            json!({"deposit_suspended": true, "withdrawal_suspended": false}),
                        )
                        .await
                    }
                    _ => s.withdraw(*a, 50_000_000, Some(INSIDE)).await,
                }
            };
            let (p, r) = tokio::join!(s.pay(*a, "mix"), change);
            (*i, p, r)
        });
        for (i, p, r) in futures::future::join_all(races).await {
            let allowed_change = r.status.is_success()
                || ["VALUE_DATE_IN_PAID_PERIOD", "RATE_SCHEDULE_AFFECTS_PAID_PERIOD", "RATE_SCHEDULE_EXISTS"]
                    .contains(&r.body["code"].as_str().unwrap_or_default());
            assert!(allowed_change, "change {}: {:?}", i % 6, r.body);
            let allowed_payout = p.status == StatusCode::CREATED
                || (i % 6 == 3 && p.body["code"] == "CUSTOMER_RESTRICTED")
                || (i % 6 == 4 && p.body["code"] == "DEPOSIT_SUSPENDED")
                || p.body["code"] == "QUOTE_STALE";
            assert!(allowed_payout, "payout racing change {}: {:?}", i % 6, p.body);
            *outcomes.entry(format!("{}:{}:{}", i % 6, p.status.as_u16(), r.status.as_u16())).or_default() += 1;
        }
    }
    // Every booked payout, from the ledger, against the final state.
    let booked: Vec<(Value,)> = sqlx::query_as("SELECT payout FROM journal_entries WHERE kind = 'INTEREST_PAYOUT'")
        .fetch_all(&stack.dbs["accounting"])
        .await
        .unwrap();
    let rules = TaxRules::korea_since_2015();
    let mut wrong = Vec::new();
    for (p,) in &booked {
        let a: Uuid = p["account_id"].as_str().unwrap().parse().unwrap();
        let to = date(p["period_to"].as_str().unwrap());
        let table = rate_table(&stack, p["product_code"].as_str().unwrap()).await;
        let category = TaxCategory::parse(p["tax_category"].as_str().unwrap()).unwrap();
        let q = quote(
            &table,
            &final_history(&stack, a, to).await,
            (date(OPENED), to),
            0,
            rules.rule_for(category, date(TODAY)).unwrap(),
        )
        .unwrap();
        let paid =
            (p["gross"].as_i64(), p["income_tax"].as_i64(), p["local_tax"].as_i64(), p["rural_special_tax"].as_i64());
        if paid
            != (
                Some(q.amounts.gross()),
                Some(q.amounts.taxes().income_tax),
                Some(q.amounts.taxes().local_tax),
                Some(q.amounts.taxes().rural_special_tax),
            )
        {
            wrong.push((a, p["product_code"].clone(), paid, q.amounts.gross()));
        }
    }
    eprintln!(
        "mixed race: {} payouts booked; outcomes (change kind:payout status:change status) {outcomes:?}",
        booked.len()
    );
    assert!(wrong.is_empty(), "payouts that differ from the final state: {wrong:?}");
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}

/// A run's chunk is booked in one ledger call after the same pause: a back-dated deposit and a hold
/// committed inside it make those two bookings stale; the chunk pays the others, and each stale
/// account is quoted again alone — paid exactly on the final inputs, or refused with nothing written.
#[tokio::test]
async fn a_run_chunk_changed_inside_its_window_pays_exactly_or_refuses() {
    let pause = PAUSE_MS.to_string();
    let stack = Stack::start_with(&[("PAYOUT_PAUSE_BEFORE_BOOKING_MS", &pause)]).await;
    stack.set_today(OPENED).await;
    stack.product("RUNQ", flat("2.0"), "2025-01-01").await;
    let mut accounts = Vec::new();
    for _ in 0..4 {
        let c = stack.customer("GENERAL").await;
        let a = stack.account(c, "RUNQ").await;
        assert_eq!(stack.deposit(a, 100_000_000, None).await.status, StatusCode::CREATED);
        accounts.push(a);
    }
    stack.set_today(TODAY).await;
    let stale0 = stack.metric("interest", "interest_quote_stale_total", &[]).await;
    let r = stack.post("interest", "/v1/interest/payout-runs", json!({ "account_ids": accounts })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let run = r.body["run_id"].as_str().unwrap().to_string();
    tokio::time::sleep(CHANGE_AFTER).await;
    let d = stack.deposit(accounts[1], 900_000_000, Some(INSIDE)).await;
    assert_eq!(d.status, StatusCode::CREATED, "{:?}", d.body);
    let holds = json!({"deposit_suspended": true, "withdrawal_suspended": false});
    let h = put(&stack, "account-info", format!("/v1/accounts/{}/holds", accounts[2]), holds).await;
    assert_eq!(h.status, StatusCode::OK, "{:?}", h.body);
    let mut report = Value::Null;
    for _ in 0..150 {
        report = stack.get("interest", &format!("/v1/interest/payout-runs/{run}")).await.body;
        if report["state"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(report["state"], "COMPLETED", "{report}");
    assert_eq!((report["paid"].as_i64(), report["failed"].as_i64()), (Some(3), Some(0)), "{report}");
    let stale = stack.metric("interest", "interest_quote_stale_total", &[]).await;
    assert_eq!(stale - stale0, 2.0, "the deposit's and the hold's bookings were found stale in the chunk");
    for a in [accounts[0], accounts[1], accounts[3]] {
        let history = stack.get("interest", &format!("/v1/interest/accounts/{a}/payouts")).await.body;
        let payouts = history["payouts"].as_array().unwrap();
        assert_eq!(payouts.len(), 1, "{payouts:?}");
        assert_paid_exactly(&stack, "RUNQ", a, TaxCategory::General, &payouts[0]).await;
    }
    assert_nothing_paid(&stack, accounts[2], 100_000_000).await;
    let skipped: i64 = stack
        .count(
            "interest",
            &format!(
                "SELECT count(*) FROM payout_run_items WHERE run_id = '{run}' AND state = 'SKIPPED'
                 AND reason = 'DEPOSIT_SUSPENDED'"
            ),
        )
        .await;
    assert_eq!(skipped, 1);
}

/// Issue 28, case 6: tax rules are part of the quote basis and change only from a future date. A
/// rule scheduled inside a payout's quote window makes the booking stale (the payout is quoted
/// again, at the rules in force today); from its date on, payouts withhold by it, although the
/// day's estimate and the rules kept in process were read before it was scheduled.
#[tokio::test]
async fn a_tax_rule_is_scheduled_for_a_future_date_and_no_payout_books_a_superseded_one() {
    let pause = PAUSE_MS.to_string();
    let stack = Stack::start_with(&[("PAYOUT_PAUSE_BEFORE_BOOKING_MS", &pause)]).await;
    let (_, a) = funded(&stack, "PT", "GENERAL").await;
    let (_, b) = funded(&stack, "PT2", "GENERAL").await;
    let e = stack.get("interest", &format!("/v1/interest/accounts/{b}")).await;
    assert_eq!(e.body["payable"], true, "warms the day's estimate and the rules in process: {:?}", e.body);
    let rule = |from: &str, income: &str| {
        json!({"category": "GENERAL", "effective_from": from, "reason": "Tax law amendment 2025",
               "components": [{"component": "income_tax", "base": "gross", "rate": income},
                              {"component": "local_tax", "base": "income_tax", "rate": "10"}]})
    };
    let stale0 = stack.metric("interest", "interest_quote_stale_total", &[]).await;
    let (p, r) =
        pay_while(&stack, a, "t", stack.post("interest", "/v1/interest/tax-rules", rule("2025-03-12", "20"))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["rev"], 1, "{:?}", r.body);
    assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
    assert!(stack.metric("interest", "interest_quote_stale_total", &[]).await > stale0, "quoted again");
    assert_paid_exactly(&stack, "PT", a, TaxCategory::General, &p.body).await;

    // The refusals: not a future date, a date already scheduled, more than the gross.
    for (body, status, code) in [
        (rule(TODAY, "20"), StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
        (rule("2025-03-12", "25"), StatusCode::CONFLICT, "TAX_RULE_EXISTS"),
        (rule("2025-04-01", "95"), StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
    ] {
        let r = stack.post("interest", "/v1/interest/tax-rules", body).await;
        assert_eq!((r.status, r.body["code"].as_str()), (status, Some(code)), "{:?}", r.body);
    }

    // The next day, the new rule governs: income tax 20%, local tax 10% of it.
    stack.set_today("2025-03-12").await;
    let p = stack.pay(b, "t-next-day").await;
    assert_eq!(p.status, StatusCode::CREATED, "{:?}", p.body);
    let gross = p.body["gross"].as_i64().unwrap();
    let income = (gross * 20 / 100) / 10 * 10;
    assert_eq!(
        (p.body["income_tax"].as_i64(), p.body["local_tax"].as_i64()),
        (Some(income), Some(income / 10 / 10 * 10)),
        "{:?}",
        p.body
    );
    let withheld = stack.wait_withholding(b, p.body["payout_id"].as_str().unwrap()).await;
    assert_eq!(withheld["income_tax"], income);

    // A date a booked payout of the category already has is refused, even with the clock moved back.
    stack.set_today("2025-03-10").await;
    let r = stack.post("interest", "/v1/interest/tax-rules", rule("2025-03-11", "30")).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::CONFLICT, Some("TAX_RULE_AFFECTS_PAID_PERIOD")));
    let listed = stack.get("interest", "/v1/interest/tax-rules").await.body;
    assert_eq!(listed["rev"], 1);
    let general: Vec<&Value> =
        listed["rules"].as_array().unwrap().iter().filter(|r| r["category"] == "GENERAL").collect();
    assert_eq!(general.len(), 2, "{listed}");
    assert_eq!(
        (general[1]["scheduled_by"].as_str(), general[1]["reason"].as_str()),
        (Some("ops"), Some("Tax law amendment 2025")),
        "scheduled directly by an operators' tool: its credential says who"
    );
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}
