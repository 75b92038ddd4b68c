//! The legacy core's contract (docs/legacy-core.md) and the simulator's own admin route.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Json, Router};
use contracts::legacy::{LegacyDeviations, LegacyPayout, LegacyPayoutRequest, LegacyQuote, LegacyQuoteQuery};
use platform::credential::Grant;
use platform::extract::{IdempotencyKey, Json as Body, Path, Query};
use platform::ApiResult;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// Who may call what here: interest (shadow comparisons and the legacy path) the account routes;
/// the deviations are ops' alone.
pub const GRANTS: &[Grant] = &[Grant::new("ops", "*", "*"), Grant::new("interest", "*", "/legacy/v1/accounts/*")];

use crate::state::AppState;
use crate::{payouts, store};

pub fn routes(state: AppState) -> (Router, OpenApi) {
    let doc = platform::openapi::internal(
        "Legacy core (simulator)",
        "The legacy core's interest contract as the new system expects it: a quote and a payout for an \
         account on a business date, amounts per tax component. The simulator computes with its own \
         arithmetic and withholding rates and can be told to deviate (admin route).",
    );
    let (router, doc) = OpenApiRouter::with_openapi(doc)
        .routes(routes!(quote))
        .routes(routes!(pay, payouts_of))
        .routes(routes!(read_deviations, set_deviations))
        .with_state(state)
        .split_for_parts();
    (router, contracts::openapi::whole_truth(doc))
}

/// The payout the legacy core would make on `business_date` (its today), or why not.
#[utoipa::path(get, path = "/legacy/v1/accounts/{id}/interest", tag = "legacy", params(("id" = Uuid, Path), LegacyQuoteQuery),
    responses((status = 200, body = LegacyQuote)))]
async fn quote(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<LegacyQuoteQuery>,
) -> ApiResult<Json<LegacyQuote>> {
    Ok(Json(payouts::quote(&s.payouts, id, q.business_date, q.as_if_unpaid).await?))
}

/// Pays on `business_date`, once per account and date across both systems (the ledger books it).
#[utoipa::path(post, path = "/legacy/v1/accounts/{id}/payouts", tag = "legacy",
    params(("id" = Uuid, Path), IdempotencyKey), request_body = LegacyPayoutRequest,
    responses((status = 201, body = LegacyPayout)))]
async fn pay(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<LegacyPayoutRequest>,
) -> ApiResult<(StatusCode, Json<LegacyPayout>)> {
    let channel_hash = body.value.request_hash.as_deref();
    let payout = payouts::pay(&s.payouts, id, body.value.business_date, &key, &body.body_hash, channel_hash).await?;
    Ok((StatusCode::CREATED, Json(payout)))
}

/// The payouts the legacy core made on the account, newest first.
#[utoipa::path(get, path = "/legacy/v1/accounts/{id}/payouts", tag = "legacy", params(("id" = Uuid, Path)),
    responses((status = 200, body = Vec<LegacyPayout>)))]
async fn payouts_of(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Vec<LegacyPayout>>> {
    Ok(Json(store::payouts_of(&s.pool, id).await.map_err(crate::error::LegacyError::from)?))
}

/// The simulator's deviations from the new system's rules.
#[utoipa::path(get, path = "/legacy/v1/admin/deviations", tag = "simulator", responses((status = 200, body = LegacyDeviations)))]
async fn read_deviations(State(s): State<AppState>) -> ApiResult<Json<LegacyDeviations>> {
    let d = store::deviations(&s.pool).await.map_err(crate::error::LegacyError::from)?;
    Ok(Json(d.unwrap_or_default()))
}

/// Switches deviations on or off (all off: the simulator agrees with the new system).
#[utoipa::path(put, path = "/legacy/v1/admin/deviations", tag = "simulator", request_body = LegacyDeviations,
    responses((status = 200, body = LegacyDeviations)))]
async fn set_deviations(State(s): State<AppState>, body: Body<LegacyDeviations>) -> ApiResult<Json<LegacyDeviations>> {
    store::set_deviations(&s.pool, &body.value).await.map_err(crate::error::LegacyError::from)?;
    tracing::warn!(deviations = ?body.value, "legacy core deviations changed");
    Ok(Json(body.value))
}
