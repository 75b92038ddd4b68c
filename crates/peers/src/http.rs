//! The peers over HTTP: each call is the owner's public route, through the platform client
//! (timeouts, one retry of a read, breaker, trace context, problem decoding).

use async_trait::async_trait;
use chrono::NaiveDate;
use contracts::{
    Account, AccountLookup, AccountPage, AccountsFound, BalancesBatch, BalancesMany, Customer, CustomerLookup,
    CustomersFound, DailyBalances, FencePage, InterestPosting, InterestPostingBatch, InterestPostingFeed,
    InterestPostingOutcomes, InterestPostingRequest, PayoutFence, Product,
};
use std::sync::Arc;

use platform::client::{ClientSettings, ServiceClient};
use platform::config::{ConfigError, Env};
use platform::credential::Signer;
use uuid::Uuid;

use crate::{count, PeerError, Peers};

/// One owner's HTTP client, as one calling service uses it.
#[derive(Clone)]
pub struct Http {
    caller: &'static str,
    target: &'static str,
    client: ServiceClient,
}

impl Http {
    /// A client named `target` (its breaker and metrics) of the service `audience`.
    pub fn new(
        caller: &'static str,
        (target, audience): (&'static str, &'static str),
        base: &str,
        settings: ClientSettings,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self { caller, target, client: ServiceClient::with_audience(target, audience, base, settings)? })
    }

    fn counted<T>(&self, r: Result<T, PeerError>) -> Result<T, PeerError> {
        let status = match &r {
            Ok(_) => "200".to_string(),
            Err(PeerError::Problem { status, .. }) => status.to_string(),
            Err(_) => "unavailable".to_string(),
        };
        count(self.caller, self.target, "http", status);
        r
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T, PeerError> {
        self.counted(self.client.get(path).await)
    }

    async fn post<B: serde::Serialize + Sync, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, PeerError> {
        self.counted(self.client.post(path, body, &[]).await)
    }
}

#[async_trait]
impl crate::Ledger for Http {
    async fn daily_balances(
        &self,
        account_id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<DailyBalances, PeerError> {
        self.get(&format!("/v1/ledger/accounts/{account_id}/daily-balances?from={from}&to={to}")).await
    }
    async fn book_interest(&self, request: &InterestPostingRequest) -> Result<InterestPosting, PeerError> {
        self.post("/v1/ledger/interest-postings", request).await
    }
    async fn daily_balances_many(&self, batch: &BalancesBatch) -> Result<BalancesMany, PeerError> {
        self.post("/v1/ledger/daily-balances", batch).await
    }
    async fn book_interest_many(&self, batch: &InterestPostingBatch) -> Result<InterestPostingOutcomes, PeerError> {
        self.post("/v1/ledger/interest-postings/batch", batch).await
    }
    async fn interest_feed(&self, after_seq: i64, limit: i64) -> Result<InterestPostingFeed, PeerError> {
        self.get(&format!("/v1/ledger/interest-postings?after_seq={after_seq}&limit={limit}")).await
    }
    async fn raise_fence(&self, fence: &PayoutFence) -> Result<PayoutFence, PeerError> {
        self.post("/v1/ledger/payout-fences", fence).await
    }
    async fn fences_after(&self, prefix: &str, after_seq: i64, limit: i64) -> Result<FencePage, PeerError> {
        self.get(&format!("/v1/ledger/payout-fences?prefix={prefix}&after_seq={after_seq}&limit={limit}")).await
    }
}

#[async_trait]
impl crate::Accounts for Http {
    async fn account(&self, id: Uuid) -> Result<Account, PeerError> {
        self.get(&format!("/v1/accounts/{id}")).await
    }
    async fn accounts(&self, ids: &[Uuid]) -> Result<AccountsFound, PeerError> {
        self.post("/v1/accounts/lookup", &AccountLookup { account_ids: ids.to_vec() }).await
    }
    async fn list(&self, after: Option<Uuid>, limit: i64) -> Result<AccountPage, PeerError> {
        let mut path = format!("/v1/accounts?limit={limit}");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        self.get(&path).await
    }
}

#[async_trait]
impl crate::Customers for Http {
    async fn customer(&self, id: Uuid) -> Result<Customer, PeerError> {
        self.get(&format!("/v1/customers/{id}")).await
    }
    async fn customers(&self, ids: &[Uuid]) -> Result<CustomersFound, PeerError> {
        self.post("/v1/customers/lookup", &CustomerLookup { customer_ids: ids.to_vec() }).await
    }
}

#[async_trait]
impl crate::Products for Http {
    async fn product(&self, code: &str) -> Result<Product, PeerError> {
        if !contracts::is_product_code(code) {
            let detail = format!("no product {code:?}");
            return self.counted(Err(PeerError::Problem {
                target: self.target,
                status: 404,
                code: "PRODUCT_NOT_FOUND".into(),
                detail,
            }));
        }
        self.get(&format!("/v1/interest/products/{code}")).await
    }
}

/// Every peer over HTTP, at `CUSTOMER_URL`, `ACCOUNT_INFO_URL`, `ACCOUNTING_URL` and
/// `INTEREST_URL` (local defaults), with the client settings from the environment, each call
/// signed with `signer` (the caller's own key).
pub fn peers(caller: &'static str, env: &Env, signer: &Arc<Signer>) -> Result<Peers, PeerConfigError> {
    let settings = ClientSettings::from(env, signer)?;
    let ledger_url = env.url("ACCOUNTING_URL", "http://127.0.0.1:8083")?;
    let http = |named, url: &str| Http::new(caller, named, url, settings.clone());
    Ok(Peers {
        ledger: Arc::new(http(("accounting", "accounting"), &ledger_url)?),
        // Its own breaker, the same service.
        ledger_sync: Arc::new(http(("accounting-sync", "accounting"), &ledger_url)?),
        accounts: Arc::new(http(
            ("account-info", "account-info"),
            &env.url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082")?,
        )?),
        customers: Arc::new(http(("customer", "customer"), &env.url("CUSTOMER_URL", "http://127.0.0.1:8081")?)?),
        products: Arc::new(http(("interest", "interest"), &env.url("INTEREST_URL", "http://127.0.0.1:8084")?)?),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PeerConfigError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}
