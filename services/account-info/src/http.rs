//! Account endpoints (SPEC §8).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use contracts::problem::Code;
use contracts::{Account, AccountPage, ChangeAccountStatus, ChangeHolds, OpenAccount};
use domain::AccountStatus;
use platform::extract::{Json as Body, Path, Query};
use platform::{ApiError, ApiResult};
use serde::Deserialize;
use uuid::Uuid;

use crate::changes;
use crate::state::AppState;
use crate::store::{self, Change};

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/accounts", post(open).get(list))
        .route("/v1/accounts/{id}", get(read))
        .route("/v1/accounts/{id}/status", put(change_status))
        .route("/v1/accounts/{id}/holds", put(change_holds))
        .with_state(state)
}

async fn open(State(s): State<AppState>, body: Body<OpenAccount>) -> ApiResult<(StatusCode, Json<Account>)> {
    let req = body.value;
    // The owner and the product must exist; their services are the source of truth.
    // The owners' refusals, mapped into ours: a missing customer or product is the body's fault.
    match s.customers.customer(req.customer_id).await {
        Err(e) if e.refusal() == Some(Code::CustomerNotFound) => {
            let detail = format!("no customer {}", req.customer_id);
            return Err(ApiError::of(Code::CustomerNotFound, detail).named_in("customer_id"));
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    if !contracts::is_product_code(&req.product_code) {
        return Err(ApiError::validation("product_code", "product_code must be 1 to 64 letters, digits, '_' or '-'"));
    }
    match s.products.product(&req.product_code).await {
        Err(e) if e.refusal() == Some(Code::ProductNotFound) => {
            let detail = format!("no product {}", req.product_code);
            return Err(ApiError::of(Code::ProductNotFound, detail).named_in("product_code"));
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    let today = s.clock.today().await?;
    let account = store::insert(&s.pool, req.customer_id, &req.product_code, today).await?;
    tracing::info!(account_id = %account.account_id, "account opened");
    Ok((StatusCode::CREATED, Json(account)))
}

async fn read(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Account>> {
    Ok(Json(changes::read(&s, id).await?))
}

async fn change_status(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    body: Body<ChangeAccountStatus>,
) -> ApiResult<Json<Account>> {
    let account = changes::change(&s, id, Change::Status(body.value.status)).await?;
    tracing::info!(account_id = %id, status = body.value.status.as_str(), "account status changed");
    Ok(Json(account))
}

async fn change_holds(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    body: Body<ChangeHolds>,
) -> ApiResult<Json<Account>> {
    let h = body.value;
    let change = Change::Holds { deposit: h.deposit_suspended, withdrawal: h.withdrawal_suspended };
    Ok(Json(changes::change(&s, id, change).await?))
}

#[derive(Deserialize)]
struct ListQuery {
    product_code: Option<String>,
    status: Option<String>,
    customer_id: Option<Uuid>,
    after: Option<Uuid>,
    limit: Option<i64>,
}

async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<AccountPage>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(v) => Some(AccountStatus::parse(v).ok_or_else(|| ApiError::validation("status", "unknown status"))?),
    };
    let filter = store::Filter { product_code: q.product_code.as_deref(), status, customer_id: q.customer_id };
    let page = changes::list(&s, &filter, q.after, q.limit.unwrap_or(500)).await?;
    Ok(Json(page))
}
