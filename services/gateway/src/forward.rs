//! Passing a request to a service and its answer back as it came (status, problem body,
//! `Retry-After`), with the request id and `Idempotency-Key` carried along.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use platform::client::ServiceClient;
use platform::problem::ProblemCode;
use reqwest::Method;

use crate::error::GatewayResult;

/// Request headers a service needs from the original request.
const CARRIED: [&str; 2] = ["idempotency-key", "x-request-id"];

pub async fn forward(
    to: &ServiceClient,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &HeaderMap,
) -> GatewayResult<Response> {
    forward_with(to, method, path, body, headers, &[]).await
}

/// [`forward`] with headers the gateway itself sets (e.g. `x-actor`: who the verified caller is).
pub async fn forward_with(
    to: &ServiceClient,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    headers: &HeaderMap,
    own: &[(&str, &str)],
) -> GatewayResult<Response> {
    let mut carried: Vec<(&str, &str)> = CARRIED
        .iter()
        .filter_map(|name| headers.get(*name).and_then(|v| v.to_str().ok()).map(|v| (*name, v)))
        .collect();
    carried.extend_from_slice(own);
    let raw = to.forward(method, path, body.filter(|b| !b.is_empty()), &carried).await?;
    let status = StatusCode::from_u16(raw.status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let code = (!status.is_success())
        .then(|| serde_json::from_slice::<serde_json::Value>(&raw.body).ok())
        .flatten()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string));
    let mut resp = (status, raw.body).into_response();
    if let Some(ct) = raw.content_type.and_then(|v| HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if let Some(ra) = raw.retry_after.and_then(|v| HeaderValue::from_str(&v).ok()) {
        resp.headers_mut().insert(header::RETRY_AFTER, ra);
    }
    if let Some(code) = code {
        resp.extensions_mut().insert(ProblemCode(code));
    }
    Ok(resp)
}
