//! What the simulator's routes share, composed of what the use cases take.

use sqlx::PgPool;

use crate::payouts::Payouts;

#[derive(Clone)]
pub struct AppState {
    /// The simulator's own store, for the routes that only read or set it (the payouts it made,
    /// its deviations).
    pub pool: PgPool,
    /// The legacy core's quote and payout.
    pub payouts: Payouts,
}
