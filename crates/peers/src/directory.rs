//! Cached reads of accounts (from account-info) and customers (from customer), split by mutability.
//!
//! Immutable fields (owner, product, opening date) never go stale, so an entry is
//! always good for them. Mutable fields (statuses, holds, tax category) are trusted only while the owner's
//! revision in Redis is the one read just before the entry was fetched (see [`platform::revision`]),
//! and for at most a minute even then; when Redis cannot be read they are trusted for one second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use contracts::{Account, Customer};
use platform::redis::Redis;
use platform::revision::{self, Rev};
use uuid::Uuid;

use crate::{Accounts, Customers, PeerError};

/// How long mutable fields are trusted without a revision to check them against.
const UNCHECKED_MAX_AGE: Duration = Duration::from_secs(1);
/// A backstop for a change whose publication was lost (its owner crashed right after committing).
const CHECKED_MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Entry<T> {
    value: T,
    /// The revision read before fetching; `None` if Redis could not be read then.
    rev: Option<Rev>,
    at: Instant,
}

impl<T> Entry<T> {
    fn current(&self, now: Option<Rev>) -> bool {
        let age = self.at.elapsed();
        match (now, self.rev) {
            (Some(now), Some(then)) => now == then && age < CHECKED_MAX_AGE,
            _ => age < UNCHECKED_MAX_AGE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no account {0}")]
    AccountNotFound(Uuid),
    #[error("no customer {0}")]
    CustomerNotFound(Uuid),
    #[error(transparent)]
    Dependency(#[from] PeerError),
}

/// An account, its owner, and any extra keys read from Redis in the same round trip.
pub struct Lookup {
    pub account: Account,
    pub customer: Option<Customer>,
    /// The extra keys' values, or `None` if Redis could not be read.
    pub extra: Option<Vec<Option<String>>>,
}

/// A million entries of a few hundred bytes; idle ones leave after an hour.
fn bounded<T: Clone + Send + Sync + 'static>() -> moka::future::Cache<Uuid, Entry<T>> {
    moka::future::Cache::builder().max_capacity(1_000_000).time_to_idle(Duration::from_secs(3600)).build()
}

#[derive(Clone)]
pub struct Directory {
    redis: Option<Redis>,
    account_info: Arc<dyn Accounts>,
    customer: Option<Arc<dyn Customers>>,
    accounts: moka::future::Cache<Uuid, Entry<Account>>,
    customers: moka::future::Cache<Uuid, Entry<Customer>>,
}

impl Directory {
    pub fn new(redis: Option<Redis>, account_info: Arc<dyn Accounts>, customer: Option<Arc<dyn Customers>>) -> Self {
        Self { redis, account_info, customer, accounts: bounded(), customers: bounded() }
    }

    /// Drops the cached account and customer, so the next lookup reads both from their owners
    /// (a payout whose quote the ledger found stale).
    pub async fn forget(&self, account_id: Uuid, customer_id: Uuid) {
        self.accounts.invalidate(&account_id).await;
        self.customers.invalidate(&customer_id).await;
    }

    /// Account-info, for calls the directory does not cache (listings).
    pub fn account_info(&self) -> &Arc<dyn Accounts> {
        &self.account_info
    }

    /// The customer service this directory reads, if it has one.
    pub fn customers(&self) -> Option<&Arc<dyn Customers>> {
        self.customer.as_ref()
    }

    async fn read(&self, keys: &[String]) -> Option<Vec<Option<String>>> {
        let redis = self.redis.as_ref()?;
        match revision::read(redis, keys).await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "revisions unreadable; trusting cached data for one second only");
                None
            }
        }
    }

    async fn account_at(&self, id: Uuid, rev: Option<Rev>) -> Result<Account, LookupError> {
        if let Some(e) = self.accounts.get(&id).await.filter(|e| e.current(rev)) {
            return Ok(e.value);
        }
        let account = match self.account_info.account(id).await {
            Ok(a) => a,
            Err(e) if e.is_not_found() => return Err(LookupError::AccountNotFound(id)),
            Err(e) => return Err(e.into()),
        };
        self.accounts.insert(id, Entry { value: account.clone(), rev, at: Instant::now() }).await;
        Ok(account)
    }

    async fn customer_at(&self, client: &dyn Customers, id: Uuid, rev: Option<Rev>) -> Result<Customer, LookupError> {
        if let Some(e) = self.customers.get(&id).await.filter(|e| e.current(rev)) {
            return Ok(e.value);
        }
        let customer = match client.customer(id).await {
            Ok(c) => c,
            Err(e) if e.is_not_found() => return Err(LookupError::CustomerNotFound(id)),
            Err(e) => return Err(e.into()),
        };
        self.customers.insert(id, Entry { value: customer.clone(), rev, at: Instant::now() }).await;
        Ok(customer)
    }

    /// The account, its customer (when this directory has a customer client), and `extra(account)`
    /// keys from Redis. Warm, that is one Redis read (none when the connection's mirror holds the
    /// keys) and no HTTP call.
    pub async fn lookup(&self, id: Uuid, extra: impl Fn(&Account) -> Vec<String>) -> Result<Lookup, LookupError> {
        let with_customer = self.customer.is_some();
        let revs_for = |a: &Account| {
            let mut keys = vec![contracts::revision::account(id)];
            if with_customer {
                keys.push(contracts::revision::customer(a.customer_id));
            }
            keys.extend(extra(a));
            keys
        };
        // Immutable fields of a cached entry are good forever: they name the other keys to read.
        let known = self.accounts.get(&id).await.map(|e| e.value);
        let (account, values) = match known {
            Some(k) => {
                let values = self.read(&revs_for(&k)).await;
                let account = self.account_at(id, values.as_ref().map(|v| revision::parse_rev(&v[0]))).await?;
                (account, values)
            }
            None => {
                let rev = self.read(&[contracts::revision::account(id)]).await.map(|v| revision::parse_rev(&v[0]));
                let account = self.account_at(id, rev).await?;
                (account.clone(), self.read(&revs_for(&account)).await)
            }
        };
        let customer = match &self.customer {
            Some(client) => {
                let rev = values.as_ref().map(|v| revision::parse_rev(&v[1]));
                Some(self.customer_at(client.as_ref(), account.customer_id, rev).await?)
            }
            None => None,
        };
        let skip = if with_customer { 2 } else { 1 };
        let extra = values.map(|v| v.into_iter().skip(skip).collect());
        Ok(Lookup { account, customer, extra })
    }
}
