//! Products as an in-process peer, for services running in the same process (`bank`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use contracts::Product;
use peers::{in_process, PeerError};
use platform::ApiError;

use crate::reference::{self, Reference};
use crate::state::AppState;

struct Products {
    reference: Reference,
    caller: &'static str,
    timeout: Duration,
}

/// Products for `caller`, answering within `timeout` (the HTTP client's).
pub fn products(state: &AppState, caller: &'static str, timeout: Duration) -> Arc<dyn peers::Products> {
    Arc::new(Products { reference: state.reference.clone(), caller, timeout })
}

#[async_trait]
impl peers::Products for Products {
    async fn product(&self, code: &str) -> Result<Product, PeerError> {
        let read = async { reference::product(&self.reference, code).await.map_err(ApiError::from) };
        in_process(self.caller, "interest", self.timeout, read).await
    }
}
