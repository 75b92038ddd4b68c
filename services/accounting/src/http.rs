//! Ledger endpoints (SPEC §8) and the internal ones the interest service uses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use contracts::problem::Code;
use contracts::{
    Balance, DailyBalances, Entries, InterestPosting, InterestPostingFeed, InterestPostingRequest, MoneyMovement,
    PayoutFence, Transfer,
};
use peers::directory::LookupError;
use platform::extract::{IdempotencyKey, Json as Body, Path, Query};
use platform::{ApiError, ApiResult};
use serde::Deserialize;
use uuid::Uuid;

use crate::ledger::{self, Direction, Idempotency};
use crate::state::AppState;
use crate::store;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/ledger/accounts/{id}/deposits", post(deposit))
        .route("/v1/ledger/accounts/{id}/withdrawals", post(withdraw))
        .route("/v1/ledger/transfers", post(transfer))
        .route("/v1/ledger/accounts/{id}/balance", get(balance))
        .route("/v1/ledger/accounts/{id}/entries", get(entries))
        .route("/v1/ledger/accounts/{id}/daily-balances", get(daily_balances))
        .route("/v1/ledger/interest-postings", post(book_interest).get(interest_feed))
        .route("/v1/ledger/payout-fences", post(raise_fence).get(recent_fences))
        .with_state(state)
}

fn respond(r: ledger::Response) -> Response {
    (StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK), Json(r.body)).into_response()
}

async fn deposit(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<MoneyMovement>,
) -> ApiResult<Response> {
    let idem = Idempotency { key: &key, request_hash: &body.body_hash };
    Ok(respond(ledger::move_money(&s, id, Direction::Deposit, body.value.amount, body.value.value_date, idem).await?))
}

async fn withdraw(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<MoneyMovement>,
) -> ApiResult<Response> {
    let idem = Idempotency { key: &key, request_hash: &body.body_hash };
    Ok(respond(
        ledger::move_money(&s, id, Direction::Withdrawal, body.value.amount, body.value.value_date, idem).await?,
    ))
}

async fn transfer(
    State(s): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<Transfer>,
) -> ApiResult<Response> {
    let idem = Idempotency { key: &key, request_hash: &body.body_hash };
    let t = &body.value;
    Ok(respond(ledger::transfer(&s, t.from_account_id, t.to_account_id, t.amount, idem).await?))
}

async fn balance(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Balance>> {
    let today = s.clock.today().await?;
    let balance = match store::find_account(&s.pool, id).await? {
        Some(a) => a.balance,
        None => {
            // Never posted to: the balance is 0 if the account exists at all.
            match s.accounts.lookup(id, |_| Vec::new()).await {
                Ok(_) => 0,
                Err(LookupError::Dependency(e)) => return Err(e.into()),
                Err(_) => return Err(ApiError::of(Code::AccountNotFound, format!("no account {id}"))),
            }
        }
    };
    Ok(Json(Balance { account_id: id, balance, as_of: today }))
}

#[derive(Deserialize)]
struct EntriesQuery {
    limit: Option<i64>,
}

async fn entries(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<EntriesQuery>,
) -> ApiResult<Json<Entries>> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::validation("limit", "limit must be 1 to 1000"));
    }
    Ok(Json(Entries { account_id: id, entries: store::entries(&s.pool, id, limit).await? }))
}

#[derive(Deserialize)]
struct RangeQuery {
    from: NaiveDate,
    to: NaiveDate,
}

async fn daily_balances(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<DailyBalances>> {
    Ok(Json(ledger::daily_balances(&s, id, q.from, q.to).await?))
}

async fn book_interest(
    State(s): State<AppState>,
    body: Body<InterestPostingRequest>,
) -> ApiResult<(StatusCode, Json<InterestPosting>)> {
    let posting = ledger::book_interest(&s, &body.value).await?;
    Ok((StatusCode::CREATED, Json(posting)))
}

async fn raise_fence(State(s): State<AppState>, body: Body<PayoutFence>) -> ApiResult<Json<PayoutFence>> {
    Ok(Json(ledger::raise_fence(&s, &body.value).await?))
}

#[derive(Deserialize)]
struct RecentFencesQuery {
    prefix: String,
    within_secs: Option<i64>,
}

async fn recent_fences(
    State(s): State<AppState>,
    Query(q): Query<RecentFencesQuery>,
) -> ApiResult<Json<Vec<PayoutFence>>> {
    Ok(Json(ledger::recent_fences(&s, &q.prefix, q.within_secs.unwrap_or(86_400)).await?))
}

#[derive(Deserialize)]
struct FeedQuery {
    after_seq: Option<i64>,
    limit: Option<i64>,
}

async fn interest_feed(State(s): State<AppState>, Query(q): Query<FeedQuery>) -> ApiResult<Json<InterestPostingFeed>> {
    Ok(Json(ledger::interest_feed(&s, q.after_seq.unwrap_or(0), q.limit.unwrap_or(500)).await?))
}
