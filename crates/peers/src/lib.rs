//! How the services call each other. One trait per owner of something another service reads or
//! asks for — the ledger, accounts, customers, products — with two implementations: [`http`]
//! (one service per process, today's topology) and in-process (the `bank` binary runs all services
//! in one process: direct calls with the same contract types, the same timeout and the same
//! errors, no serialization). The in-process implementations live in the owning services (each
//! wraps its own use cases); [`Late`] lets a process wire services that call each other in a cycle.
//! Also the [`directory`], the cache of accounts and customers in front of these calls.

pub mod directory;
pub mod fences;
pub mod http;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDate;
use contracts::{
    Account, AccountPage, AccountsFound, BalancesBatch, BalancesMany, Customer, CustomersFound, DailyBalances,
    FencePage, InterestPosting, InterestPostingBatch, InterestPostingFeed, InterestPostingOutcomes,
    InterestPostingRequest, PayoutFence, Product,
};
use platform::ApiError;
use uuid::Uuid;

/// A peer's refusal (its problem's status, code and detail) or its absence — the same for both
/// implementations, so callers map one error whatever the topology.
pub use platform::client::ClientError as PeerError;

/// The ledger (accounting), as the other services call it.
#[async_trait]
pub trait Ledger: Send + Sync {
    async fn daily_balances(
        &self,
        account_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<DailyBalances, PeerError>;
    /// Books a payout if its quote basis is still current (`409 QUOTE_STALE` otherwise).
    async fn book_interest(&self, request: &InterestPostingRequest) -> Result<InterestPosting, PeerError>;
    /// Daily balances of many accounts in one snapshot, answered in the queries' order.
    async fn daily_balances_many(&self, batch: &BalancesBatch) -> Result<BalancesMany, PeerError>;
    /// Books many payouts in one transaction, each with its own outcome, in the batch's order.
    async fn book_interest_many(&self, batch: &InterestPostingBatch) -> Result<InterestPostingOutcomes, PeerError>;
    async fn interest_feed(&self, after_seq: i64, limit: i64) -> Result<InterestPostingFeed, PeerError>;
    /// Raises a payout fence; answers the fence as it stands (possibly ahead of the request's).
    async fn raise_fence(&self, fence: &PayoutFence) -> Result<PayoutFence, PeerError>;
    /// Fences whose subject starts with `prefix`, raised after `after_seq`, in raise order.
    async fn fences_after(&self, prefix: &str, after_seq: i64, limit: i64) -> Result<FencePage, PeerError>;
}

/// Account-info.
#[async_trait]
pub trait Accounts: Send + Sync {
    async fn account(&self, id: Uuid) -> Result<Account, PeerError>;
    /// The accounts of `ids` that exist (1 to 1000 ids).
    async fn accounts(&self, ids: &[Uuid]) -> Result<AccountsFound, PeerError>;
    /// One keyset page of all accounts, in id order.
    async fn list(&self, after: Option<Uuid>, limit: i64) -> Result<AccountPage, PeerError>;
}

/// The customer service.
#[async_trait]
pub trait Customers: Send + Sync {
    async fn customer(&self, id: Uuid) -> Result<Customer, PeerError>;
    /// The customers of `ids` that exist (1 to 1000 ids).
    async fn customers(&self, ids: &[Uuid]) -> Result<CustomersFound, PeerError>;
}

/// The interest service's product catalogue.
#[async_trait]
pub trait Products: Send + Sync {
    async fn product(&self, code: &str) -> Result<Product, PeerError>;
}

/// Everything a service may call, in whichever topology the process runs.
#[derive(Clone)]
pub struct Peers {
    pub ledger: Arc<dyn Ledger>,
    /// The ledger for start-up and background catch-up work: its own breaker (and metric label),
    /// so failures while the ledger starts up do not open the breaker requests use.
    pub ledger_sync: Arc<dyn Ledger>,
    pub accounts: Arc<dyn Accounts>,
    pub customers: Arc<dyn Customers>,
    pub products: Arc<dyn Products>,
}

/// Runs an in-process call as the HTTP client would: counted, bounded by the same timeout, and a
/// refusal turned into the same [`PeerError`] the HTTP client decodes from the problem body.
pub async fn in_process<T>(
    caller: &'static str,
    target: &'static str,
    timeout: Duration,
    call: impl Future<Output = Result<T, ApiError>>,
) -> Result<T, PeerError> {
    let outcome = tokio::time::timeout(timeout, call).await;
    let status = match &outcome {
        Ok(Ok(_)) => "200".to_string(),
        Ok(Err(e)) => e.status.as_u16().to_string(),
        Err(_) => "timeout".to_string(),
    };
    count(caller, target, "in-process", status);
    match outcome {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(refusal(target, e)),
        Err(_) => Err(PeerError::Unavailable { target, detail: format!("no answer within {timeout:?}") }),
    }
}

/// `peer_calls_total{caller,target,transport,status}`: every call one service makes to another,
/// whichever the topology (the HTTP client's `http_client_requests_total` counts wire attempts).
pub fn count(caller: &'static str, target: &'static str, transport: &'static str, status: String) {
    metrics::counter!("peer_calls_total", "caller" => caller, "target" => target, "transport" => transport, "status" => status)
        .increment(1);
}

/// A peer's problem as its caller sees it: 4xx is the peer's answer, 5xx is the peer failing.
pub fn refusal(target: &'static str, e: ApiError) -> PeerError {
    if e.status.is_server_error() {
        PeerError::Unavailable { target, detail: format!("HTTP {} {}: {}", e.status, e.code, e.detail) }
    } else {
        PeerError::Problem { target, status: e.status.as_u16(), code: e.code, detail: e.detail }
    }
}

/// A peer wired after the caller is built (services that call each other in a cycle, in one
/// process); until then calls find it unavailable, as a peer process still starting would be.
pub struct Late<T: ?Sized> {
    target: &'static str,
    peer: OnceLock<Arc<T>>,
}

impl<T: ?Sized> Late<T> {
    pub fn new(target: &'static str) -> Arc<Self> {
        Arc::new(Self { target, peer: OnceLock::new() })
    }

    /// Wires the peer; a second call is ignored.
    pub fn set(&self, peer: Arc<T>) {
        let _ = self.peer.set(peer);
    }

    fn get(&self) -> Result<&Arc<T>, PeerError> {
        self.peer.get().ok_or(PeerError::Unavailable { target: self.target, detail: "not started yet".into() })
    }
}

#[async_trait]
impl Ledger for Late<dyn Ledger> {
    async fn daily_balances(
        &self,
        account_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<DailyBalances, PeerError> {
        self.get()?.daily_balances(account_id, from, to).await
    }
    async fn book_interest(&self, request: &InterestPostingRequest) -> Result<InterestPosting, PeerError> {
        self.get()?.book_interest(request).await
    }
    async fn daily_balances_many(&self, batch: &BalancesBatch) -> Result<BalancesMany, PeerError> {
        self.get()?.daily_balances_many(batch).await
    }
    async fn book_interest_many(&self, batch: &InterestPostingBatch) -> Result<InterestPostingOutcomes, PeerError> {
        self.get()?.book_interest_many(batch).await
    }
    async fn interest_feed(&self, after_seq: i64, limit: i64) -> Result<InterestPostingFeed, PeerError> {
        self.get()?.interest_feed(after_seq, limit).await
    }
    async fn raise_fence(&self, fence: &PayoutFence) -> Result<PayoutFence, PeerError> {
        self.get()?.raise_fence(fence).await
    }
    async fn fences_after(&self, prefix: &str, after_seq: i64, limit: i64) -> Result<FencePage, PeerError> {
        self.get()?.fences_after(prefix, after_seq, limit).await
    }
}

#[async_trait]
impl Accounts for Late<dyn Accounts> {
    async fn account(&self, id: Uuid) -> Result<Account, PeerError> {
        self.get()?.account(id).await
    }
    async fn accounts(&self, ids: &[Uuid]) -> Result<AccountsFound, PeerError> {
        self.get()?.accounts(ids).await
    }
    async fn list(&self, after: Option<Uuid>, limit: i64) -> Result<AccountPage, PeerError> {
        self.get()?.list(after, limit).await
    }
}

#[async_trait]
impl Customers for Late<dyn Customers> {
    async fn customer(&self, id: Uuid) -> Result<Customer, PeerError> {
        self.get()?.customer(id).await
    }
    async fn customers(&self, ids: &[Uuid]) -> Result<CustomersFound, PeerError> {
        self.get()?.customers(ids).await
    }
}

#[async_trait]
impl Products for Late<dyn Products> {
    async fn product(&self, code: &str) -> Result<Product, PeerError> {
        self.get()?.product(code).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::http::StatusCode;

    #[tokio::test]
    async fn an_in_process_refusal_is_the_error_the_http_client_decodes() {
        let e = in_process::<()>("interest", "accounting", Duration::from_secs(1), async {
            Err(ApiError::new(StatusCode::CONFLICT, "QUOTE_STALE", "stale"))
        })
        .await
        .unwrap_err();
        assert!(matches!(e, PeerError::Problem { status: 409, ref code, .. } if code == "QUOTE_STALE"));
        let e = in_process::<()>("interest", "accounting", Duration::from_secs(1), async {
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ACCOUNT_BUSY", "busy"))
        })
        .await
        .unwrap_err();
        assert!(matches!(e, PeerError::Unavailable { .. }));
        let e = in_process::<()>("interest", "accounting", Duration::from_millis(10), async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok(())
        })
        .await
        .unwrap_err();
        assert!(matches!(e, PeerError::Unavailable { .. }), "a slow peer times out as over HTTP");
    }

    #[tokio::test]
    async fn a_late_peer_is_unavailable_until_wired() {
        let late: Arc<Late<dyn Customers>> = Late::new("customer");
        assert!(matches!(late.customer(Uuid::nil()).await, Err(PeerError::Unavailable { .. })));
    }
}
