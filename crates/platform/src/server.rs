//! HTTP server bootstrap shared by every service: `/health/live`, `/health/ready`, `/metrics`,
//! `/openapi.json`, the manual clock's `/v1/admin/clock`, request ids, tracing spans joined to the
//! caller's W3C context, problem responses for unknown routes and panics, and graceful shutdown.

use contracts::problem::Code;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::clock::Clock;
use crate::credential::{self, CredentialError, Grant, ServiceCaller, Trust};
use crate::problem::ApiError;

/// Largest request body accepted; larger ones get a 413 problem.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest body of a route that takes a batch (a payout run's 100,000 account ids, a chunk of
/// 1,000 bookings), given to those routes alone with [`batch_body_limit`].
pub const MAX_BATCH_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The body limit of a batch route (inside the service-wide one, so it wins for that route).
pub fn batch_body_limit() -> DefaultBodyLimit {
    DefaultBodyLimit::max(MAX_BATCH_BODY_BYTES)
}

pub type ReadinessCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Wraps an async check for readiness.
pub fn check<F, Fut>(f: F) -> ReadinessCheck
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(f()))
}

pub struct Platform {
    pub service: &'static str,
    /// The service's own operations (from its router); the platform adds its own.
    pub openapi: utoipa::openapi::OpenApi,
    pub clock: Clock,
    pub checks: Vec<(&'static str, ReadinessCheck)>,
    /// Who may call: every route but health needs a service credential (see
    /// [`crate::credential`]) whose caller a grant lets through — except a public service's own
    /// routes and API document (the gateway's, whose callers prove who they are with their own
    /// tokens).
    pub access: Access,
}

/// The callers a service trusts and what each may call.
#[derive(Clone)]
pub struct Access {
    pub trust: Arc<Trust>,
    pub grants: &'static [Grant],
    /// The gateway: its own routes and document are open here (it checks its callers itself); its
    /// metrics still need a service credential.
    pub public: bool,
}

/// Where a public service keeps the request id its client sent (its own id is the server's).
pub const CLIENT_REQUEST_ID: &str = "x-client-request-id";

/// What every trusted caller may read of any service: its metrics and its API document.
const PLATFORM_GRANTS: [&str; 2] = ["/metrics", "/openapi.json"];

fn is_health(path: &str) -> bool {
    path == "/health/live" || path == "/health/ready"
}

/// Authenticates before routing, so an unknown route is 401 to a stranger, not 404: the caller's
/// service credential (`Authorization: Bearer`, for this service) is verified and its caller left
/// in the request for [`authorize`]. Health probes (the orchestrator's) pass.
async fn authenticate(service: &'static str, access: Access, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    // The gateway's own routes and its API document are public; its metrics are not.
    let internal_route = path == "/metrics" || path.starts_with("/v1/admin/");
    if is_health(path) || (access.public && !internal_route) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let verified = match presented {
        Some(token) => access.trust.verify(token.trim(), service),
        None => Err(CredentialError::Missing),
    };
    match verified {
        Ok(caller) => {
            req.extensions_mut().insert(ServiceCaller(caller));
            next.run(req).await
        }
        Err(e) => {
            metrics::counter!("http_server_unauthenticated_total").increment(1);
            ApiError::of(Code::Unauthorized, format!("an internal service: {e}")).into_response()
        }
    }
}

/// Lets an authenticated caller through to a route only if a grant names it (403
/// CALLER_NOT_ALLOWED otherwise).
async fn authorize(grants: &'static [Grant], req: Request, next: Next) -> Response {
    let Some(ServiceCaller(caller)) = req.extensions().get::<ServiceCaller>().cloned() else {
        // Health, or a public service's own route: nothing to check here.
        return next.run(req).await;
    };
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str()).unwrap_or_default();
    // HEAD is served by a GET route (axum), so it is granted as that GET.
    let method = if req.method() == axum::http::Method::HEAD { "GET" } else { req.method().as_str() };
    let everyone = PLATFORM_GRANTS.contains(&route) && method == "GET";
    if everyone || credential::allowed(grants, &caller, method, route) {
        return next.run(req).await;
    }
    metrics::counter!("http_server_forbidden_total", "caller" => caller.to_string()).increment(1);
    ApiError::of(Code::CallerNotAllowed, format!("{caller} may not call {method} {route}")).into_response()
}

#[derive(Clone)]
struct PlatformState {
    service: &'static str,
    openapi: Arc<str>,
    clock: Clock,
    checks: Arc<Vec<(&'static str, ReadinessCheck)>>,
}

/// One Prometheus recorder per process (tests run several services in one process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Histograms as buckets (not per-process quantiles), so p99 can be aggregated across
            // replicas in PromQL (`histogram_quantile`).
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets(&[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0])
                    .unwrap_or_else(|_| PrometheusBuilder::new())
            };
            builder().install_recorder().unwrap_or_else(|_| builder().build_recorder().handle())
        })
        .clone()
}

/// Adds the platform routes and layers around a service's own routes.
pub fn app(service_routes: Router, platform: Platform) -> Router {
    let _ = metrics_handle();
    let mut own = OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi));
    if platform.clock.is_manual() {
        own = own.routes(routes!(get_clock, set_clock));
    }
    let (own, documented) = own.split_for_parts();
    let state = PlatformState {
        service: platform.service,
        openapi: crate::openapi::served(platform.openapi, documented).into(),
        clock: platform.clock.clone(),
        checks: Arc::new(platform.checks),
    };
    let own = own.with_state(state);
    let service = platform.service;
    let access = platform.access;
    let grants = access.grants;
    let public = access.public;
    service_routes
        .merge(own)
        .route_layer(middleware::from_fn(move |req, next| authorize(grants, req, next)))
        .fallback(|| async { ApiError::of(Code::RouteNotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::of(Code::MethodNotAllowed, "method not allowed on this route")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(move |req, next| authenticate(service, access.clone(), req, next)))
        .layer(middleware::from_fn(move |req, next| record_metrics(service, req, next)))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("unexpected failure").into_response()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |req: &Request| {
                    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str()).unwrap_or("unmatched");
                    // OpenTelemetry's HTTP server conventions; `trace_id` puts the trace in every log line.
                    let span = tracing::info_span!(
                        "http.request",
                        "otel.name" = %format!("{} {route}", req.method()),
                        "otel.kind" = "server",
                        service,
                        "http.request.method" = %req.method(),
                        "http.route" = route,
                        "url.path" = %req.uri().path(),
                        "http.response.status_code" = tracing::field::Empty,
                        request_id,
                        trace_id = tracing::field::Empty,
                    );
                    // A public caller's trace context is its claim, not ours to join: the gateway
                    // starts its own trace (internal callers are authenticated services).
                    if !public {
                        crate::telemetry::set_parent_from(
                            &span,
                            req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
                        );
                    }
                    span.record("trace_id", crate::telemetry::trace_id(&span));
                    span
                })
                .on_response(|resp: &Response, latency: Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", resp.status().as_u16());
                    tracing::debug!(
                        status = resp.status().as_u16(),
                        latency_ms = latency.as_millis() as u64,
                        "answered"
                    );
                }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::map_request(move |req| own_request_id(public, req)))
}

/// A public service's request ids are its own: a client's `X-Request-Id` is kept apart (as
/// [`CLIENT_REQUEST_ID`]), so logs, traces and the audit name requests by ids the client cannot
/// choose or collide.
async fn own_request_id(public: bool, mut req: Request) -> Request {
    if public {
        if let Some(theirs) = req.headers_mut().remove("x-request-id") {
            req.headers_mut().insert(CLIENT_REQUEST_ID, theirs);
        }
    }
    req
}

/// `service` in the labels: services sharing a process (`bank`) share one registry.
async fn record_metrics(service: &'static str, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route =
        req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("http_server_requests_total", "service" => service, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_server_request_duration_seconds", "service" => service, "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// A health answer: `ok` (alive) or `ready`, and which service answered.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    status: &'static str,
    service: &'static str,
}

/// Liveness: the process answers (no dependency is checked).
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
async fn live(State(s): State<PlatformState>) -> Json<Health> {
    Json(Health { status: "ok", service: s.service })
}

/// Readiness: the database and, where used, Redis and Kafka answer (503 NOT_READY names which
/// do not).
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Health)))]
async fn ready(State(s): State<PlatformState>) -> Response {
    let mut failures = serde_json::Map::new();
    for (name, check) in s.checks.iter() {
        let outcome = tokio::time::timeout(Duration::from_secs(2), check()).await;
        match outcome {
            Ok(Ok(())) => {}
            // Which dependency is down, not its words (addresses, drivers' messages): those are
            // logged. The probe is open to anyone who reaches the port.
            Ok(Err(e)) => {
                tracing::warn!(check = name, error = %e, "not ready");
                failures.insert((*name).into(), "unavailable".into());
            }
            Err(_) => {
                tracing::warn!(check = name, "not ready: the check timed out");
                failures.insert((*name).into(), "timed out".into());
            }
        }
    }
    if failures.is_empty() {
        Json(Health { status: "ready", service: s.service }).into_response()
    } else {
        ApiError::of(Code::NotReady, serde_json::Value::Object(failures).to_string()).into_response()
    }
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics_text() -> Response {
    let mut resp = metrics_handle().render().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    resp
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, content_type = "application/json", body = Object)))]
async fn openapi(State(s): State<PlatformState>) -> Response {
    let mut resp = s.openapi.to_string().into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn clock_body(now: chrono::DateTime<chrono::Utc>) -> contracts::Clock {
    let local = now.with_timezone(&domain::date::seoul());
    contracts::Clock { today: local.date_naive(), time: local.time(), mode: "manual".into() }
}

/// The shared business clock: Seoul date and time (only with `CLOCK_MODE=manual`).
#[utoipa::path(get, path = "/v1/admin/clock", tag = "clock", responses((status = 200, body = contracts::Clock)))]
async fn get_clock(State(s): State<PlatformState>) -> Result<Json<contracts::Clock>, ApiError> {
    Ok(Json(clock_body(s.clock.now().await?)))
}

/// Sets the shared, frozen Seoul date and time (only with `CLOCK_MODE=manual`).
#[utoipa::path(put, path = "/v1/admin/clock", tag = "clock", request_body = contracts::SetClock, responses((status = 200, body = contracts::Clock)))]
async fn set_clock(
    State(s): State<PlatformState>,
    body: crate::extract::Json<contracts::SetClock>,
) -> Result<Json<contracts::Clock>, ApiError> {
    let now = s.clock.set(body.value.today, body.value.time.unwrap_or_default()).await?;
    Ok(Json(clock_body(now)))
}

pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
