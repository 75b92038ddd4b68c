//! What the simulator's routes share.

use platform::clock::Clock;
use sqlx::PgPool;

use crate::payouts::Feeds;

#[derive(Clone)]
pub struct AppState {
    /// The simulator's own store.
    pub pool: PgPool,
    /// The bank's business date (the manual clock in tests and demos).
    pub clock: Clock,
    pub feeds: Feeds,
}
