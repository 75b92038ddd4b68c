//! Interest endpoints (SPEC §8).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use contracts::{CreateProduct, Estimate, Payout, PayoutRun, Payouts, Product, RateScheduleBody, StartPayoutRun};
use platform::extract::{IdempotencyKey, Json as Body, Path};
use platform::ApiResult;
use uuid::Uuid;

use crate::{payout, rates, runs, AppState};

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/interest/products", get(list_products).post(create_product))
        .route("/v1/interest/products/{code}", get(read_product))
        .route("/v1/interest/products/{code}/rate-schedules", get(read_product).post(add_schedule))
        .route("/v1/interest/accounts/{id}", get(estimate))
        .route("/v1/interest/accounts/{id}/payouts", post(pay).get(history))
        .route("/v1/interest/payout-runs", post(start_run))
        .route("/v1/interest/payout-runs/{id}", get(read_run))
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
    Ok((StatusCode::CREATED, Json(rates::add_schedule(&s.pool, &s.revisions, &code, &body.value).await?)))
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
