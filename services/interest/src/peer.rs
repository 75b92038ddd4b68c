//! Products as an in-process peer, for services running in the same process (`bank`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use contracts::Product;
use peers::{in_process, PeerError};
use platform::ApiError;

use crate::rates;
use crate::state::AppState;

struct Products {
    state: AppState,
    caller: &'static str,
    timeout: Duration,
}

/// Products for `caller`, answering within `timeout` (the HTTP client's).
pub fn products(state: &AppState, caller: &'static str, timeout: Duration) -> Arc<dyn peers::Products> {
    Arc::new(Products { state: state.clone(), caller, timeout })
}

#[async_trait]
impl peers::Products for Products {
    async fn product(&self, code: &str) -> Result<Product, PeerError> {
        let read = async { rates::product(&self.state.pool, code).await.map_err(ApiError::from) };
        in_process(self.caller, "interest", self.timeout, read).await
    }
}
