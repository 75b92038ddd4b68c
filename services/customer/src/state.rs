//! What the customer service's use cases share.

use std::sync::Arc;

use platform::revision::Publisher;
use sqlx::PgPool;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub revisions: Publisher,
    /// The ledger, whose payout fence each change raises before it commits.
    pub ledger: Arc<dyn peers::Ledger>,
}
