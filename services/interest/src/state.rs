//! What the interest service's use cases and workers share.

use std::sync::Arc;

use peers::directory::Directory;
use platform::clock::Clock;
use platform::redis::Redis;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::migration::Migration;
use crate::payout::Payouts;
use crate::reference::Reference;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    /// Redis for the estimate cache.
    pub redis_cache: Option<Redis>,
    pub directory: Directory,
    pub ledger: Arc<dyn peers::Ledger>,
    /// Products, rate schedules and tax rules, and the copies kept in process.
    pub reference: Reference,
    /// Estimates and payouts.
    pub payouts: Payouts,
    /// The legacy core and the shadow comparisons with it.
    pub migration: Migration,
    /// Wakes the payout-run workers when a run starts.
    pub run_wake: Arc<Notify>,
    /// The gateway's rollout policy, which payout runs follow.
    pub rollout: Arc<crate::rollout::Follower>,
}
