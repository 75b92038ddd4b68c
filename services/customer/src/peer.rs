//! Customers as an in-process peer, for services running in the same process (`bank`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use contracts::{Customer, CustomersFound};
use peers::{in_process, PeerError};
use uuid::Uuid;

use crate::changes;
use crate::state::AppState;

struct Customers {
    state: AppState,
    caller: &'static str,
    timeout: Duration,
}

/// Customers for `caller`, answering within `timeout` (the HTTP client's).
pub fn customers(state: &AppState, caller: &'static str, timeout: Duration) -> Arc<dyn peers::Customers> {
    Arc::new(Customers { state: state.clone(), caller, timeout })
}

#[async_trait]
impl peers::Customers for Customers {
    async fn customer(&self, id: Uuid) -> Result<Customer, PeerError> {
        in_process(self.caller, "customer", self.timeout, changes::read(&self.state.pool, id)).await
    }
    async fn customers(&self, ids: &[Uuid]) -> Result<CustomersFound, PeerError> {
        in_process(self.caller, "customer", self.timeout, changes::read_many(&self.state.pool, ids)).await
    }
}
