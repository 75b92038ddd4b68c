//! Interest endpoints (SPEC §8).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::{
    CreateProduct, Estimate, Payout, PayoutPage, PayoutRun, Payouts, Product, RateScheduleBody, StartPayoutRun,
};
use platform::extract::{IdempotencyKey, Json as Body, Path, Query};
use platform::ApiResult;
use uuid::Uuid;

use crate::state::AppState;
use crate::{payout, rates, runs};

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/interest/products", get(list_products).post(create_product))
        .route("/v1/interest/products/{code}", get(read_product))
        .route("/v1/interest/products/{code}/rate-schedules", get(read_product).post(add_schedule))
        .route("/v1/interest/accounts/{id}", get(estimate))
        .route("/v1/interest/accounts/{id}/payouts", post(pay).get(history))
        .route("/v1/interest/payouts", get(payouts_between))
        .route("/v1/interest/payout-runs", post(start_run).get(list_runs))
        .route("/v1/interest/payout-runs/{id}", get(read_run))
        .route("/v1/interest/payout-runs/{id}/cancel", post(cancel_run))
        .with_state(state)
}

async fn list_products(State(s): State<AppState>) -> ApiResult<Json<Vec<Product>>> {
    Ok(Json(rates::products(&s.pool).await?))
}

async fn create_product(
    State(s): State<AppState>,
    body: Body<CreateProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(rates::create_product(&s.pool, &body.value.code, &body.value.name).await?)))
}

async fn read_product(State(s): State<AppState>, Path(code): Path<String>) -> ApiResult<Json<Product>> {
    Ok(Json(rates::product(&s.pool, &code).await?))
}

async fn add_schedule(
    State(s): State<AppState>,
    Path(code): Path<String>,
    body: Body<RateScheduleBody>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(rates::add_schedule(&s, &code, &body.value).await?)))
}

async fn estimate(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Estimate>> {
    Ok(Json(payout::estimate(&s, id).await?))
}

/// The body is ignored but hashed: a retry must send the same (normally empty) body.
async fn pay(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Payout>)> {
    let hash = platform::extract::hash(&body);
    Ok((StatusCode::CREATED, Json(payout::pay(&s, id, &key, &hash).await?)))
}

async fn history(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Payouts>> {
    Ok(Json(Payouts { account_id: id, payouts: crate::store::payouts(&s.pool, id).await? }))
}

/// 202: the run proceeds in the background; follow it with `GET /v1/interest/payout-runs/{id}`.
async fn start_run(State(s): State<AppState>, body: Body<StartPayoutRun>) -> ApiResult<(StatusCode, Json<PayoutRun>)> {
    Ok((StatusCode::ACCEPTED, Json(runs::start(&s, body.value).await?)))
}

async fn read_run(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<PayoutRun>> {
    Ok(Json(runs::report(&s, id).await?))
}

async fn cancel_run(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<PayoutRun>> {
    Ok(Json(runs::cancel(&s, id).await?))
}

#[derive(serde::Deserialize)]
struct RunsQuery {
    limit: Option<i64>,
}

async fn list_runs(State(s): State<AppState>, Query(q): Query<RunsQuery>) -> ApiResult<Json<contracts::PayoutRuns>> {
    Ok(Json(runs::list(&s, q.limit.unwrap_or(50)).await?))
}

#[derive(serde::Deserialize)]
struct BetweenQuery {
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    after: Option<Uuid>,
    limit: Option<i64>,
}

/// Recorded payouts by business date, keyset-paged (reconciliation).
async fn payouts_between(State(s): State<AppState>, Query(q): Query<BetweenQuery>) -> ApiResult<Json<PayoutPage>> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(platform::ApiError::validation("limit", "limit must be 1 to 10000"));
    }
    let payouts = crate::store::payouts_between(&s.pool, q.from, q.to, q.after, limit).await?;
    let next_after = (payouts.len() as i64 == limit).then(|| payouts.last().map(|p| p.payout_id)).flatten();
    Ok(Json(PayoutPage { payouts, next_after }))
}
