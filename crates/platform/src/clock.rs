//! The business-date clock (SPEC §2, §8). `System` is the real time in Asia/Seoul. `Manual` reads one
//! frozen Seoul date and time shared by every service from Redis, set by `PUT /v1/admin/clock` on any
//! of them; if Redis stops answering it keeps showing the last value it read.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use domain::date::{business_date_at, seoul_instant};

use crate::redis::{Redis, RedisError};

const KEY: &str = "clock:today";

#[derive(Clone)]
pub enum Clock {
    System,
    Manual { redis: Redis, last: Arc<Mutex<Option<DateTime<Utc>>>> },
}

#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("the manual clock is unreadable: {0}")]
    Redis(#[from] RedisError),
    #[error("the manual clock holds a malformed value: {0}")]
    Malformed(String),
}

impl From<ClockError> for crate::ApiError {
    fn from(e: ClockError) -> Self {
        crate::ApiError::of(contracts::problem::Code::ClockUnavailable, e.to_string())
    }
}

/// Stored as Seoul local `YYYY-MM-DD` (midnight) or `YYYY-MM-DDTHH:MM:SS`.
fn parse(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(d) = s.parse::<NaiveDate>() {
        return Some(seoul_instant(d, NaiveTime::MIN));
    }
    let local = s.parse::<NaiveDateTime>().ok()?;
    Some(seoul_instant(local.date(), local.time()))
}

impl Clock {
    pub fn manual(redis: Redis) -> Self {
        Clock::Manual { redis, last: Arc::new(Mutex::new(None)) }
    }

    /// Reads the manual clock every `every` for the life of the process, so the reading this
    /// process would put back into a Redis that lost it is at most that old — not the one from its
    /// last request (a replica idle since an older date put that date back, found with two
    /// replicas of each service). Nothing for the system clock.
    pub fn follow(&self, every: std::time::Duration) {
        if let Clock::Manual { .. } = self {
            let clock = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = clock.now().await {
                        tracing::debug!(error = %e, "manual clock not read");
                    }
                }
            });
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual { .. })
    }

    pub async fn now(&self) -> Result<DateTime<Utc>, ClockError> {
        match self {
            Clock::System => Ok(Utc::now()),
            Clock::Manual { redis, last } => {
                let read = match redis.get(KEY).await {
                    Ok(v) => v,
                    Err(e) => {
                        let known = *last.lock().unwrap_or_else(|p| p.into_inner());
                        return known.ok_or(ClockError::Redis(e));
                    }
                };
                // Until someone sets it, the manual clock shows the real time. Once this process has
                // read it, a Redis that lost it (restarted empty) gets the last reading back instead:
                // a business date never jumps to today's real date and back (found by the chaos
                // workload: postings dated in the real year, then the set year again).
                let now = match read {
                    Some(s) => parse(&s).ok_or(ClockError::Malformed(s))?,
                    None => {
                        let known = *last.lock().unwrap_or_else(|p| p.into_inner());
                        match known {
                            Some(known) => {
                                let local = known.with_timezone(&domain::date::seoul());
                                let text = local.naive_local().format("%Y-%m-%dT%H:%M:%S").to_string();
                                if !redis.set_nx(KEY, &text).await.map_err(ClockError::Redis)? {
                                    // Another process restored (or someone set) it first: theirs.
                                    let again = redis.get(KEY).await.map_err(ClockError::Redis)?;
                                    if let Some(s) = again {
                                        let now = parse(&s).ok_or(ClockError::Malformed(s))?;
                                        *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
                                        return Ok(now);
                                    }
                                }
                                tracing::warn!(clock = %text, "the manual clock was missing from Redis; restored");
                                known
                            }
                            None => Utc::now(),
                        }
                    }
                };
                *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
                Ok(now)
            }
        }
    }

    pub async fn today(&self) -> Result<NaiveDate, ClockError> {
        Ok(business_date_at(self.now().await?))
    }

    /// Sets the manual clock to a Seoul date and time; the system clock ignores it.
    pub async fn set(&self, today: NaiveDate, time: NaiveTime) -> Result<DateTime<Utc>, ClockError> {
        let now = seoul_instant(today, time);
        if let Clock::Manual { redis, last } = self {
            let value = today.and_time(time).format("%Y-%m-%dT%H:%M:%S").to_string();
            // Once more after a failure: the first command on a connection Redis dropped (a restart)
            // fails while the connection is made again, and setting the clock is idempotent.
            if redis.set(KEY, &value).await.is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                redis.set(KEY, &value).await?;
            }
            *last.lock().unwrap_or_else(|p| p.into_inner()) = Some(now);
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_are_seoul_local() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
        assert_eq!(parse("2026-11-30"), Some(seoul_instant(d, NaiveTime::MIN)));
        let t = NaiveTime::from_hms_opt(23, 59, 59).unwrap();
        assert_eq!(parse("2026-11-30T23:59:59"), Some(seoul_instant(d, t)));
        assert_eq!(business_date_at(parse("2026-11-30T23:59:59").unwrap()), d);
        assert_eq!(parse("yesterday"), None);
    }
}
