//! The gateway's own refusals and their problems.

use axum::response::{IntoResponse, Response};
use contracts::problem::Code;
use platform::client::ClientError;
use platform::ApiError;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("this route needs the scope {0}")]
    Scope(String),
    #[error("too many requests; retry later")]
    RateLimited { retry_after_secs: u64 },
    /// Unknown, or another customer's: the same answer, so existence is not leaked.
    #[error("no account {0}")]
    AccountNotFound(Uuid),
    #[error("the Idempotency-Key header is required")]
    KeyRequired,
    #[error("no such route (the clock is the system's)")]
    NoClock,
    #[error(transparent)]
    Upstream(#[from] ClientError),
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// The cause is logged; the caller learns only that it failed.
    #[error("reconciliation could not read a service; retry shortly")]
    Reconcile,
    #[error("the gateway's database did not answer; retry shortly")]
    Store,
    /// The request could not be put on record first, so nothing was done.
    #[error("the audit log is unavailable; nothing was done, retry shortly")]
    AuditUnavailable,
}

impl From<GatewayError> for ApiError {
    fn from(e: GatewayError) -> Self {
        let detail = e.to_string();
        match e {
            GatewayError::Unauthorized(_) => ApiError::of(Code::Unauthorized, detail),
            GatewayError::Scope(_) => ApiError::of(Code::InsufficientScope, detail),
            GatewayError::RateLimited { retry_after_secs } => {
                ApiError::of(Code::RateLimited, detail).with_retry_after(retry_after_secs)
            }
            GatewayError::AccountNotFound(_) => ApiError::of(Code::AccountNotFound, detail),
            GatewayError::KeyRequired => ApiError::of(Code::IdempotencyKeyRequired, detail),
            GatewayError::NoClock => ApiError::of(Code::RouteNotFound, detail),
            GatewayError::Upstream(c) => c.into(),
            GatewayError::Invalid { field, detail } => ApiError::validation(field, detail),
            GatewayError::Reconcile | GatewayError::Store | GatewayError::AuditUnavailable => {
                ApiError::unavailable(detail)
            }
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        ApiError::from(self).into_response()
    }
}

pub type GatewayResult<T> = Result<T, GatewayError>;
