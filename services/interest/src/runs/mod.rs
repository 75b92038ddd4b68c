//! Payout runs (issue 8): today's payout over every account (the monthly run) or over a list (batch
//! callers). Every account is paid as the on-demand use case pays it (`payout::pay`, or the same
//! pieces batched for a chunk: `chunk`) with the key `run:<run>:<account>`, so a resumed or
//! retried run replays instead of paying twice, and an account the customer already paid today is
//! skipped. Runs live in the database (`store`, its plan tests in `store_plans`): any replica
//! enumerates a page or claims a chunk of items (SKIP LOCKED, with a lease another replica takes
//! over after a crash). A bounded number of payouts per replica are in flight, so on-demand payouts
//! keep their share of accounting. The routes start, cancel and read runs (`control`); the workers
//! pay them (`worker`), following the gateway's rollout (`rollout`). Names `payout`, `reference`
//! and `migration` (a sample of a run's payouts goes to the shadow comparisons).

mod chunk;
mod control;
mod rollout;
mod settings;
mod store;
mod worker;

use std::sync::Arc;

use peers::directory::Directory;
use platform::clock::Clock;
use platform::redis::Redis;
use platform::runtime::Infra;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::migration::Shadow;
use crate::payout::Payouts;
use crate::reference::Reference;

pub use control::{cancel, list, report, start};
pub use settings::RunSettings;
pub use worker::worker;

/// What the run use cases and workers need; its fields are theirs alone.
#[derive(Clone)]
pub struct Runs {
    /// This service's database: runs and their items.
    pool: PgPool,
    /// The business date a run pays on, and ends with.
    clock: Clock,
    /// Accounts and customers: the listing of every account, a chunk's accounts and their owners
    /// read at once (shared with payouts).
    directory: Directory,
    /// The ledger: a chunk's balances read, and its payouts booked, in one call each.
    ledger: Arc<dyn peers::Ledger>,
    /// Redis, where the tax rules' revision (once a chunk) and the gateway's rollout policy are read.
    redis: Option<Redis>,
    /// The tax rules and rate tables a chunk's quotes are computed from.
    reference: Reference,
    /// The on-demand payout, and the pieces a chunk books and records with.
    payouts: Payouts,
    /// Shadow comparisons with the legacy core, offered a sample of the runs' payouts (when it is
    /// configured).
    shadow: Option<Shadow>,
    /// Wakes the workers when a run starts.
    wake: Arc<Notify>,
    /// The gateway's rollout policy as this replica last read it, which the workers follow.
    rollout: Arc<rollout::Follower>,
}

impl Runs {
    pub fn new(
        infra: &Infra,
        directory: Directory,
        ledger: Arc<dyn peers::Ledger>,
        reference: Reference,
        payouts: Payouts,
        shadow: Option<Shadow>,
    ) -> Self {
        Self {
            pool: infra.pool.clone(),
            clock: infra.clock.clone(),
            directory,
            ledger,
            redis: infra.redis.clone(),
            reference,
            payouts,
            shadow,
            wake: Arc::new(Notify::new()),
            rollout: Arc::default(),
        }
    }
}
