//! Interest errors and their stable API codes.

use axum::http::StatusCode;
use contracts::problem::Code;
use domain::Refusal;
use peers::directory::LookupError;
use platform::client::ClientError;
use platform::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum InterestError {
    /// SPEC §5: the payout is refused; nothing was written.
    #[error("{}", .0.detail())]
    Refused(Refusal),
    #[error("no account {0}")]
    AccountNotFound(uuid::Uuid),
    #[error("no product {0}")]
    ProductNotFound(String),
    /// A rule of this service refused the request (its status is the code's).
    #[error("{1}")]
    Rule(Code, String),
    #[error("a run for that business date and scope exists: {0}")]
    RunExists(uuid::Uuid),
    #[error("no payout run {0}")]
    RunNotFound(uuid::Uuid),
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("the same Idempotency-Key was used with a different request")]
    KeyReused,
    /// The first answer to this Idempotency-Key was a refusal; it is given again.
    #[error("{detail}")]
    Replayed { status: u16, code: String, detail: String },
    /// The payout's inputs changed between quote and booking on every attempt; nothing was paid.
    #[error("the payout's inputs kept changing while it was booked; retry: {0}")]
    QuoteStale(String),
    #[error("{0}")]
    Inconsistent(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Dependency(#[from] ClientError),
    #[error(transparent)]
    Clock(#[from] platform::clock::ClockError),
}

impl From<LookupError> for InterestError {
    fn from(e: LookupError) -> Self {
        match e {
            LookupError::AccountNotFound(id) => InterestError::AccountNotFound(id),
            LookupError::CustomerNotFound(id) => InterestError::Inconsistent(format!("the owner {id} does not exist")),
            LookupError::Dependency(c) => InterestError::Dependency(c),
        }
    }
}

impl From<InterestError> for ApiError {
    fn from(e: InterestError) -> Self {
        match e {
            InterestError::Refused(r) => ApiError::of(Code::from(&r), r.detail()),
            InterestError::AccountNotFound(id) => ApiError::of(Code::AccountNotFound, format!("no account {id}")),
            InterestError::ProductNotFound(c) => ApiError::of(Code::ProductNotFound, format!("no product {c}")),
            InterestError::Rule(Code::PayoutInProgress, detail) => {
                ApiError::of(Code::PayoutInProgress, detail).with_retry_after(1)
            }
            InterestError::Rule(code, detail) => ApiError::of(code, detail),
            InterestError::RunExists(id) => {
                ApiError::of(Code::RunExists, e.to_string()).with_instance(format!("/v1/interest/payout-runs/{id}"))
            }
            InterestError::RunNotFound(id) => ApiError::of(Code::RunNotFound, format!("no payout run {id}")),
            InterestError::Invalid { field, detail } => ApiError::validation(&field, detail),
            InterestError::KeyReused => ApiError::of(Code::IdempotencyKeyReused, e.to_string()),
            // Given again exactly as first answered (the table may have changed since).
            InterestError::Replayed { status, code, detail } => {
                ApiError::new(StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT), &code, detail)
            }
            InterestError::QuoteStale(_) => ApiError::of(Code::QuoteStale, e.to_string()).with_retry_after(1),
            InterestError::Inconsistent(d) => ApiError::internal(d),
            InterestError::Db(db) => db.into(),
            InterestError::Dependency(c) => c.into(),
            InterestError::Clock(c) => c.into(),
        }
    }
}
