//! Ledger errors and their stable API codes.

use contracts::problem::Code;
use platform::client::ClientError;
use platform::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A rule refused the request (its status is the code's); nothing was written.
    #[error("{1}")]
    Refused(Code, String),
    /// A request field out of its range.
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("no account {0}")]
    AccountNotFound(uuid::Uuid),
    #[error("the same Idempotency-Key was used with a different request")]
    KeyReused,
    #[error("the account stayed busy; retry shortly")]
    Busy,
    /// An owner changed the account's or customer's state since the attempt read it (its fence
    /// is above the revision read): decided again on a fresh read.
    #[error("{0}")]
    Stale(String),
    /// A bug or broken data between services; nothing was written.
    #[error("{0}")]
    Inconsistent(String),
    /// A bug: the lines of an entry did not balance; nothing was written.
    #[error(transparent)]
    Entry(#[from] crate::journal::EntryError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Dependency(#[from] ClientError),
    #[error(transparent)]
    Clock(#[from] platform::clock::ClockError),
}

impl LedgerError {
    /// Lock-not-available, deadlock or serialization failure: worth another attempt.
    pub fn is_retryable(&self) -> bool {
        match self {
            LedgerError::Stale(_) => true,
            LedgerError::Db(sqlx::Error::Database(db)) => {
                matches!(db.code().as_deref(), Some("55P03" | "40P01" | "40001"))
            }
            _ => false,
        }
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Refused(code, detail) => ApiError::of(code, detail),
            LedgerError::Invalid(field, detail) => ApiError::validation(field, detail),
            LedgerError::AccountNotFound(id) => ApiError::of(Code::AccountNotFound, format!("no account {id}")),
            LedgerError::KeyReused => ApiError::of(Code::IdempotencyKeyReused, e.to_string()),
            LedgerError::Busy | LedgerError::Stale(_) => ApiError::of(Code::AccountBusy, e.to_string()),
            LedgerError::Inconsistent(detail) => ApiError::internal(detail),
            LedgerError::Entry(e) => ApiError::internal(e.to_string()),
            LedgerError::Db(db) => db.into(),
            LedgerError::Dependency(c) => c.into(),
            LedgerError::Clock(c) => c.into(),
        }
    }
}
