//! What the routes share: each capability's state, composed. The workers are given their own
//! capability's state in `build` instead (the outbox's, the runs', the reference data's catch-ups).

use std::sync::Arc;

use crate::migration::Migration;
use crate::payout::Payouts;
use crate::reference::Reference;
use crate::runs::Runs;

/// Cloned for every request (axum's `State`), so it is one reference count: the capabilities'
/// states hold dozens of shared handles between them (a profile of warm estimates found their
/// clone and drop at ~8% of the service's CPU).
pub type AppState = Arc<Capabilities>;

pub struct Capabilities {
    /// Products, rate schedules and tax rules: their routes, and the in-process products peer.
    pub(crate) reference: Reference,
    /// Estimates, payouts and the recorded payouts' reads.
    pub(crate) payouts: Payouts,
    /// Starting, cancelling and reading payout runs (the same state as the run workers').
    pub(crate) runs: Runs,
    /// The legacy core's estimates and payouts, the shadow comparisons the routes offer their
    /// answers to, and the mismatches they found.
    pub(crate) migration: Migration,
}
