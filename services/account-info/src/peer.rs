//! Accounts as an in-process peer, for services running in the same process (`bank`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use contracts::{Account, AccountPage, AccountsFound};
use peers::{in_process, PeerError};
use uuid::Uuid;

use crate::changes;
use crate::state::AppState;

struct Accounts {
    state: AppState,
    caller: &'static str,
    timeout: Duration,
}

/// Accounts for `caller`, answering within `timeout` (the HTTP client's).
pub fn accounts(state: &AppState, caller: &'static str, timeout: Duration) -> Arc<dyn peers::Accounts> {
    Arc::new(Accounts { state: state.clone(), caller, timeout })
}

#[async_trait]
impl peers::Accounts for Accounts {
    async fn account(&self, id: Uuid) -> Result<Account, PeerError> {
        in_process(self.caller, "account-info", self.timeout, changes::read(&self.state, id)).await
    }
    async fn accounts(&self, ids: &[Uuid]) -> Result<AccountsFound, PeerError> {
        in_process(self.caller, "account-info", self.timeout, changes::read_many(&self.state, ids)).await
    }
    async fn list(&self, after: Option<Uuid>, limit: i64) -> Result<AccountPage, PeerError> {
        in_process(
            self.caller,
            "account-info",
            self.timeout,
            changes::list(&self.state, &Default::default(), after, limit),
        )
        .await
    }
}
