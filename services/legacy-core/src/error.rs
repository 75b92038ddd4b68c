//! The simulator's refusals and failures, rendered as problems with the shared codes.

use contracts::problem::Code;
use platform::client::ClientError;
use platform::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    #[error("{1}")]
    Refused(Code, String),
    #[error("the legacy core's business date is {ours}, not {asked}")]
    DateMismatch { ours: chrono::NaiveDate, asked: chrono::NaiveDate },
    #[error(transparent)]
    Upstream(#[from] ClientError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Clock(#[from] platform::clock::ClockError),
    #[error("{0}")]
    Inconsistent(String),
}

impl From<LegacyError> for ApiError {
    fn from(e: LegacyError) -> Self {
        match e {
            LegacyError::Refused(code, detail) => ApiError::of(code, detail),
            LegacyError::DateMismatch { .. } => ApiError::of(Code::BusinessDateMismatch, e.to_string()),
            LegacyError::Upstream(c) => match c.refusal() {
                Some(Code::AccountNotFound) => ApiError::of(Code::AccountNotFound, c.to_string()),
                _ => ApiError::unavailable(c.to_string()),
            },
            LegacyError::Database(d) => ApiError::unavailable(format!("legacy store: {d}")),
            LegacyError::Clock(c) => ApiError::of(Code::ClockUnavailable, c.to_string()),
            LegacyError::Inconsistent(d) => ApiError::internal(d),
        }
    }
}
