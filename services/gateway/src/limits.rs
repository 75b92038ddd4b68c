//! Abuse limits, shared by every gateway replica: each limit is a GCRA bucket in Redis, checked and
//! advanced in one Lua call, so N replicas allow the rate once, not N times. Kinds: estimates and
//! payouts per customer, ops requests per subject, and every request per client address before
//! its token is even read. Redis unreachable: each replica falls back to its own in-memory bucket
//! of the same quota (limits stay on, at most N× while Redis is down) — refusing every payout
//! because the limiter's store is down would turn a cache outage into a bank outage.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use platform::redis::Redis;
use redis::Script;

use crate::error::{GatewayError, GatewayResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Estimate,
    Payout,
    Ops,
    Address,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Estimate => "estimate",
            Kind::Payout => "payout",
            Kind::Ops => "ops",
            Kind::Address => "address",
        }
    }
}

/// Per minute, bursts up to the same number.
#[derive(Clone, Copy, Debug)]
pub struct Quotas {
    pub estimates: NonZeroU32,
    pub payouts: NonZeroU32,
    pub ops: NonZeroU32,
    pub per_address: NonZeroU32,
}

impl Quotas {
    fn of(&self, kind: Kind) -> NonZeroU32 {
        match kind {
            Kind::Estimate => self.estimates,
            Kind::Payout => self.payouts,
            Kind::Ops => self.ops,
            Kind::Address => self.per_address,
        }
    }
}

/// GCRA: the key holds the theoretical arrival time (ms, Redis's clock). A request is let through
/// if the bucket's new arrival time stays within the burst window of now. Returns {1, 0} or
/// {0, ms to wait}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allowed_at = next_tat - window
if allowed_at > now then
  return {0, allowed_at - now}
end
redis.call('SET', KEYS[1], next_tat, 'PX', math.max(1, next_tat - now))
return {1, 0}
";

pub struct Limits {
    quotas: Quotas,
    redis: Option<Redis>,
    script: Script,
    /// The fallback while Redis does not answer, one per kind.
    local: Vec<(Kind, DefaultKeyedRateLimiter<String>)>,
    clock: DefaultClock,
}

impl Limits {
    pub fn new(quotas: Quotas, redis: Option<Redis>) -> Self {
        let local = [Kind::Estimate, Kind::Payout, Kind::Ops, Kind::Address]
            .into_iter()
            .map(|k| (k, RateLimiter::keyed(Quota::per_minute(quotas.of(k)))))
            .collect();
        Self { quotas, redis, script: Script::new(GCRA), local, clock: DefaultClock::default() }
    }

    /// One request of `kind` by `who`: let through, or 429 with when to retry.
    pub async fn check(&self, kind: Kind, who: &str) -> GatewayResult<()> {
        let per_minute = u64::from(self.quotas.of(kind).get());
        let interval_ms = (60_000 / per_minute).max(1);
        if let Some(redis) = &self.redis {
            let key = redis.key(&format!("limit:{}:{who}", kind.as_str()));
            let mut conn = redis.conn();
            let mut invocation = self.script.key(key);
            invocation.arg(interval_ms).arg(interval_ms * per_minute);
            match tokio::time::timeout(Duration::from_millis(500), invocation.invoke_async(&mut conn)).await {
                Ok(Ok((1, _))) => return Ok(()),
                Ok(Ok((_, wait_ms))) => return Err(limited(Duration::from_millis(wait_ms))),
                Ok(Err::<(i64, u64), _>(e)) => tracing::warn!(error = %e, "rate limits: Redis failed; per replica"),
                Err(_) => tracing::warn!("rate limits: Redis timed out; per replica"),
            }
            metrics::counter!("gateway_rate_limit_fallbacks_total").increment(1);
        }
        let Some((_, limiter)) = self.local.iter().find(|(k, _)| *k == kind) else { return Ok(()) };
        limiter.check_key(&who.to_string()).map_err(|not_until| limited(not_until.wait_time_from(self.clock.now())))
    }
}

fn limited(wait: Duration) -> GatewayError {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    metrics::counter!("gateway_rate_limited_total").increment(1);
    GatewayError::RateLimited { retry_after_secs: secs.max(1) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn quotas(n: u32) -> Quotas {
        let n = NonZeroU32::new(n).unwrap();
        Quotas { estimates: n, payouts: NonZeroU32::new(2).unwrap(), ops: n, per_address: n }
    }

    async fn redis() -> Redis {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        Redis::connect(&url, &format!("limits-test-{}", uuid::Uuid::new_v4())).await.unwrap()
    }

    #[tokio::test]
    async fn two_replicas_sharing_redis_allow_the_rate_once() {
        let redis = redis().await;
        let (one, two) = (Limits::new(quotas(5), Some(redis.clone())), Limits::new(quotas(5), Some(redis)));
        let a = uuid::Uuid::new_v4().to_string();
        assert!(one.check(Kind::Payout, &a).await.is_ok());
        assert!(two.check(Kind::Payout, &a).await.is_ok());
        let refused = platform::ApiError::from(one.check(Kind::Payout, &a).await.unwrap_err());
        assert_eq!((refused.status.as_u16(), refused.code.as_str()), (429, "RATE_LIMITED"));
        assert!(refused.retry_after.is_some_and(|s| (1..=30).contains(&s)), "{:?}", refused.retry_after);
        assert!(two.check(Kind::Payout, &a).await.is_err(), "the other replica sees the same bucket");
        let b = uuid::Uuid::new_v4().to_string();
        assert!(two.check(Kind::Payout, &b).await.is_ok(), "another customer has a bucket of its own");
        assert!(one.check(Kind::Estimate, &a).await.is_ok(), "estimates have their own bucket");
    }

    #[tokio::test]
    async fn without_redis_each_replica_still_limits() {
        // Nothing listens on port 1: every call fails, the local bucket decides.
        let unreachable = Redis::connect("redis://127.0.0.1:1", "x").await;
        let limits = Limits::new(quotas(5), unreachable.ok());
        let a = "someone";
        assert!(limits.check(Kind::Payout, a).await.is_ok());
        assert!(limits.check(Kind::Payout, a).await.is_ok());
        assert!(limits.check(Kind::Payout, a).await.is_err());
    }
}
