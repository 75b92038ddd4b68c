//! The audit log: every money-moving or ops request, who made it and how it ended.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use platform::problem::ProblemCode;
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::CallerSlot;

pub struct Entry<'a> {
    pub subject: &'a str,
    pub scopes: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub account_id: Option<Uuid>,
    pub request_id: &'a str,
    pub status: u16,
    pub code: Option<&'a str>,
}

/// Writes one entry of the audit log.
pub async fn insert(pool: &PgPool, e: &Entry<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_log (subject, scopes, method, route, account_id, request_id, status, code)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        e.subject,
        e.scopes,
        e.method,
        e.route,
        e.account_id,
        e.request_id,
        e.status as i16,
        e.code,
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// Audits the request after it is answered, in `pool` (the gateway's database); requests refused
/// before a caller is known (401) are not attributable and only counted in the metrics.
pub async fn record(State(pool): State<PgPool>, mut req: Request, next: Next) -> Response {
    let slot = CallerSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let account_id = req.uri().path().split('/').find_map(|seg| seg.parse::<Uuid>().ok());
    let resp = next.run(req).await;
    let caller = slot.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(caller) = caller else { return resp };
    let code = resp.extensions().get::<ProblemCode>().map(|c| c.0.clone());
    let entry = Entry {
        subject: &caller.subject,
        scopes: &caller.scopes_text(),
        method: &method,
        route: &route,
        account_id,
        request_id: &request_id,
        status: resp.status().as_u16(),
        code: code.as_deref(),
    };
    if let Err(e) = insert(&pool, &entry).await {
        metrics::counter!("gateway_audit_failures_total").increment(1);
        tracing::error!(error = %e, route, subject = caller.subject, "audit entry not written");
    }
    resp
}
