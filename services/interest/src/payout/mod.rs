//! Estimates and payouts (SPEC §3–§7; docs/payout-design.md for the crash-safety argument): the
//! evaluation of an account's unpaid period (`evaluate`), the estimate and its cache in Redis
//! (`estimate`, `estimate_cache`), "get interest now" (`pay`: replay by key, the Redis lock, the
//! ledger's booking, the record with its tax event, refusals kept against their key), the reads of
//! recorded payouts (`history`) and their SQL (`store`). Names only `reference` (rate tables and
//! tax rules); runs, the legacy core's adapter and the outbox build on it.

mod estimate;
mod estimate_cache;
mod evaluate;
mod history;
mod pay;
mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use peers::directory::Directory;
use platform::clock::Clock;
use platform::redis::Redis;
use platform::runtime::Infra;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::reference::Reference;

pub(crate) use estimate::estimate;
pub(crate) use evaluate::{assessment, status_refusal, Evaluation};
pub(crate) use history::{answered, history, last_payouts, payouts_between};
pub(crate) use pay::{before_booking, count_paid, kept_answer, pay, posting_request, record_booked};
pub(crate) use store::{amounts, insert_payout, payout_from_posting};

/// How payouts take the Redis lock, and the test-only pause before booking (from `Config`).
pub struct PayoutSettings {
    /// `PAYOUT_REDIS_LOCK`: false leaves replicas to the ledger's guard alone.
    pub use_redis_lock: bool,
    pub lock_lease: Duration,
    pub lock_wait: Duration,
    pub pause_before_booking: Duration,
}

/// What the estimate and payout use cases need; its fields are theirs alone. Cheap to clone: runs
/// hold a clone and pay through it, the legacy core's adapter replays kept answers through it.
#[derive(Clone)]
pub struct Payouts {
    /// This service's database: recorded payouts (each also its tax event's outbox entry) and the
    /// refusals kept against their keys.
    pool: PgPool,
    /// The business date a payout is made on and an estimate is for.
    clock: Clock,
    /// Redis for the payout lock and the paid markers it looks for (`None` when
    /// PAYOUT_REDIS_LOCK=false: the ledger's guard alone).
    redis: Option<Redis>,
    /// Redis for the estimate cache (the day's entries and the revisions read with them).
    redis_cache: Option<Redis>,
    /// Accounts and customers (cached, revision-checked), shared with runs.
    directory: Directory,
    /// The ledger: the period's balances, and the booking (the payout's one durable commit).
    ledger: Arc<dyn peers::Ledger>,
    /// The product's rate table and the tax rules a quote is computed from.
    reference: Reference,
    /// One estimate computation per account and day at a time in this process.
    flights: estimate_cache::Flights,
    /// How long the payout lock is held at most, and how long a payout waits for it.
    lock_lease: Duration,
    lock_wait: Duration,
    /// Test-only (`PAYOUT_PAUSE_BEFORE_BOOKING_MS`, 0 = off): a pause between a payout's quote and
    /// its booking, so tests can commit changes inside that window.
    pause_before_booking: Duration,
    /// Wakes the outbox relay right after a payout is recorded (the relay waits on the same one).
    outbox_wake: Arc<Notify>,
}

impl Payouts {
    pub fn new(
        infra: &Infra,
        directory: Directory,
        ledger: Arc<dyn peers::Ledger>,
        reference: Reference,
        settings: PayoutSettings,
        outbox_wake: Arc<Notify>,
    ) -> Self {
        Self {
            pool: infra.pool.clone(),
            clock: infra.clock.clone(),
            redis: if settings.use_redis_lock { infra.redis.clone() } else { None },
            redis_cache: infra.redis.clone(),
            directory,
            ledger,
            reference,
            flights: estimate_cache::Flights::default(),
            lock_lease: settings.lock_lease,
            lock_wait: settings.lock_wait,
            pause_before_booking: settings.pause_before_booking,
            outbox_wake,
        }
    }
}

/// Time spent in one stage of a payout (`interest_payout_stage_seconds{stage}`: `replay_lookup`,
/// `lock`, `directory`, `quote_cached` or `quote_computed`, `booking`, `record`, `unlock`), so
/// the milliseconds of a payout can be followed to where they go.
fn stage(name: &'static str, since: Instant) {
    metrics::histogram!("interest_payout_stage_seconds", "stage" => name).record(since.elapsed().as_secs_f64());
}
