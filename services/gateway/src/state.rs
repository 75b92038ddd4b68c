//! What the gateway's routes share.

use std::sync::Arc;

use platform::client::ServiceClient;
use sqlx::PgPool;

use crate::auth::Verifier;
use crate::limits::Limits;

/// The five services, each behind the platform client (timeouts, breaker, trace context).
#[derive(Clone)]
pub struct Upstreams {
    pub customer: ServiceClient,
    pub account_info: ServiceClient,
    pub accounting: ServiceClient,
    pub interest: ServiceClient,
    pub tax: ServiceClient,
}

#[derive(Clone)]
pub struct AppState {
    /// The gateway's own database: the audit log.
    pub pool: PgPool,
    pub verifier: Arc<Verifier>,
    pub upstreams: Upstreams,
    pub limits: Arc<Limits>,
    /// Whether the manual clock's ops route exists (`CLOCK_MODE=manual`).
    pub clock_manual: bool,
    /// Reconciliation reads three services' listings directly (with the service credential).
    pub reconcile: Arc<(reqwest::Client, reconcile::Urls)>,
    /// Which side serves each customer's estimates and payouts.
    pub rollout: Arc<crate::rollout::Rollout>,
}
