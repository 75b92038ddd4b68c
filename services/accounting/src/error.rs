//! Ledger errors and their stable API codes.

use axum::http::StatusCode;
use platform::client::ClientError;
use platform::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A business rule refused the request; nothing was written.
    #[error("{1}")]
    Refused(&'static str, String),
    /// The request conflicts with what the ledger already holds.
    #[error("{1}")]
    Conflict(&'static str, String),
    /// A request field out of its range.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("no account {0}")]
    AccountNotFound(uuid::Uuid),
    #[error("the same Idempotency-Key was used with a different request")]
    KeyReused,
    #[error("the account stayed busy; retry shortly")]
    Busy,
    /// A bug: the lines of an entry did not balance; nothing was written.
    #[error(transparent)]
    Entry(#[from] crate::journal::EntryError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Dependency(#[from] ClientError),
}

impl LedgerError {
    /// Lock-not-available, deadlock or serialization failure: worth another attempt.
    pub fn is_retryable(&self) -> bool {
        matches!(self, LedgerError::Db(sqlx::Error::Database(db))
            if matches!(db.code().as_deref(), Some("55P03" | "40P01" | "40001")))
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Refused(code, detail) => ApiError::unprocessable(code, detail),
            LedgerError::Conflict(code, detail) => ApiError::conflict(code, detail),
            LedgerError::Invalid(field, detail) => ApiError::validation(field, detail),
            LedgerError::AccountNotFound(id) => ApiError::not_found("ACCOUNT_NOT_FOUND", format!("no account {id}")),
            LedgerError::KeyReused => ApiError::unprocessable("IDEMPOTENCY_KEY_REUSED", e.to_string()),
            LedgerError::Busy => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ACCOUNT_BUSY", e.to_string()).with_retry_after(1)
            }
            LedgerError::Entry(e) => ApiError::internal(e.to_string()),
            LedgerError::Db(db) => db.into(),
            LedgerError::Dependency(c) => c.into(),
        }
    }
}
