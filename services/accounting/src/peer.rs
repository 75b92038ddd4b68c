//! The ledger as an in-process peer: the same use cases its routes call, for services running in
//! the same process (`bank`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use contracts::{
    BalancesBatch, BalancesMany, DailyBalances, FencePage, InterestPosting, InterestPostingBatch, InterestPostingFeed,
    InterestPostingOutcomes, InterestPostingRequest, PayoutFence,
};
use peers::{in_process, PeerError};
use platform::ApiError;
use uuid::Uuid;

use crate::state::AppState;
use crate::{bookings, ledger};

struct Ledger {
    state: AppState,
    caller: &'static str,
    timeout: Duration,
}

/// The ledger for `caller`, answering within `timeout` (the HTTP client's).
pub fn ledger(state: &AppState, caller: &'static str, timeout: Duration) -> Arc<dyn peers::Ledger> {
    Arc::new(Ledger { state: state.clone(), caller, timeout })
}

impl Ledger {
    async fn call<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, crate::error::LedgerError>>,
    ) -> Result<T, PeerError> {
        in_process(self.caller, "accounting", self.timeout, async { work.await.map_err(ApiError::from) }).await
    }
}

#[async_trait]
impl peers::Ledger for Ledger {
    async fn daily_balances(
        &self,
        account_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<DailyBalances, PeerError> {
        self.call(bookings::daily_balances(&self.state, account_id, from, to, None)).await
    }
    async fn book_interest(&self, request: &InterestPostingRequest) -> Result<InterestPosting, PeerError> {
        self.call(bookings::book_interest(&self.state, request)).await
    }
    async fn daily_balances_many(&self, batch: &BalancesBatch) -> Result<BalancesMany, PeerError> {
        self.call(bookings::daily_balances_many(&self.state, batch)).await
    }
    async fn book_interest_many(&self, batch: &InterestPostingBatch) -> Result<InterestPostingOutcomes, PeerError> {
        self.call(bookings::book_interest_many(&self.state, batch)).await
    }
    async fn interest_feed(&self, after_seq: i64, limit: i64) -> Result<InterestPostingFeed, PeerError> {
        self.call(ledger::interest_feed(&self.state, after_seq, limit)).await
    }
    async fn raise_fence(&self, fence: &PayoutFence) -> Result<PayoutFence, PeerError> {
        self.call(ledger::raise_fence(&self.state, fence)).await
    }
    async fn fences_after(&self, prefix: &str, after_seq: i64, limit: i64) -> Result<FencePage, PeerError> {
        self.call(ledger::fences_after(&self.state, prefix, after_seq, limit)).await
    }
}
