//! The business-date clock (SPEC §2, §8). `System` is Asia/Seoul today. `Manual` reads one date
//! shared by every service from Redis, set by `PUT /v1/admin/clock` on any of them.

use chrono::{NaiveDate, Utc};

use crate::redis::{Redis, RedisError};

const KEY: &str = "clock:today";

#[derive(Clone)]
pub enum Clock {
    System,
    Manual(Redis),
}

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("the manual clock is unreadable: {0}")]
    Redis(#[from] RedisError),
    #[error("the manual clock holds a malformed date: {0}")]
    Malformed(String),
}

impl From<ClockError> for crate::ApiError {
    fn from(e: ClockError) -> Self {
        crate::ApiError::unavailable(e.to_string())
    }
}

impl Clock {
    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }

    pub async fn today(&self) -> Result<NaiveDate, ClockError> {
        match self {
            Clock::System => Ok(domain::date::business_date_at(Utc::now())),
            Clock::Manual(redis) => match redis.get(KEY).await? {
                Some(s) => s.parse().map_err(|_| ClockError::Malformed(s)),
                // Until someone sets it, the manual clock shows the real date.
                None => Ok(domain::date::business_date_at(Utc::now())),
            },
        }
    }

    pub async fn set(&self, today: NaiveDate) -> Result<(), ClockError> {
        match self {
            Clock::System => Ok(()),
            Clock::Manual(redis) => Ok(redis.set(KEY, &today.to_string()).await?),
        }
    }
}
