//! The audit log: who asked for what, written before the request is acted on; how it ended,
//! appended once it is answered. Both tables are append-only (migration 0003).

use sqlx::PgPool;
use uuid::Uuid;

/// A request as audited before it is forwarded.
pub struct Entry<'a> {
    pub subject: &'a str,
    pub scopes: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub account_id: Option<Uuid>,
    /// The gateway's own id of the request (a client's is kept apart).
    pub request_id: &'a str,
    pub client_request_id: Option<&'a str>,
    /// SHA-256 of the method, the path with its query, and the body.
    pub request_digest: &'a str,
}

/// Writes an entry: of a request about to be forwarded (`answer` none: its outcome is appended by
/// [`answered`]), or of one refused before anything was done, with its answer. Its id is the
/// outcome's.
pub async fn record(pool: &PgPool, e: &Entry<'_>, answer: Option<(u16, &str)>) -> Result<i64, sqlx::Error> {
    let (status, code) = answer.map_or((None, None), |(status, code)| (Some(status as i16), Some(code)));
    sqlx::query_scalar!(
        "INSERT INTO audit_log (subject, scopes, method, route, account_id, request_id, client_request_id,
                                request_digest, status, code)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        e.subject,
        e.scopes,
        e.method,
        e.route,
        e.account_id,
        e.request_id,
        e.client_request_id,
        e.request_digest,
        status,
        code,
    )
    .fetch_one(pool)
    .await
}

/// Appends how an intended request ended.
pub async fn answered(pool: &PgPool, audit_id: i64, status: u16, code: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO audit_outcomes (audit_id, status, code) VALUES ($1, $2, $3)",
        audit_id,
        status as i16,
        code
    )
    .execute(pool)
    .await
    .map(|_| ())
}
