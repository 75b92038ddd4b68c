//! Ledger endpoints (SPEC §8) and the internal ones the interest service uses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use chrono::NaiveDate;
use contracts::problem::Code;
use contracts::{
    Balance, BalancesBatch, BalancesMany, DailyBalances, Entries, FencePage, InterestPosting, InterestPostingBatch,
    InterestPostingFeed, InterestPostingOutcomes, InterestPostingRequest, MoneyMovement, PayoutFence, Posting,
    Transfer, TransferPosting,
};
use peers::directory::LookupError;
use platform::credential::{Grant, ServiceCaller};
use platform::extract::{IdempotencyKey, Json as Body, Path, Query};
use platform::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::openapi::OpenApi;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::movements::{self, Movement};
use crate::state::AppState;
use crate::{bookings, ledger, store};

/// Who may call what here (besides `ops`, the operators' tools, which may call everything). Only
/// interest books interest (and the legacy core, whose payouts the ledger books as the old core
/// did); the owners of accounts, customers, rates and tax rules raise their fences (which
/// subjects each may fence is checked by the handler); the gateway reads the payout feed for
/// reconciliation and never posts. Deposits, withdrawals and transfers are ops' alone.
pub const GRANTS: &[Grant] = &[
    Grant::new("ops", "*", "*"),
    Grant::new("interest", "GET", "/v1/ledger/accounts/{id}/daily-balances"),
    Grant::new("interest", "POST", "/v1/ledger/daily-balances"),
    Grant::new("interest", "POST", "/v1/ledger/interest-postings"),
    Grant::new("interest", "POST", "/v1/ledger/interest-postings/batch"),
    Grant::new("interest", "GET", "/v1/ledger/interest-postings"),
    Grant::new("interest", "*", "/v1/ledger/payout-fences"),
    Grant::new("account-info", "*", "/v1/ledger/payout-fences"),
    Grant::new("customer", "*", "/v1/ledger/payout-fences"),
    Grant::new("gateway", "GET", "/v1/ledger/interest-postings"),
    Grant::new("legacy-core", "GET", "/v1/ledger/accounts/{id}/daily-balances"),
    Grant::new("legacy-core", "POST", "/v1/ledger/interest-postings"),
];

/// The routes and their OpenAPI description, from the same annotations (with what the schemas
/// cannot show by their types: `contracts::openapi::whole_truth`).
pub fn routes(state: AppState) -> (Router, OpenApi) {
    let doc = platform::openapi::internal(
        "Accounting service (the ledger)",
        "Double-entry journal, balances, interest bookings and payout fences (SPEC §6–§8)",
    );
    let (router, doc) = OpenApiRouter::with_openapi(doc)
        .routes(routes!(deposit))
        .routes(routes!(withdraw))
        .routes(routes!(transfer))
        .routes(routes!(balance))
        .routes(routes!(entries))
        .routes(routes!(daily_balances))
        .routes(routes!(book_interest, interest_feed))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(daily_balances_many))
                .routes(routes!(book_interest_many))
                .layer(platform::server::batch_body_limit()),
        )
        .routes(routes!(raise_fence, fences_after))
        .with_state(state)
        .split_for_parts();
    (router, contracts::openapi::whole_truth(doc))
}

fn respond(r: movements::Response) -> Response {
    (StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK), Json(r.body)).into_response()
}

/// Deposits into an account, value-dated today unless `value_date` says an earlier day (not before
/// the opening nor inside a paid interest period). Refused (and the refusal kept under the key)
/// while the account is not active or deposits are suspended, as they are when it commits. The
/// amount is a JSON integer (`100`, not `100.0`: money never travels as a float).
#[utoipa::path(post, path = "/v1/ledger/accounts/{id}/deposits", tag = "ledger",
    params(("id" = Uuid, Path), IdempotencyKey), request_body = MoneyMovement,
    responses((status = 201, body = Posting)))]
async fn deposit(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<MoneyMovement>,
) -> ApiResult<Response> {
    let m = Movement::deposit(id, body.value.amount, body.value.value_date);
    Ok(respond(movements::book(&s, &m, &key).await?))
}

/// Withdraws from an account (422 INSUFFICIENT_FUNDS below zero). Refused (and the refusal kept
/// under the key) while the customer is restricted, the account not active or withdrawals
/// suspended, as they are when it commits. The amount is a JSON integer (`100`, not `100.0`), and
/// `value_date` as for a deposit.
#[utoipa::path(post, path = "/v1/ledger/accounts/{id}/withdrawals", tag = "ledger",
    params(("id" = Uuid, Path), IdempotencyKey), request_body = MoneyMovement,
    responses((status = 201, body = Posting)))]
async fn withdraw(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<MoneyMovement>,
) -> ApiResult<Response> {
    let m = Movement::withdrawal(id, body.value.amount, body.value.value_date);
    Ok(respond(movements::book(&s, &m, &key).await?))
}

/// Moves money between two different accounts in one journal entry, dated today; the key is the
/// paying account's. `to_account_id` must differ from `from_account_id` (422 SAME_ACCOUNT); the
/// amount is a JSON integer (`100`, not `100.0`). Refused as a withdrawal from the one and a
/// deposit to the other would be.
#[utoipa::path(post, path = "/v1/ledger/transfers", tag = "ledger", params(IdempotencyKey), request_body = Transfer,
    responses((status = 201, body = TransferPosting)))]
async fn transfer(
    State(s): State<AppState>,
    IdempotencyKey(key): IdempotencyKey,
    body: Body<Transfer>,
) -> ApiResult<Response> {
    let t = &body.value;
    let m = Movement::transfer(t.from_account_id, t.to_account_id, t.amount);
    Ok(respond(movements::book(&s, &m, &key).await?))
}

/// The balance of record.
#[utoipa::path(get, path = "/v1/ledger/accounts/{id}/balance", tag = "ledger", params(("id" = Uuid, Path)),
    responses((status = 200, body = Balance)))]
async fn balance(State(s): State<AppState>, Path(id): Path<Uuid>) -> ApiResult<Json<Balance>> {
    let today = s.clock.today().await?;
    let balance = match store::find_account(&s.pool, id).await? {
        Some(a) => a.balance,
        None => {
            // Never posted to: the balance is 0 if the account exists at all.
            match s.directory.lookup(id, |_| Vec::new()).await {
                Ok(_) => 0,
                Err(LookupError::Dependency(e)) => return Err(e.into()),
                Err(_) => return Err(ApiError::of(Code::AccountNotFound, format!("no account {id}"))),
            }
        }
    };
    Ok(Json(Balance { account_id: id, balance, as_of: today }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EntriesQuery {
    /// 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// The journal entries touching the account, newest first.
#[utoipa::path(get, path = "/v1/ledger/accounts/{id}/entries", tag = "ledger",
    params(("id" = Uuid, Path), EntriesQuery), responses((status = 200, body = Entries)))]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    from: NaiveDate,
    to: NaiveDate,
    /// Report the last payout booked for a business date before this one (default: the last).
    paid_before: Option<NaiveDate>,
}

/// End-of-day balances of `from..=to` as change points, with the history revision and digest a
/// payout's booking is checked against (the interest service's input). `to` must not be before
/// `from` (422).
#[utoipa::path(get, path = "/v1/ledger/accounts/{id}/daily-balances", tag = "ledger",
    params(("id" = Uuid, Path), RangeQuery), responses((status = 200, body = DailyBalances)))]
async fn daily_balances(
    State(s): State<AppState>,
    Path(id): Path<Uuid>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<DailyBalances>> {
    Ok(Json(bookings::daily_balances(&s, id, q.from, q.to, q.paid_before).await?))
}

/// Books an interest payout (the interest service's call): at most one per account and business
/// date, only for the period after the last, only if its quote's basis is still current (409
/// QUOTE_STALE otherwise); the same `payout_id` again answers the booked posting. The amounts add
/// up (`net` = `gross` − the taxes, the taxes at most the gross) and are JSON integers; the
/// period, dates and carries are the ledger's to check against what it booked (422).
#[utoipa::path(post, path = "/v1/ledger/interest-postings", tag = "interest bookings",
    request_body = InterestPostingRequest, responses((status = 201, body = InterestPosting)))]
async fn book_interest(
    State(s): State<AppState>,
    body: Body<InterestPostingRequest>,
) -> ApiResult<(StatusCode, Json<InterestPosting>)> {
    let posting = bookings::book_interest(&s, &body.value).await?;
    Ok((StatusCode::CREATED, Json(posting)))
}

/// Daily balances of many accounts in one snapshot (a payout run's chunk), one answer per query in
/// its order, each as the single-account route answers it. Each account at most once, and no
/// query's `to` before its `from` (422).
#[utoipa::path(post, path = "/v1/ledger/daily-balances", tag = "ledger", request_body = BalancesBatch,
    responses((status = 200, body = BalancesMany)))]
async fn daily_balances_many(State(s): State<AppState>, body: Body<BalancesBatch>) -> ApiResult<Json<BalancesMany>> {
    Ok(Json(bookings::daily_balances_many(&s, &body.value).await?))
}

/// Books a payout run's chunk in one transaction: each payout is checked as a single booking is and
/// gets its own outcome (its posting, or the problem code and detail a single booking would have
/// answered, nothing written for it); a balance row held elsewhere is `ACCOUNT_BUSY`, not waited for.
/// Each account at most once, and each payout's amounts as for a single booking (422 for the
/// whole chunk otherwise).
#[utoipa::path(post, path = "/v1/ledger/interest-postings/batch", tag = "interest bookings",
    request_body = InterestPostingBatch, responses((status = 200, body = InterestPostingOutcomes)))]
async fn book_interest_many(
    State(s): State<AppState>,
    body: Body<InterestPostingBatch>,
) -> ApiResult<Json<InterestPostingOutcomes>> {
    Ok(Json(bookings::book_interest_many(&s, &body.value).await?))
}

/// Raises a payout fence before an owner commits a change to a payout input (customer,
/// account-info, interest's rates): bookings quoted at an older revision are refused from then on.
/// Only a subject's owner (or ops) may raise its fence: 403 CALLER_NOT_ALLOWED otherwise.
#[utoipa::path(post, path = "/v1/ledger/payout-fences", tag = "payout fences", request_body = PayoutFence,
    responses((status = 200, body = PayoutFence)))]
async fn raise_fence(
    State(s): State<AppState>,
    Extension(ServiceCaller(caller)): Extension<ServiceCaller>,
    body: Body<PayoutFence>,
) -> ApiResult<Json<PayoutFence>> {
    let owner = contracts::fence::owner(&body.value.subject);
    if &*caller != "ops" && owner != Some(&*caller) {
        let detail = format!("{caller} may not fence {}", body.value.subject);
        return Err(ApiError::of(Code::CallerNotAllowed, detail));
    }
    Ok(Json(ledger::raise_fence(&s, &body.value).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FencesQuery {
    /// Subjects starting with this (`account:`, `customer:`, `rates:`, `tax:`), at most 200 characters.
    #[param(max_length = 200)]
    prefix: String,
    /// The last `seq` already seen (default 0: from the first).
    after_seq: Option<i64>,
    /// Page size, 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Fences raised after `after_seq`, in raise order (owners catch their revisions up with any a
/// failed change left ahead).
#[utoipa::path(get, path = "/v1/ledger/payout-fences", tag = "payout fences", params(FencesQuery),
    responses((status = 200, body = FencePage)))]
async fn fences_after(State(s): State<AppState>, Query(q): Query<FencesQuery>) -> ApiResult<Json<FencePage>> {
    Ok(Json(ledger::fences_after(&s, &q.prefix, q.after_seq.unwrap_or(0), q.limit.unwrap_or(1000)).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct FeedQuery {
    /// The last `seq` already seen (default 0).
    after_seq: Option<i64>,
    /// Page size (default 500).
    limit: Option<i64>,
}

/// Booked interest payouts in booking order (the interest service's recovery feed).
#[utoipa::path(get, path = "/v1/ledger/interest-postings", tag = "interest bookings", params(FeedQuery),
    responses((status = 200, body = InterestPostingFeed)))]
async fn interest_feed(State(s): State<AppState>, Query(q): Query<FeedQuery>) -> ApiResult<Json<InterestPostingFeed>> {
    Ok(Json(ledger::interest_feed(&s, q.after_seq.unwrap_or(0), q.limit.unwrap_or(500)).await?))
}
