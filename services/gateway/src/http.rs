//! The gateway's routes: the channel's `/v1/me/…` (a customer's own accounts only) and ops'
//! `/v1/ops/…` (each with its scope). Every money-moving or ops request is audited.

use axum::body::Bytes;
use axum::extract::{FromRequest, RawQuery, State};
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::Response;
use axum::Router;
use contracts::problem::Code;
use contracts::{
    Account, AccountPage, Clock, DeadLetters, Estimate, MonthlyReport, Payout, PayoutPage, PayoutRun, PayoutRuns,
    Payouts, ReplayDeadLetters, ReplayOutcome, ScheduleTaxRule, SetClock, StartPayoutRun, TaxRulesView, Withholdings,
};
use platform::extract::{IdempotencyKey, Path, Query};
use reqwest::Method;
use serde::Deserialize;
use utoipa::openapi::OpenApi;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Caller, Scope};
use crate::error::{GatewayError, GatewayResult};
use crate::forward::{forward, forward_with};
use crate::guard::{self, READ, RUNS, RUNS_READ, WRITE};
use crate::limits::Kind;
use crate::rollout;
use crate::state::{AppState, Upstreams};
use contracts::legacy::{RolloutPolicy, RolloutRoute, SetRollout, ShadowMismatches, Side};
use platform::client::ServiceClient;

/// The routes and their OpenAPI description, from the same annotations (with what the schemas
/// cannot show by their types: `contracts::openapi::whole_truth`). Every route is behind the
/// guard (token, scope, limits, audit first); every request is first limited per client address;
/// no answer may be cached.
pub fn routes(state: AppState) -> (Router, OpenApi) {
    let (router, doc) = api();
    let router = router
        .route_layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(middleware::from_fn_with_state(state.clone(), guard::per_address))
        .layer(middleware::from_fn(guard::no_store))
        .with_state(state);
    (router, contracts::openapi::whole_truth(doc))
}

/// The document alone (no state needed), as [`routes`] serves it.
#[cfg(test)]
pub fn document() -> OpenApi {
    contracts::openapi::whole_truth(api().1)
}

fn api() -> (Router<AppState>, OpenApi) {
    let doc = platform::openapi::public(
        "Gateway",
        "The public entry for the mobile channel (`/v1/me/…`, scope customer), ops (`/v1/ops/…`, scopes \
         ops:read and ops:write) and batch jobs (payout runs, scope batch). Every route needs a bearer token: \
         401 UNAUTHORIZED without a valid one, 403 INSUFFICIENT_SCOPE without the route's scope; another \
         customer's account is 404; estimates and payouts are rate limited per customer, ops requests per \
         caller and every request per client address (429 RATE_LIMITED with Retry-After). Money-moving and \
         ops requests are audited before they are acted on (503 if the audit log cannot be written).",
    );
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(my_accounts))
        .routes(routes!(my_account))
        .routes(routes!(estimate))
        .routes(routes!(pay, history))
        .merge(OpenApiRouter::new().routes(routes!(start_run, list_runs)).layer(platform::server::batch_body_limit()))
        .routes(routes!(read_run))
        .routes(routes!(cancel_run))
        .routes(routes!(payouts))
        .routes(routes!(dead_letters))
        .routes(routes!(replay_dead_letters))
        .routes(routes!(withholdings))
        .routes(routes!(monthly_report))
        .routes(routes!(read_clock, set_clock))
        .routes(routes!(reconcile_range))
        // Up to 10,000 customer ids in each list: more than the service-wide body limit.
        .merge(
            OpenApiRouter::new().routes(routes!(read_rollout, set_rollout)).layer(platform::server::batch_body_limit()),
        )
        .routes(routes!(rollout_changes))
        .routes(routes!(rollout_route))
        .routes(routes!(shadow_mismatches))
        .routes(routes!(tax_rules, schedule_tax_rule))
        .split_for_parts()
}

/// The account, if it is the caller's; another customer's account does not exist for them (404,
/// as for an unknown one), so existence is never leaked.
async fn own_account(s: &AppState, me: Uuid, id: Uuid) -> GatewayResult<Account> {
    match s.upstreams.account_info.get::<Account>(&format!("/v1/accounts/{id}")).await {
        Ok(a) if a.customer_id == me => Ok(a),
        Ok(_) => Err(GatewayError::AccountNotFound(id)),
        Err(e) if e.refusal() == Some(Code::AccountNotFound) => Err(GatewayError::AccountNotFound(id)),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// The `next_after` of the previous page.
    after: Option<Uuid>,
    /// Page size (default 100): a larger one reads as 1000, 0 as 1.
    #[param(minimum = 0, maximum = 65_535)]
    limit: Option<u16>,
}

/// My accounts.
#[utoipa::path(get, path = "/v1/me/accounts", tag = "me", params(PageQuery), security(("bearer" = ["customer"])),
    responses((status = 200, body = AccountPage)))]
async fn my_accounts(State(s): State<AppState>, caller: Caller, Query(q): Query<PageQuery>) -> GatewayResult<Response> {
    let me = caller.customer()?;
    let mut path = format!("/v1/accounts?customer_id={me}&limit={}", q.limit.unwrap_or(100).clamp(1, 1000));
    if let Some(a) = q.after {
        path.push_str(&format!("&after={a}"));
    }
    forward(&s.upstreams.account_info, Method::GET, &path, None, &HeaderMap::new()).await
}

/// One of my accounts (another customer's is 404, as an unknown one).
#[utoipa::path(get, path = "/v1/me/accounts/{id}", tag = "me", params(("id" = Uuid, Path)),
    security(("bearer" = ["customer"])), responses((status = 200, body = Account)))]
async fn my_account(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> GatewayResult<axum::Json<Account>> {
    Ok(axum::Json(own_account(&s, caller.customer()?, id).await?))
}

/// The interest payable now on one of my accounts (rate limited per customer).
#[utoipa::path(get, path = "/v1/me/accounts/{id}/interest", tag = "me", params(("id" = Uuid, Path)),
    security(("bearer" = ["customer"])), responses((status = 200, body = Estimate)))]
async fn estimate(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> GatewayResult<Response> {
    let me = caller.customer()?;
    s.limits.check(Kind::Estimate, &me.to_string()).await?;
    own_account(&s, me, id).await?;
    let side = rollout::route(&s.rollout.policy(&s.pool).await, me).side;
    let path = match side {
        Side::New => format!("/v1/interest/accounts/{id}"),
        Side::Legacy => format!("/v1/interest/legacy/accounts/{id}"),
    };
    served(side, "estimate", forward(&s.upstreams.interest, Method::GET, &path, None, &headers)).await
}

/// An estimate or payout forwarded to the side that serves the customer: counted and timed per
/// side (`rollout_requests_total{side,kind,outcome}`, `rollout_request_duration_seconds`), the side
/// named in `X-Served-By`.
async fn served(
    side: Side,
    kind: &'static str,
    answer: impl std::future::Future<Output = GatewayResult<Response>>,
) -> GatewayResult<Response> {
    let started = std::time::Instant::now();
    let answer = answer.await;
    let outcome = match &answer {
        Ok(r) if r.status().is_success() => "ok",
        Ok(r) if r.status().is_client_error() => "refused",
        _ => "error",
    };
    let labels = [("side", side.as_str()), ("kind", kind)];
    metrics::counter!("rollout_requests_total", &[("side", side.as_str()), ("kind", kind), ("outcome", outcome)])
        .increment(1);
    metrics::histogram!("rollout_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    let mut resp = answer?;
    resp.headers_mut().insert("x-served-by", axum::http::HeaderValue::from_static(side.as_str()));
    Ok(resp)
}

/// "Get interest now" on one of my accounts: at most once per account and business date
/// (`Idempotency-Key` required, passed on; rate limited per customer; audited). Whether it pays is the
/// account's state, not the request's: 422 NOTHING_TO_PAY while less than 1 won has accrued, 409
/// ALREADY_PAID_TODAY, 403 while the customer is restricted, the account not active or deposits
/// suspended.
#[utoipa::path(post, path = "/v1/me/accounts/{id}/payouts", tag = "me", params(("id" = Uuid, Path), IdempotencyKey),
    security(("bearer" = ["customer"])), responses((status = 201, body = Payout)))]
async fn pay(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> GatewayResult<Response> {
    let me = caller.customer()?;
    s.limits.check(Kind::Payout, &me.to_string()).await?;
    if !headers.contains_key("idempotency-key") {
        return Err(GatewayError::KeyRequired);
    }
    own_account(&s, me, id).await?;
    let side = rollout::route(&s.rollout.policy(&s.pool).await, me).side;
    let path = match side {
        Side::New => format!("/v1/interest/accounts/{id}/payouts"),
        Side::Legacy => format!("/v1/interest/legacy/accounts/{id}/payouts"),
    };
    served(side, "payout", forward(&s.upstreams.interest, Method::POST, &path, None, &headers)).await
}

/// My payouts on the account, newest first.
#[utoipa::path(get, path = "/v1/me/accounts/{id}/payouts", tag = "me", params(("id" = Uuid, Path)),
    security(("bearer" = ["customer"])), responses((status = 200, body = Payouts)))]
async fn history(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> GatewayResult<Response> {
    let me = caller.customer()?;
    own_account(&s, me, id).await?;
    forward(&s.upstreams.interest, Method::GET, &format!("/v1/interest/accounts/{id}/payouts"), None, &headers).await
}

fn interest(u: &Upstreams) -> &ServiceClient {
    &u.interest
}

fn tax(u: &Upstreams) -> &ServiceClient {
    &u.tax
}

/// What an ops route passes on as it came: the query string, the headers, the body.
#[derive(FromRequest)]
struct Passed {
    query: RawQuery,
    headers: HeaderMap,
    body: Bytes,
}

/// An ops route passed through to `path` of the service `to` picks, for callers with any of
/// `scopes`; the body only with a POST.
async fn pass(
    s: &AppState,
    caller: Caller,
    scopes: &[Scope],
    to: fn(&Upstreams) -> &ServiceClient,
    method: Method,
    path: &str,
    Passed { query: RawQuery(q), headers, body }: Passed,
) -> GatewayResult<Response> {
    caller.require(scopes)?;
    let body = (method == Method::POST).then(|| body.to_vec());
    forward(to(&s.upstreams), method, &with_query(path, q), body, &headers).await
}

/// Starts today's payout run (or resumes the same cancelled one; 202): a `business_date` other than
/// today's is refused (422). Audited.
#[utoipa::path(post, path = "/v1/ops/payout-runs", tag = "ops", request_body = StartPayoutRun,
    security(("bearer" = ["ops:write"]), ("bearer" = ["batch"])), responses((status = 202, body = PayoutRun)))]
async fn start_run(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, RUNS, interest, Method::POST, "/v1/interest/payout-runs", p).await
}

/// The latest payout runs, newest first.
#[utoipa::path(get, path = "/v1/ops/payout-runs", tag = "ops", params(contracts::PayoutRunsQuery),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"]), ("bearer" = ["batch"])),
    responses((status = 200, body = PayoutRuns)))]
async fn list_runs(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, RUNS_READ, interest, Method::GET, "/v1/interest/payout-runs", p).await
}

/// Recorded payouts with a business date in `from..=to`, keyset-paged by payout id.
#[utoipa::path(get, path = "/v1/ops/payouts", tag = "ops", params(contracts::PayoutsQuery),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = PayoutPage)))]
async fn payouts(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, READ, interest, Method::GET, "/v1/interest/payouts", p).await
}

/// Dead letters of the tax pipeline, with their replay history.
#[utoipa::path(get, path = "/v1/ops/dead-letters", tag = "ops", params(contracts::DeadLettersQuery),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = DeadLetters)))]
async fn dead_letters(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, READ, tax, Method::GET, "/v1/tax/dead-letters", p).await
}

/// Replays dead letters (idempotent). Audited.
#[utoipa::path(post, path = "/v1/ops/dead-letters/replay", tag = "ops", request_body = ReplayDeadLetters,
    security(("bearer" = ["ops:write"])), responses((status = 200, body = ReplayOutcome)))]
async fn replay_dead_letters(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    caller.require(WRITE)?;
    // Recorded under the token's subject, whatever the body claims.
    let own = [("x-actor", caller.subject.as_str())];
    let path = "/v1/tax/dead-letters/replay";
    forward_with(&s.upstreams.tax, Method::POST, path, Some(p.body.to_vec()), &p.headers, &own).await
}

/// Withholding records, keyset-paged by payout id.
#[utoipa::path(get, path = "/v1/ops/tax/withholdings", tag = "ops", params(contracts::WithholdingsQuery),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = Withholdings)))]
async fn withholdings(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, READ, tax, Method::GET, "/v1/tax/withholdings", p).await
}

/// The monthly remittance report.
#[utoipa::path(get, path = "/v1/ops/tax/reports/monthly", tag = "ops", params(contracts::MonthlyReportQuery),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = MonthlyReport)))]
async fn monthly_report(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, READ, tax, Method::GET, "/v1/tax/reports/monthly", p).await
}

fn with_query(path: &str, q: Option<String>) -> String {
    match q {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// Follows a payout run: state, counts, totals, progress.
#[utoipa::path(get, path = "/v1/ops/payout-runs/{id}", tag = "ops", params(("id" = Uuid, Path)),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"]), ("bearer" = ["batch"])),
    responses((status = 200, body = PayoutRun)))]
async fn read_run(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> GatewayResult<Response> {
    caller.require(RUNS_READ)?;
    forward(&s.upstreams.interest, Method::GET, &format!("/v1/interest/payout-runs/{id}"), None, &headers).await
}

/// Cancels a running run (idempotent; 409 RUN_FINISHED once it ended). Audited.
#[utoipa::path(post, path = "/v1/ops/payout-runs/{id}/cancel", tag = "ops", params(("id" = Uuid, Path)),
    security(("bearer" = ["ops:write"]), ("bearer" = ["batch"])), responses((status = 200, body = PayoutRun)))]
async fn cancel_run(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    h: HeaderMap,
) -> GatewayResult<Response> {
    caller.require(RUNS)?;
    forward(&s.upstreams.interest, Method::POST, &format!("/v1/interest/payout-runs/{id}/cancel"), None, &h).await
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
}

/// Interest payouts, ledger postings and withholding records of business dates `from..=to`
/// compared: `to` not before `from`, at most 31 days per request (it reads every item of the
/// range; 422 otherwise).
#[utoipa::path(get, path = "/v1/ops/reconcile", tag = "ops", params(RangeQuery),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = reconcile::Report)))]
async fn reconcile_range(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<RangeQuery>,
) -> GatewayResult<axum::Json<reconcile::Report>> {
    caller.require(READ)?;
    if q.to < q.from || (q.to - q.from).num_days() > 30 {
        let detail = "to must be on or after from, at most 31 days in all".to_string();
        return Err(GatewayError::Invalid { field: "to", detail });
    }
    let (http, urls) = &*s.reconcile;
    let signer = s.signer.clone();
    let credential = move |audience: &str| signer.token_for(audience).ok().map(|t| t.to_string());
    let sources = reconcile::Sources { http, urls, credential: &credential };
    let report = reconcile::reconcile(sources, q.from, q.to).await.map_err(|e| {
        tracing::error!(error = %e, "reconciliation could not read a service");
        GatewayError::Reconcile
    })?;
    Ok(axum::Json(report))
}

/// The rollout policy between the legacy core and the new system.
#[utoipa::path(get, path = "/v1/ops/rollout", tag = "rollout", security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])),
    responses((status = 200, body = RolloutPolicy)))]
async fn read_rollout(State(s): State<AppState>, caller: Caller) -> GatewayResult<axum::Json<RolloutPolicy>> {
    caller.require(READ)?;
    let policy = rollout::load(&s.pool).await.map_err(store_failed)?;
    Ok(axum::Json(policy))
}

/// Changes the rollout policy (no restart; every replica follows within `ROLLOUT_REFRESH_MS`).
/// `kill_switch: true` sends everyone back to the legacy core. Audited, and kept as a version.
#[utoipa::path(put, path = "/v1/ops/rollout", tag = "rollout", request_body = SetRollout,
    security(("bearer" = ["ops:write"])), responses((status = 200, body = RolloutPolicy)))]
async fn set_rollout(
    State(s): State<AppState>,
    caller: Caller,
    body: platform::extract::Json<SetRollout>,
) -> GatewayResult<axum::Json<RolloutPolicy>> {
    caller.require(WRITE)?;
    let set = body.value;
    if set.percent > 100 {
        return Err(GatewayError::Invalid { field: "percent", detail: "percent must be 0 to 100".into() });
    }
    if set.team.len() > 10_000 || set.staff.len() > 10_000 {
        return Err(GatewayError::Invalid { field: "team", detail: "at most 10,000 ids per list".into() });
    }
    if set.reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(GatewayError::Invalid { field: "reason", detail: "at most 500 characters".into() });
    }
    let policy = rollout::change(&s.pool, &set, &caller.subject).await.map_err(store_failed)?;
    s.rollout.adopt(policy.clone());
    // Payout runs follow it from Redis (the other replicas republish it within their refresh too).
    s.rollout.publish(&policy).await;
    tracing::warn!(
        version = policy.version,
        percent = policy.percent,
        kill_switch = policy.kill_switch,
        team = policy.team.len(),
        staff = policy.staff.len(),
        by = caller.subject,
        "rollout policy changed"
    );
    Ok(axum::Json(policy))
}

/// The rollout policy's versions, newest first (at most 100).
#[utoipa::path(get, path = "/v1/ops/rollout/changes", tag = "rollout",
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = Vec<RolloutPolicy>)))]
async fn rollout_changes(State(s): State<AppState>, caller: Caller) -> GatewayResult<axum::Json<Vec<RolloutPolicy>>> {
    caller.require(READ)?;
    let changes = rollout::changes(&s.pool, 100).await.map_err(store_failed)?;
    Ok(axum::Json(changes))
}

/// Where the current policy sends a customer, and why.
#[utoipa::path(get, path = "/v1/ops/rollout/customers/{id}", tag = "rollout", params(("id" = Uuid, Path)),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = RolloutRoute)))]
async fn rollout_route(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> GatewayResult<axum::Json<RolloutRoute>> {
    caller.require(READ)?;
    let policy = rollout::load(&s.pool).await.map_err(store_failed)?;
    Ok(axum::Json(rollout::route(&policy, id)))
}

/// Shadow comparisons with the legacy core that found a difference, newest first.
#[utoipa::path(get, path = "/v1/ops/shadow-mismatches", tag = "rollout", params(contracts::legacy::ShadowMismatchesQuery),
    security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])), responses((status = 200, body = ShadowMismatches)))]
async fn shadow_mismatches(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, READ, interest, Method::GET, "/v1/interest/shadow-mismatches", p).await
}

/// The gateway's database failed: logged, answered without its words.
fn store_failed(e: impl std::fmt::Display) -> GatewayError {
    tracing::error!(error = %e, "the gateway's database failed");
    GatewayError::Store
}

/// The manual clock exists only with `CLOCK_MODE=manual`; otherwise the route is not there.
fn clock_route(s: &AppState) -> GatewayResult<()> {
    if s.clock_manual {
        Ok(())
    } else {
        Err(GatewayError::NoClock)
    }
}

/// The manual clock (only with `CLOCK_MODE=manual`; 404 otherwise).
#[utoipa::path(get, path = "/v1/ops/clock", tag = "ops", security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])),
    responses((status = 200, body = Clock)))]
async fn read_clock(State(s): State<AppState>, caller: Caller, headers: HeaderMap) -> GatewayResult<Response> {
    clock_route(&s)?;
    caller.require(READ)?;
    forward(&s.upstreams.interest, Method::GET, "/v1/admin/clock", None, &headers).await
}

/// Moves the manual clock (only with `CLOCK_MODE=manual`; 404 otherwise). Audited.
#[utoipa::path(put, path = "/v1/ops/clock", tag = "ops", request_body = SetClock, security(("bearer" = ["ops:write"])),
    responses((status = 200, body = Clock)))]
async fn set_clock(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> GatewayResult<Response> {
    clock_route(&s)?;
    caller.require(WRITE)?;
    forward(&s.upstreams.interest, Method::PUT, "/v1/admin/clock", Some(body.to_vec()), &headers).await
}

/// Every tax rule and the rules' revision (each category's withholding by effective date).
#[utoipa::path(get, path = "/v1/ops/tax-rules", tag = "ops", security(("bearer" = ["ops:read"]), ("bearer" = ["ops:write"])),
    responses((status = 200, body = TaxRulesView)))]
async fn tax_rules(State(s): State<AppState>, caller: Caller, p: Passed) -> GatewayResult<Response> {
    pass(&s, caller, READ, interest, Method::GET, "/v1/interest/tax-rules", p).await
}

/// Schedules a tax category's withholding from a future business date (a law change): refused for
/// a date not after today and for components that name one twice, take as base one not before
/// them or together withhold more than the gross (422), a date the category has a rule for (409
/// TAX_RULE_EXISTS) or a date a booked payout of the category has (409
/// TAX_RULE_AFFECTS_PAID_PERIOD). Audited; the caller is kept with the rule.
#[utoipa::path(post, path = "/v1/ops/tax-rules", tag = "ops", request_body = ScheduleTaxRule,
    security(("bearer" = ["ops:write"])), responses((status = 201, body = TaxRulesView)))]
async fn schedule_tax_rule(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> GatewayResult<Response> {
    caller.require(WRITE)?;
    let own = [("x-actor", caller.subject.as_str())];
    forward_with(&s.upstreams.interest, Method::POST, "/v1/interest/tax-rules", Some(body.to_vec()), &headers, &own)
        .await
}
