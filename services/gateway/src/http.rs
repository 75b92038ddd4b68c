//! The gateway's routes: the channel's `/v1/me/…` (a customer's own accounts only) and ops'
//! `/v1/ops/…` (each with its scope). Every money-moving or ops request is audited.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use contracts::problem::Code;
use contracts::Account;
use platform::extract::{Path, Query};
use reqwest::Method;
use serde::Deserialize;
use uuid::Uuid;

use crate::audit;
use crate::auth::{Caller, Scope};
use crate::error::{GatewayError, GatewayResult};
use crate::forward::forward;
use crate::limits::Kind;
use crate::state::{AppState, Upstreams};
use platform::client::ServiceClient;

const READ: &[Scope] = &[Scope::OpsRead, Scope::OpsWrite];
const WRITE: &[Scope] = &[Scope::OpsWrite];
const RUNS: &[Scope] = &[Scope::OpsWrite, Scope::Batch];
const RUNS_READ: &[Scope] = &[Scope::OpsRead, Scope::OpsWrite, Scope::Batch];

pub fn routes(state: AppState) -> Router {
    let audited = Router::new()
        .route("/v1/me/accounts/{id}/payouts", post(pay).get(history))
        .route(
            "/v1/ops/payout-runs",
            pass(Method::POST, RUNS, interest, "/v1/interest/payout-runs").merge(pass(
                Method::GET,
                RUNS_READ,
                interest,
                "/v1/interest/payout-runs",
            )),
        )
        .route("/v1/ops/payout-runs/{id}", get(read_run))
        .route("/v1/ops/payout-runs/{id}/cancel", post(cancel_run))
        .route("/v1/ops/payouts", pass(Method::GET, READ, interest, "/v1/interest/payouts"))
        .route("/v1/ops/dead-letters", pass(Method::GET, READ, tax, "/v1/tax/dead-letters"))
        .route("/v1/ops/dead-letters/replay", pass(Method::POST, WRITE, tax, "/v1/tax/dead-letters/replay"))
        .route("/v1/ops/tax/withholdings", pass(Method::GET, READ, tax, "/v1/tax/withholdings"))
        .route("/v1/ops/tax/reports/monthly", pass(Method::GET, READ, tax, "/v1/tax/reports/monthly"))
        .route("/v1/ops/clock", get(read_clock).put(set_clock))
        .route("/v1/ops/reconcile", get(reconcile_range))
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::record));
    Router::new()
        .route("/v1/me/accounts", get(my_accounts))
        .route("/v1/me/accounts/{id}", get(my_account))
        .route("/v1/me/accounts/{id}/interest", get(estimate))
        .merge(audited)
        .with_state(state)
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

#[derive(Deserialize)]
struct PageQuery {
    after: Option<Uuid>,
    limit: Option<u16>,
}

async fn my_accounts(State(s): State<AppState>, caller: Caller, Query(q): Query<PageQuery>) -> GatewayResult<Response> {
    let me = caller.customer()?;
    let mut path = format!("/v1/accounts?customer_id={me}&limit={}", q.limit.unwrap_or(100).clamp(1, 1000));
    if let Some(a) = q.after {
        path.push_str(&format!("&after={a}"));
    }
    forward(&s.upstreams.account_info, Method::GET, &path, None, &HeaderMap::new()).await
}

async fn my_account(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> GatewayResult<axum::Json<Account>> {
    Ok(axum::Json(own_account(&s, caller.customer()?, id).await?))
}

async fn estimate(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> GatewayResult<Response> {
    let me = caller.customer()?;
    s.limits.check(Kind::Estimate, me)?;
    own_account(&s, me, id).await?;
    forward(&s.upstreams.interest, Method::GET, &format!("/v1/interest/accounts/{id}"), None, &headers).await
}

/// "Get interest now" for one of my accounts (`Idempotency-Key` required, passed on).
async fn pay(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> GatewayResult<Response> {
    let me = caller.customer()?;
    s.limits.check(Kind::Payout, me)?;
    if !headers.contains_key("idempotency-key") {
        return Err(GatewayError::KeyRequired);
    }
    own_account(&s, me, id).await?;
    forward(&s.upstreams.interest, Method::POST, &format!("/v1/interest/accounts/{id}/payouts"), None, &headers).await
}

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

/// An ops route passed through as it is (query string and body included) to `path` of the
/// service `to` picks, for callers with any of `scopes`.
fn pass(
    method: Method,
    scopes: &'static [Scope],
    to: fn(&Upstreams) -> &ServiceClient,
    path: &'static str,
) -> MethodRouter<AppState> {
    let is_post = method == Method::POST;
    let handler = move |State(s): State<AppState>, caller: Caller, RawQuery(q): RawQuery, h: HeaderMap, body: Bytes| {
        let method = method.clone();
        async move {
            caller.require(scopes)?;
            let body = (method == Method::POST).then(|| body.to_vec());
            forward(to(&s.upstreams), method, &with_query(path, q), body, &h).await
        }
    };
    if is_post {
        post(handler)
    } else {
        get(handler)
    }
}

fn with_query(path: &str, q: Option<String>) -> String {
    match q {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

async fn read_run(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> GatewayResult<Response> {
    caller.require(RUNS_READ)?;
    forward(&s.upstreams.interest, Method::GET, &format!("/v1/interest/payout-runs/{id}"), None, &headers).await
}

async fn cancel_run(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    h: HeaderMap,
) -> GatewayResult<Response> {
    caller.require(RUNS)?;
    forward(&s.upstreams.interest, Method::POST, &format!("/v1/interest/payout-runs/{id}/cancel"), None, &h).await
}

#[derive(Deserialize)]
struct RangeQuery {
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
}

/// Interest payouts, ledger postings and withholding records of business dates `from..=to`
/// compared (at most 31 days per request: it reads every item of the range).
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
    let report =
        reconcile::reconcile(http, urls, q.from, q.to).await.map_err(|e| GatewayError::Reconcile(e.to_string()))?;
    Ok(axum::Json(report))
}

/// The manual clock exists only with `CLOCK_MODE=manual`; otherwise the route is not there.
fn clock_route(s: &AppState) -> GatewayResult<()> {
    if s.clock_manual {
        Ok(())
    } else {
        Err(GatewayError::NoClock)
    }
}

async fn read_clock(State(s): State<AppState>, caller: Caller, headers: HeaderMap) -> GatewayResult<Response> {
    clock_route(&s)?;
    caller.require(READ)?;
    forward(&s.upstreams.interest, Method::GET, "/v1/admin/clock", None, &headers).await
}

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
