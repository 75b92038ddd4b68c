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

/// An item's state: one account of a run. Stored as the same text in `payout_run_items.state` and
/// `payout_run_counts.state` ([`ItemState::as_str`], [`ItemState::parse`]: the one mapping; the
/// statements name `'PENDING'` literally only where a partial index must match it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    /// Not finished: unclaimed, claimed by a worker, or waiting for a retry.
    Pending,
    /// Booked: the item carries its payout and amounts.
    Paid,
    /// Refused for a business reason (the refusal code is the item's reason).
    Skipped,
    /// Not paid for good (an unknown account, the date ended, attempts exhausted).
    Failed,
}

impl ItemState {
    const ALL: [ItemState; 4] = [ItemState::Pending, ItemState::Paid, ItemState::Skipped, ItemState::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "PENDING",
            ItemState::Paid => "PAID",
            ItemState::Skipped => "SKIPPED",
            ItemState::Failed => "FAILED",
        }
    }

    pub fn parse(s: &str) -> Option<ItemState> {
        ItemState::ALL.into_iter().find(|i| i.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::ItemState;
    use contracts::RunState;

    #[test]
    fn states_map_to_the_text_stored_and_back() {
        for s in ItemState::ALL {
            assert_eq!(ItemState::parse(s.as_str()), Some(s));
        }
        for s in RunState::ALL {
            assert_eq!(RunState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str(), "the API says what the database holds");
        }
        assert_eq!(ItemState::parse("paid"), None);
        assert_eq!(RunState::parse(""), None);
    }
}
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
