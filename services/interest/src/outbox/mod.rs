//! The tax-event outbox: every recorded payout row is also its tax event, waiting to be published.
//! The relay publishes them to Kafka (`relay`), the recovery worker records from the ledger's
//! payout feed whatever was booked but is missing here (`recovery`, with its SQL in `store`), and
//! the relay's backlog is measured on its own (`backlog`). Workers only, no use case of a route;
//! names `payout` for the rows' SQL (a payout's taxes, inserting a recovered payout).

mod backlog;
mod recovery;
mod relay;
mod store;

use std::sync::Arc;

use platform::runtime::Infra;
use sqlx::PgPool;
use tokio::sync::Notify;

pub use backlog::watch_backlog;
pub use recovery::recover_from_ledger;
pub use relay::relay;

/// Payouts claimed, and feed postings read, at a time.
const BATCH: i64 = 500;

/// What the outbox workers need; its fields are theirs alone.
#[derive(Clone)]
pub struct Outbox {
    /// This service's database: the payouts (their tax events' publication marks) and the ledger
    /// feed's cursor.
    pool: PgPool,
    /// The ledger, whose payout feed the recovery worker reads.
    ledger: Arc<dyn peers::Ledger>,
    /// Woken when payouts are recorded (by a payout, a run's chunk or the recovery worker), so the
    /// relay publishes at once instead of at its next sweep.
    wake: Arc<Notify>,
}

impl Outbox {
    pub fn new(infra: &Infra, ledger: Arc<dyn peers::Ledger>, wake: Arc<Notify>) -> Self {
        Self { pool: infra.pool.clone(), ledger, wake }
    }
}
