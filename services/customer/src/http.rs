//! Customer endpoints (SPEC §8).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use contracts::{
    AmendCustomer, ChangeCustomerStatus, ChangeTaxCategory, CreateCustomer, Customer, CustomerLookup, CustomersFound,
};
use domain::CustomerStatus;
use platform::credential::Grant;
use platform::extract::{Json as Body, Path};
use platform::{ApiError, ApiResult};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::changes;
use crate::state::AppState;
use crate::store::{self, Change};

/// Who may call what here (besides `ops`, the operators' tools, which may call everything): the
/// services that read customers.
pub const GRANTS: &[Grant] = &[
    Grant::new("ops", "*", "*"),
    Grant::new("interest", "GET", "/v1/customers/{id}"),
    Grant::new("interest", "POST", "/v1/customers/lookup"),
    Grant::new("accounting", "GET", "/v1/customers/{id}"),
    Grant::new("accounting", "POST", "/v1/customers/lookup"),
    Grant::new("account-info", "GET", "/v1/customers/{id}"),
    Grant::new("legacy-core", "GET", "/v1/customers/{id}"),
];

/// The routes and their OpenAPI description, from the same annotations (with what the schemas
/// cannot show by their types: `contracts::openapi::whole_truth`).
pub fn routes(state: AppState) -> (Router, OpenApi) {
    let doc = platform::openapi::internal("Customer service", "Customers, their status and tax category (SPEC §8)");
    let (router, doc) = OpenApiRouter::with_openapi(doc)
        .routes(routes!(create))
        .routes(routes!(read, amend))
        .routes(routes!(read_many))
        .routes(routes!(change_status))
        .routes(routes!(change_tax_category))
        .with_state(state)
        .split_for_parts();
    (router, contracts::openapi::whole_truth(doc))
}

/// Registers a customer (ACTIVE).
#[utoipa::path(post, path = "/v1/customers", tag = "customers", request_body = CreateCustomer,
    responses((status = 201, body = Customer)))]
async fn create(
    State(AppState { pool, .. }): State<AppState>,
    body: Body<CreateCustomer>,
) -> ApiResult<(StatusCode, Json<Customer>)> {
    let name = body.value.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::validation("name", "name must be 1 to 200 characters"));
    }
    let customer = store::insert(&pool, name, body.value.tax_category).await?;
    tracing::info!(customer_id = %customer.customer_id, "customer registered");
    Ok((StatusCode::CREATED, Json(customer)))
}

/// Reads many customers at once (a payout run's chunk): those that exist, in id order.
#[utoipa::path(post, path = "/v1/customers/lookup", tag = "customers", request_body = CustomerLookup,
    responses((status = 200, body = CustomersFound)))]
async fn read_many(
    State(AppState { pool, .. }): State<AppState>,
    body: Body<CustomerLookup>,
) -> ApiResult<Json<CustomersFound>> {
    Ok(Json(changes::read_many(&pool, &body.value.customer_ids).await?))
}

/// Reads a customer (404 CUSTOMER_NOT_FOUND).
#[utoipa::path(get, path = "/v1/customers/{id}", tag = "customers", params(("id" = Uuid, Path)),
    responses((status = 200, body = Customer)))]
async fn read(State(AppState { pool, .. }): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Customer>> {
    Ok(Json(changes::read(&pool, id).await?))
}

/// Changes a customer's status; a restriction needs a reason. Fenced in the ledger before it
/// commits, so no payout quoted before the change books after it.
#[utoipa::path(put, path = "/v1/customers/{id}/status", tag = "customers", params(("id" = Uuid, Path)),
    request_body = ChangeCustomerStatus, responses((status = 200, body = Customer)))]
async fn change_status(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    body: Body<ChangeCustomerStatus>,
) -> ApiResult<Json<Customer>> {
    let req = body.value;
    let reason = checked_reason(req.status, req.reason.as_deref()).map_err(|d| ApiError::validation("reason", d))?;
    let customer =
        changes::change(&s.pool, s.ledger.as_ref(), &s.revisions, id, &[Change::Status { status: req.status, reason }])
            .await?;
    tracing::info!(customer_id = %id, status = req.status.as_str(), "customer status changed");
    Ok(Json(customer))
}

/// A restriction needs a reason (at most 500 characters); the error is about the `reason` field.
fn checked_reason(status: CustomerStatus, reason: Option<&str>) -> Result<Option<&str>, &'static str> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if status != CustomerStatus::Active && reason.is_none() {
        return Err("a reason is required when restricting a customer");
    }
    if reason.is_some_and(|r| r.chars().count() > 500) {
        return Err("reason must be at most 500 characters");
    }
    Ok(reason)
}

/// Changes a customer's tax category (fenced in the ledger before it commits).
#[utoipa::path(put, path = "/v1/customers/{id}/tax-category", tag = "customers", params(("id" = Uuid, Path)),
    request_body = ChangeTaxCategory, responses((status = 200, body = Customer)))]
async fn change_tax_category(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    body: Body<ChangeTaxCategory>,
) -> ApiResult<Json<Customer>> {
    let category = body.value.tax_category;
    let customer =
        changes::change(&s.pool, s.ledger.as_ref(), &s.revisions, id, &[Change::TaxCategory(category)]).await?;
    tracing::info!(customer_id = %id, tax_category = category.as_str(), "customer tax category changed");
    Ok(Json(customer))
}

/// Changes the status (with its reason) and/or the tax category, in one fenced change.
#[utoipa::path(patch, path = "/v1/customers/{id}", tag = "customers", params(("id" = Uuid, Path)),
    request_body = AmendCustomer, responses((status = 200, body = Customer)))]
async fn amend(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    body: Body<AmendCustomer>,
) -> ApiResult<Json<Customer>> {
    let req = body.value;
    let mut changes = Vec::new();
    if let Some(status) = req.status {
        let reason = checked_reason(status, req.reason.as_deref()).map_err(|d| ApiError::validation("reason", d))?;
        changes.push(Change::Status { status, reason });
    }
    if let Some(category) = req.tax_category {
        changes.push(Change::TaxCategory(category));
    }
    if changes.is_empty() {
        return Err(ApiError::validation("status", "nothing to change: give status and/or tax_category"));
    }
    let customer = changes::change(&s.pool, s.ledger.as_ref(), &s.revisions, id, &changes).await?;
    tracing::info!(customer_id = %id, "customer amended");
    Ok(Json(customer))
}
