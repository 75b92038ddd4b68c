//! Interest endpoints (SPEC §8). Thin handlers: each reads its request and calls one capability's
//! use case with that capability's state from `AppState` (no SQL here).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Json, Router};
use contracts::legacy::{ShadowMismatches, ShadowMismatchesQuery};
use contracts::{
    CreateProduct, Estimate, Payout, PayoutPage, PayoutRun, PayoutRunsQuery, Payouts, PayoutsQuery, Product,
    RateScheduleBody, ScheduleTaxRule, StartPayoutRun, TaxRulesView,
};
use platform::credential::Grant;
use platform::extract::{Actor, IdempotencyKey, Json as Body, Path, Query};
use platform::ApiResult;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::migration::{self, Answer};
use crate::state::AppState;
use crate::{payout, reference, runs};

/// Who may call what here (besides `ops`, the operators' tools, which may call everything): the
/// gateway its public and ops routes, the services that read products. Products and rate
/// schedules are changed by ops only.
pub const GRANTS: &[Grant] = &[
    Grant::new("ops", "*", "*"),
    Grant::new("gateway", "*", "/v1/interest/accounts/{id}"),
    Grant::new("gateway", "*", "/v1/interest/accounts/{id}/payouts"),
    Grant::new("gateway", "*", "/v1/interest/legacy/accounts/{id}"),
    Grant::new("gateway", "*", "/v1/interest/legacy/accounts/{id}/payouts"),
    Grant::new("gateway", "*", "/v1/interest/payout-runs"),
    Grant::new("gateway", "*", "/v1/interest/payout-runs/*"),
    Grant::new("gateway", "GET", "/v1/interest/payouts"),
    Grant::new("gateway", "GET", "/v1/interest/shadow-mismatches"),
    Grant::new("gateway", "*", "/v1/interest/tax-rules"),
    Grant::new("gateway", "*", "/v1/admin/clock"),
    Grant::new("account-info", "GET", "/v1/interest/products/{code}"),
    Grant::new("legacy-core", "GET", "/v1/interest/products/{code}"),
];

/// The routes and their OpenAPI description, from the same annotations (with what the schemas
/// cannot show by their types: `contracts::openapi::whole_truth`).
pub fn routes(state: AppState) -> (Router, OpenApi) {
    let doc = platform::openapi::internal(
        "Interest service",
        "Products and rate schedules, estimates, payouts and payout runs (SPEC §3–§8)",
    );
    let (router, doc) = OpenApiRouter::with_openapi(doc)
        .routes(routes!(list_products, create_product))
        .routes(routes!(read_product))
        .routes(routes!(list_schedules, add_schedule))
        .routes(routes!(estimate))
        .routes(routes!(pay, history))
        .routes(routes!(payouts_between))
        .merge(OpenApiRouter::new().routes(routes!(start_run, list_runs)).layer(platform::server::batch_body_limit()))
        .routes(routes!(read_run))
        .routes(routes!(cancel_run))
        .routes(routes!(legacy_estimate))
        .routes(routes!(legacy_pay))
        .routes(routes!(shadow_mismatches))
        .routes(routes!(list_tax_rules, schedule_tax_rule))
        .with_state(state)
        .split_for_parts();
    (router, contracts::openapi::whole_truth(doc))
}

/// Every product with its rate schedules.
#[utoipa::path(get, path = "/v1/interest/products", tag = "products", responses((status = 200, body = Vec<Product>)))]
async fn list_products(State(s): State<AppState>) -> ApiResult<Json<Vec<Product>>> {
    Ok(Json(reference::products(&s.reference).await?))
}

/// Creates a product (409 PRODUCT_EXISTS); rates come as schedules.
#[utoipa::path(post, path = "/v1/interest/products", tag = "products", request_body = CreateProduct,
    responses((status = 201, body = Product)))]
async fn create_product(
    State(s): State<AppState>,
    body: Body<CreateProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(reference::create_product(&s.reference, &body.value.code, &body.value.name).await?)))
}

/// A product and its rate schedules (404 PRODUCT_NOT_FOUND).
#[utoipa::path(get, path = "/v1/interest/products/{code}", tag = "products", params(("code" = String, Path)),
    responses((status = 200, body = Product)))]
async fn read_product(State(s): State<AppState>, Path(code): Path<String>) -> ApiResult<Json<Product>> {
    Ok(Json(reference::product(&s.reference, &code).await?))
}

/// The product with its rate schedules (as `GET /v1/interest/products/{code}`).
#[utoipa::path(get, path = "/v1/interest/products/{code}/rate-schedules", tag = "products",
    params(("code" = String, Path)), responses((status = 200, body = Product)))]
async fn list_schedules(s: State<AppState>, code: Path<String>) -> ApiResult<Json<Product>> {
    read_product(s, code).await
}

/// Adds an effective-dated rate schedule (percentage strings, at most 4 decimals). The bands are
/// contiguous: the first from 0, each next one `from` where the one before ends (`to` above its
/// `from`), only the last open-ended (422 naming the band otherwise); bounds are won amounts, JSON
/// integers. Refused with 409 RATE_SCHEDULE_AFFECTS_PAID_PERIOD if a booked payout already covers
/// its first day.
#[utoipa::path(post, path = "/v1/interest/products/{code}/rate-schedules", tag = "products",
    params(("code" = String, Path)), request_body = RateScheduleBody, responses((status = 201, body = Product)))]
async fn add_schedule(
    State(s): State<AppState>,
    Path(code): Path<String>,
    body: Body<RateScheduleBody>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(reference::add_schedule(&s.reference, &code, &body.value).await?)))
}

/// The interest payable now: period, gross, each tax, net, and whether it may be paid (`code`
/// says why not).
#[utoipa::path(get, path = "/v1/interest/accounts/{id}", tag = "payouts", params(("id" = Uuid, Path)),
    responses((status = 200, body = Estimate)))]
async fn estimate(State(s): State<AppState>, Path(id): Path<Uuid>, headers: HeaderMap) -> ApiResult<Json<Estimate>> {
    let estimate = payout::estimate(&s.payouts, id).await?;
    // A batch verification compares its estimates itself (`X-Shadow: off`).
    let batch = headers.get("x-shadow").is_some_and(|v| v == "off");
    if let Some(shadow) = s.migration.shadow().filter(|_| !batch) {
        shadow.offer(Answer::Estimate(estimate.clone()));
    }
    Ok(Json(estimate))
}

/// Pays the interest accrued since the last payout up to yesterday, at most once per account and
/// business date. The body is ignored but hashed as parsed: a retry must send the same (normally
/// empty) request.
#[utoipa::path(post, path = "/v1/interest/accounts/{id}/payouts", tag = "payouts",
    params(("id" = Uuid, Path), IdempotencyKey), responses((status = 201, body = Payout)))]
async fn pay(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Payout>)> {
    let hash = platform::extract::request_hash(&body);
    let payout = payout::pay(&s.payouts, id, &key, &hash).await?;
    if let Some(shadow) = s.migration.shadow() {
        shadow.offer(Answer::Payout(payout.clone()));
    }
    Ok((StatusCode::CREATED, Json(payout)))
}

/// The interest payable now as the legacy core computes it (for customers the gateway's rollout
/// keeps on the legacy core; 404 NOT_FOUND when none is configured).
#[utoipa::path(get, path = "/v1/interest/legacy/accounts/{id}", tag = "legacy core", params(("id" = Uuid, Path)),
    responses((status = 200, body = Estimate)))]
async fn legacy_estimate(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Estimate>> {
    Ok(Json(migration::legacy_estimate(&s.migration, id).await?))
}

/// A payout made by the legacy core: booked in the same ledger, so at most one per account and
/// business date whichever side pays; recorded here from the ledger's feed with its tax event.
#[utoipa::path(post, path = "/v1/interest/legacy/accounts/{id}/payouts", tag = "legacy core",
    params(("id" = Uuid, Path), IdempotencyKey), responses((status = 201, body = Payout)))]
async fn legacy_pay(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Payout>)> {
    let hash = platform::extract::request_hash(&body);
    Ok((StatusCode::CREATED, Json(migration::legacy_pay(&s.migration, id, &key, &hash).await?)))
}

/// Shadow comparisons with the legacy core that found a difference, newest first.
#[utoipa::path(get, path = "/v1/interest/shadow-mismatches", tag = "legacy core", params(ShadowMismatchesQuery),
    responses((status = 200, body = ShadowMismatches)))]
async fn shadow_mismatches(
    State(s): State<AppState>,
    Query(q): Query<ShadowMismatchesQuery>,
) -> ApiResult<Json<ShadowMismatches>> {
    Ok(Json(migration::mismatches(&s.migration, &q).await?))
}

/// The account's payouts, newest first.
#[utoipa::path(get, path = "/v1/interest/accounts/{id}/payouts", tag = "payouts", params(("id" = Uuid, Path)),
    responses((status = 200, body = Payouts)))]
async fn history(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Payouts>> {
    Ok(Json(payout::history(&s.payouts, id).await?))
}

/// Starts today's payout run over every account or the given ones (202: it proceeds in the
/// background), or resumes the same cancelled run; 409 RUN_EXISTS names the existing run in
/// `instance`. A `business_date` other than today's is refused (422).
#[utoipa::path(post, path = "/v1/interest/payout-runs", tag = "payout runs", request_body = StartPayoutRun,
    responses((status = 202, body = PayoutRun)))]
async fn start_run(State(s): State<AppState>, body: Body<StartPayoutRun>) -> ApiResult<(StatusCode, Json<PayoutRun>)> {
    Ok((StatusCode::ACCEPTED, Json(runs::start(&s.runs, body.value).await?)))
}

/// A run's state, counts, totals and progress.
#[utoipa::path(get, path = "/v1/interest/payout-runs/{id}", tag = "payout runs", params(("id" = Uuid, Path)),
    responses((status = 200, body = PayoutRun)))]
async fn read_run(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<PayoutRun>> {
    Ok(Json(runs::report(&s.runs, id).await?))
}

/// Cancels a running run: no account is claimed after it (idempotent; 409 RUN_FINISHED once it
/// ended).
#[utoipa::path(post, path = "/v1/interest/payout-runs/{id}/cancel", tag = "payout runs",
    params(("id" = Uuid, Path)), responses((status = 200, body = PayoutRun)))]
async fn cancel_run(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<PayoutRun>> {
    Ok(Json(runs::cancel(&s.runs, id).await?))
}

/// The latest runs, newest first.
#[utoipa::path(get, path = "/v1/interest/payout-runs", tag = "payout runs", params(PayoutRunsQuery),
    responses((status = 200, body = contracts::PayoutRuns)))]
async fn list_runs(
    State(s): State<AppState>,
    Query(q): Query<PayoutRunsQuery>,
) -> ApiResult<Json<contracts::PayoutRuns>> {
    Ok(Json(runs::list(&s.runs, q.limit.unwrap_or(50)).await?))
}

/// Recorded payouts with a business date in `from..=to`, keyset-paged by payout id
/// (reconciliation).
#[utoipa::path(get, path = "/v1/interest/payouts", tag = "payouts", params(PayoutsQuery),
    responses((status = 200, body = PayoutPage)))]
async fn payouts_between(State(s): State<AppState>, Query(q): Query<PayoutsQuery>) -> ApiResult<Json<PayoutPage>> {
    Ok(Json(payout::payouts_between(&s.payouts, &q).await?))
}

/// Every tax rule (each category's withholding by effective date, who scheduled it and why) and
/// the rules' revision, which every quote carries.
#[utoipa::path(get, path = "/v1/interest/tax-rules", tag = "tax rules", responses((status = 200, body = TaxRulesView)))]
async fn list_tax_rules(State(s): State<AppState>) -> ApiResult<Json<TaxRulesView>> {
    Ok(Json(reference::tax_rules(&s.reference).await?))
}

/// Schedules a category's withholding from a future business date (a law change). Refused with 422
/// for a date that is not after today and for components that name one twice, take as base one
/// not before them or together withhold more than the gross; 409 TAX_RULE_EXISTS for a date the
/// category has a rule for, 409 TAX_RULE_AFFECTS_PAID_PERIOD for a date a booked payout of the
/// category has; fenced in the ledger before it commits, so no payout is booked on a superseded
/// rule. Who scheduled it is kept: the gateway's `X-Actor` (its caller's subject) when the gateway
/// calls, the calling service's identity otherwise.
#[utoipa::path(post, path = "/v1/interest/tax-rules", tag = "tax rules", request_body = ScheduleTaxRule,
    params(("X-Actor" = Option<String>, Header, description = "Who schedules the rule (the gateway sets it)")),
    responses((status = 201, body = TaxRulesView)))]
async fn schedule_tax_rule(
    State(s): State<AppState>,
    Actor(by): Actor,
    body: Body<ScheduleTaxRule>,
) -> ApiResult<(StatusCode, Json<TaxRulesView>)> {
    Ok((StatusCode::CREATED, Json(reference::schedule_tax_rule(&s.reference, &body.value, &by).await?)))
}
