//! What the gateway's routes share, composed of what each module's use cases take: the audit
//! its database, a route's `Caller` the verifier (through `FromRef`), the rollout its policy.

use std::sync::Arc;

use axum::extract::FromRef;
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
    /// The gateway's own database: the audit log (the audit middleware's state) and the rollout
    /// policy's versions.
    pub pool: PgPool,
    /// Checks the bearer token of every route's caller.
    pub verifier: Arc<Verifier>,
    /// Where routes are forwarded.
    pub upstreams: Upstreams,
    /// The limits shared by the replicas: estimates and payouts per customer, ops per subject,
    /// every request per client address.
    pub limits: Arc<Limits>,
    /// Where a request's client address is read for its limit.
    pub client_address: crate::guard::ClientAddress,
    /// Whether the manual clock's ops route exists (`CLOCK_MODE=manual`).
    pub clock_manual: bool,
    /// Reconciliation reads three services' listings directly (with the gateway's credentials).
    pub reconcile: Arc<(reqwest::Client, reconcile::Urls)>,
    /// The gateway's own key, signing its credentials for the services.
    pub signer: Arc<platform::credential::Signer>,
    /// Which side serves each customer's estimates and payouts.
    pub rollout: Arc<crate::rollout::Rollout>,
}

/// The verifier a route's `Caller` is authenticated with.
impl FromRef<AppState> for Arc<Verifier> {
    fn from_ref(state: &AppState) -> Self {
        state.verifier.clone()
    }
}
