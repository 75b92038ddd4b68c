//! RFC 9457 problem responses with stable codes. Every error a handler returns becomes one of
//! these; the `code` is part of the API contract and never changes meaning.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use contracts::problem::Code;
use serde::Serialize;

pub type ApiResult<T> = Result<T, ApiError>;

/// A problem document (RFC 9457) with our stable `code`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Problem)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    /// RFC 9457's member.
    #[serde(rename = "status")]
    pub status_number: u16,
    /// The same number under the name clients of earlier versions read; kept for them.
    pub status_code: u16,
    #[schema(schema_with = codes)]
    pub code: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The resource the problem is about (e.g. the existing payout run of a 409).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Seconds after which a retry may succeed (also sent as `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

/// The `code` member: one of the table's codes (`contracts::problem`), each with one status.
fn codes() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Code::ALL.iter().map(|c| c.as_str())))
        .description(Some("Stable: never changes meaning"))
        .build()
}

impl ApiError {
    /// A problem with an explicit status: for answers given again as first given (a replayed
    /// refusal); everything else goes through [`ApiError::of`] and the code table.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            type_uri: format!("https://errors.interest-bank.example/{}", code.to_ascii_lowercase().replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status_number: status.as_u16(),
            status_code: status.as_u16(),
            code: code.to_string(),
            detail: detail.into(),
            field: None,
            instance: None,
            retry_after: None,
        }
    }

    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The problem for `code`, with the status the code table gives it (`contracts::problem`).
    /// A 503 carries `Retry-After: 1`: nothing was done, and a retry may succeed.
    pub fn of(code: Code, detail: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let e = Self::new(status, code.as_str(), detail);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            e.with_retry_after(1)
        } else {
            e
        }
    }

    /// A resource missing because the request body names it is the body's fault: 422 with the
    /// field named, instead of the code's 404 (the code stays).
    pub fn named_in(mut self, field: &str) -> Self {
        if self.status == StatusCode::NOT_FOUND {
            self.status = StatusCode::UNPROCESSABLE_ENTITY;
            self.title = self.status.canonical_reason().unwrap_or("Error").to_string();
            self.status_number = self.status.as_u16();
            self.status_code = self.status.as_u16();
        }
        self.with_field(field)
    }

    pub fn validation(field: &str, detail: impl Into<String>) -> Self {
        Self::of(Code::ValidationFailed, detail).with_field(field)
    }

    /// A dependency (database, Redis, another service) is down: retryable, nothing was done.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::of(Code::DependencyUnavailable, detail)
    }

    pub fn internal(detail: impl Into<String>) -> Self {
        Self::of(Code::Internal, detail)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status_code, self.code, self.detail)
    }
}

impl std::error::Error for ApiError {}

/// The problem code of a response, for middleware that records outcomes (the audit log).
#[derive(Debug, Clone)]
pub struct ProblemCode(pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = %self.code, detail = %self.detail, "request failed");
        }
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp.extensions_mut().insert(ProblemCode(self.code.clone()));
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        resp
    }
}

/// Database errors: connection trouble is a retryable 503; anything else is a bug, a 500. The
/// database's own words go to the log (with the request's trace), never to the caller.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry shortly")
            }
            sqlx::Error::Database(db)
                if db.code().as_deref() == Some("55P03") || db.code().as_deref() == Some("57014") =>
            {
                // lock_not_available / statement timeout: the row stayed busy for too long.
                ApiError::of(Code::AccountBusy, "the account is busy; retry shortly")
            }
            sqlx::Error::Database(db)
                if db.code().as_deref().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
            {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("the database is unavailable; retry shortly")
            }
            _ => {
                tracing::error!(error = %e, "database error");
                ApiError::internal("an unexpected database error (logged)")
            }
        }
    }
}

impl From<crate::redis::RedisError> for ApiError {
    fn from(e: crate::redis::RedisError) -> Self {
        tracing::warn!(error = %e, "redis unavailable");
        ApiError::unavailable("the cache is unavailable; retry shortly")
    }
}
