//! Per-customer abuse limits on estimates and payouts (token buckets per customer, in memory: each
//! gateway replica limits on its own, so N replicas allow up to N times the rate).

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::error::{GatewayError, GatewayResult};

pub struct Limits {
    estimates: DefaultKeyedRateLimiter<Uuid>,
    payouts: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
}

#[derive(Clone, Copy)]
pub enum Kind {
    Estimate,
    Payout,
}

impl Limits {
    /// `per_minute` of each kind per customer, bursts up to the same number.
    pub fn new(estimates_per_minute: NonZeroU32, payouts_per_minute: NonZeroU32) -> Self {
        Self {
            estimates: RateLimiter::keyed(Quota::per_minute(estimates_per_minute)),
            payouts: RateLimiter::keyed(Quota::per_minute(payouts_per_minute)),
            clock: DefaultClock::default(),
        }
    }

    pub fn check(&self, kind: Kind, customer: Uuid) -> GatewayResult<()> {
        let limiter = match kind {
            Kind::Estimate => &self.estimates,
            Kind::Payout => &self.payouts,
        };
        limiter.check_key(&customer).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            GatewayError::RateLimited { retry_after_secs: secs.max(1) }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn each_customer_has_a_bucket_of_its_own() {
        let limits = Limits::new(NonZeroU32::new(5).unwrap(), NonZeroU32::new(2).unwrap());
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(limits.check(Kind::Payout, a).is_ok());
        assert!(limits.check(Kind::Payout, a).is_ok());
        let refused = platform::ApiError::from(limits.check(Kind::Payout, a).unwrap_err());
        assert_eq!((refused.status.as_u16(), refused.code.as_str()), (429, "RATE_LIMITED"));
        assert!(refused.retry_after.is_some_and(|s| s >= 1));
        assert!(limits.check(Kind::Payout, b).is_ok(), "another customer is not limited by a's requests");
        assert!(limits.check(Kind::Estimate, a).is_ok(), "estimates have their own bucket");
    }
}
