//! What the ledger's use cases share.

use std::sync::Arc;
use std::time::Duration;

use peers::directory::Directory;
use platform::clock::Clock;
use platform::revision::Publisher;
use sqlx::PgPool;

use crate::booking_queue::BookingQueue;

/// Cloned for every request (axum's `State`), so it is one reference count (see the interest
/// service's `AppState`: cloning each shared handle per request showed in its profile).
pub type AppState = Arc<Shared>;

pub struct Shared {
    pub pool: PgPool,
    pub clock: Clock,
    /// Accounts and their customers as their owners answer them (cached, revision-checked): what
    /// a movement is decided on, verified against the owners' fences under the row lock.
    pub directory: Directory,
    pub revisions: Publisher,
    /// How long one attempt waits for a busy balance row before backing off.
    pub lock_timeout: Duration,
    /// Total time a request keeps retrying a busy row before answering 503 ACCOUNT_BUSY.
    pub lock_budget: Duration,
    /// On-demand interest bookings, batched.
    pub bookings: BookingQueue,
}
