//! What account-info's use cases share.

use std::sync::Arc;

use platform::clock::Clock;
use platform::revision::Publisher;
use sqlx::PgPool;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    pub customers: Arc<dyn peers::Customers>,
    pub products: Arc<dyn peers::Products>,
    /// The ledger, whose payout fence each status or holds change raises before it commits.
    pub ledger: Arc<dyn peers::Ledger>,
    pub revisions: Publisher,
}
