//! Account endpoints (SPEC §8).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use contracts::problem::Code;
use contracts::{Account, AccountLookup, AccountPage, AccountsFound, ChangeAccountStatus, ChangeHolds, OpenAccount};
use domain::AccountStatus;
use platform::credential::Grant;
use platform::extract::{Json as Body, Path, Query};
use platform::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::openapi::OpenApi;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::changes;
use crate::state::AppState;
use crate::store::{self, Change};

/// Who may call what here (besides `ops`, the operators' tools, which may call everything): the
/// gateway reads a customer's accounts, the services read accounts; only ops changes them.
pub const GRANTS: &[Grant] = &[
    Grant::new("ops", "*", "*"),
    Grant::new("gateway", "GET", "/v1/accounts/{id}"),
    Grant::new("gateway", "GET", "/v1/accounts"),
    Grant::new("interest", "GET", "/v1/accounts/{id}"),
    Grant::new("interest", "GET", "/v1/accounts"),
    Grant::new("interest", "POST", "/v1/accounts/lookup"),
    Grant::new("accounting", "GET", "/v1/accounts/{id}"),
    Grant::new("accounting", "POST", "/v1/accounts/lookup"),
    Grant::new("legacy-core", "GET", "/v1/accounts/{id}"),
];

/// The routes and their OpenAPI description, from the same annotations (with what the schemas
/// cannot show by their types: `contracts::openapi::whole_truth`).
pub fn routes(state: AppState) -> (Router, OpenApi) {
    let doc = platform::openapi::internal("Account-info service", "Accounts, their status and holds (SPEC §8)");
    let (router, doc) = OpenApiRouter::with_openapi(doc)
        .routes(routes!(open, list))
        .routes(routes!(read))
        .routes(routes!(read_many))
        .routes(routes!(change_status))
        .routes(routes!(change_holds))
        .with_state(state)
        .split_for_parts();
    (router, contracts::openapi::whole_truth(doc))
}

/// Opens an account for an existing customer and product; the opening date is the business date.
/// `customer_id` and `product_code` must name a customer and a product that exist: an unknown one
/// is 422 CUSTOMER_NOT_FOUND or PRODUCT_NOT_FOUND naming the field.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = OpenAccount,
    responses((status = 201, body = Account)))]
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

/// Reads an account (404 ACCOUNT_NOT_FOUND).
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", params(("id" = Uuid, Path)),
    responses((status = 200, body = Account)))]
async fn read(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Account>> {
    Ok(Json(changes::read(&s, id).await?))
}

/// Reads many accounts at once (a payout run's chunk): those that exist, in id order.
#[utoipa::path(post, path = "/v1/accounts/lookup", tag = "accounts", request_body = AccountLookup,
    responses((status = 200, body = AccountsFound)))]
async fn read_many(State(s): State<AppState>, body: Body<AccountLookup>) -> ApiResult<Json<AccountsFound>> {
    Ok(Json(changes::read_many(&s, &body.value.account_ids).await?))
}

/// Changes an account's status (fenced in the ledger before it commits).
#[utoipa::path(put, path = "/v1/accounts/{id}/status", tag = "accounts", params(("id" = Uuid, Path)),
    request_body = ChangeAccountStatus, responses((status = 200, body = Account)))]
async fn change_status(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    body: Body<ChangeAccountStatus>,
) -> ApiResult<Json<Account>> {
    let account = changes::change(&s, id, Change::Status(body.value.status)).await?;
    tracing::info!(account_id = %id, status = body.value.status.as_str(), "account status changed");
    Ok(Json(account))
}

/// Sets the deposit and withdrawal holds (fenced in the ledger before it commits).
#[utoipa::path(put, path = "/v1/accounts/{id}/holds", tag = "accounts", params(("id" = Uuid, Path)),
    request_body = ChangeHolds, responses((status = 200, body = Account)))]
async fn change_holds(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    body: Body<ChangeHolds>,
) -> ApiResult<Json<Account>> {
    let h = body.value;
    let change = Change::Holds { deposit: h.deposit_suspended, withdrawal: h.withdrawal_suspended };
    Ok(Json(changes::change(&s, id, change).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    product_code: Option<String>,
    /// ACTIVE, DORMANT or CLOSED.
    #[param(value_type = Option<AccountStatus>)]
    status: Option<String>,
    customer_id: Option<Uuid>,
    /// The `next_after` of the previous page.
    after: Option<Uuid>,
    /// Page size, 1 to 5000 (default 500).
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<i64>,
}

/// Lists accounts by product, status or customer, keyset-paged by account id.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(ListQuery),
    responses((status = 200, body = AccountPage)))]
async fn list(State(s): State<AppState>, Query(q): Query<ListQuery>) -> ApiResult<Json<AccountPage>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(v) => Some(AccountStatus::parse(v).ok_or_else(|| ApiError::validation("status", "unknown status"))?),
    };
    let filter = store::Filter { product_code: q.product_code.as_deref(), status, customer_id: q.customer_id };
    let page = changes::list(&s, &filter, q.after, q.limit.unwrap_or(500)).await?;
    Ok(Json(page))
}
