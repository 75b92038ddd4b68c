//! What the interest service's use cases and workers share.

use std::sync::Arc;
use std::time::Duration;

use peers::directory::Directory;
use platform::clock::Clock;
use platform::redis::Redis;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::estimate_cache;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    /// Redis for the payout lock (`None` when PAYOUT_REDIS_LOCK=false).
    pub redis: Option<Redis>,
    /// Redis for the estimate cache.
    pub redis_cache: Option<Redis>,
    pub directory: Directory,
    pub ledger: Arc<dyn peers::Ledger>,
    pub flights: estimate_cache::Flights,
    /// Products, rate schedules and tax rules, and the copies kept in process.
    pub reference: crate::reference::Reference,
    /// Wakes the payout-run workers when a run starts.
    pub run_wake: Arc<Notify>,
    /// Wakes the outbox relay right after a payout is recorded.
    pub outbox_wake: Arc<Notify>,
    pub lock_lease: Duration,
    pub lock_wait: Duration,
    /// Test-only (`PAYOUT_PAUSE_BEFORE_BOOKING_MS`, 0 = off): a pause between a payout's quote and
    /// its booking, so tests can commit changes inside that window.
    pub pause_before_booking: Duration,
    /// The legacy core (`LEGACY_CORE_URL`), for the customers the rollout keeps there.
    pub legacy: Option<crate::legacy::LegacyCore>,
    /// Shadow comparisons of answers with the legacy core's (when it is configured).
    pub shadow: Option<crate::shadow::Shadow>,
    /// The gateway's rollout policy, which payout runs follow.
    pub rollout: Arc<crate::rollout::Follower>,
}
