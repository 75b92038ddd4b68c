//! For one service's own tests (feature `testing`): in-memory peers that keep what they are told
//! and record what they are asked, and the settings of a service started in-process on port 0
//! against a scratch database of the machine's PostgreSQL and its Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::NaiveDate;
use contracts::{
    Account, AccountPage, AccountsFound, BalancesBatch, BalancesMany, Customer, CustomersFound, DailyBalances,
    FencePage, InterestPosting, InterestPostingBatch, InterestPostingFeed, InterestPostingOutcomes,
    InterestPostingRequest, PayoutFence, Product, RaisedFence,
};
use platform::config::Common;
use uuid::Uuid;

use crate::{PeerError, Peers};

fn not_found(target: &'static str, code: &str) -> PeerError {
    PeerError::Problem { target, status: 404, code: code.into(), detail: "not here".into() }
}

/// Peers held in memory. The ledger keeps fences (raising never lowers one) and answers nothing
/// else; `down` makes every call find the peer unavailable.
#[derive(Default)]
pub struct Fakes {
    pub fences: Mutex<HashMap<String, i64>>,
    pub accounts: Mutex<HashMap<Uuid, Account>>,
    pub customers: Mutex<HashMap<Uuid, Customer>>,
    pub products: Mutex<HashMap<String, Product>>,
    pub down: std::sync::atomic::AtomicBool,
}

impl Fakes {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn peers(self: &Arc<Self>) -> Peers {
        Peers {
            ledger: self.clone(),
            ledger_sync: self.clone(),
            accounts: self.clone(),
            customers: self.clone(),
            products: self.clone(),
        }
    }

    pub fn fence(&self, subject: &str) -> Option<i64> {
        self.fences.lock().unwrap().get(subject).copied()
    }

    fn up(&self, target: &'static str) -> Result<(), PeerError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(PeerError::Unavailable { target, detail: "down (test)".into() });
        }
        Ok(())
    }
}

#[async_trait]
impl crate::Ledger for Fakes {
    async fn daily_balances(&self, _: Uuid, _: NaiveDate, _: NaiveDate) -> Result<DailyBalances, PeerError> {
        Err(PeerError::Unavailable { target: "accounting", detail: "not faked".into() })
    }
    async fn book_interest(&self, _: &InterestPostingRequest) -> Result<InterestPosting, PeerError> {
        Err(PeerError::Unavailable { target: "accounting", detail: "not faked".into() })
    }
    async fn daily_balances_many(&self, _: &BalancesBatch) -> Result<BalancesMany, PeerError> {
        Err(PeerError::Unavailable { target: "accounting", detail: "not faked".into() })
    }
    async fn book_interest_many(&self, _: &InterestPostingBatch) -> Result<InterestPostingOutcomes, PeerError> {
        Err(PeerError::Unavailable { target: "accounting", detail: "not faked".into() })
    }
    async fn interest_feed(&self, _: i64, _: i64) -> Result<InterestPostingFeed, PeerError> {
        self.up("accounting")?;
        Ok(InterestPostingFeed { postings: Vec::new() })
    }
    async fn raise_fence(&self, fence: &PayoutFence) -> Result<PayoutFence, PeerError> {
        self.up("accounting")?;
        let mut fences = self.fences.lock().unwrap();
        let rev = fences.entry(fence.subject.clone()).or_insert(fence.rev);
        *rev = (*rev).max(fence.rev);
        Ok(PayoutFence { rev: *rev, ..fence.clone() })
    }
    /// Every fence of the prefix, as one page raised long ago (its `seq` is 1 for all).
    async fn fences_after(&self, prefix: &str, after_seq: i64, _: i64) -> Result<FencePage, PeerError> {
        self.up("accounting")?;
        let fences = self.fences.lock().unwrap();
        let settled = chrono::Utc::now() - chrono::Duration::hours(1);
        Ok(FencePage {
            fences: fences
                .iter()
                .filter(|(s, _)| s.starts_with(prefix) && after_seq < 1)
                .map(|(s, r)| RaisedFence { subject: s.clone(), rev: *r, seq: 1, changed_at: settled })
                .collect(),
        })
    }
}

#[async_trait]
impl crate::Accounts for Fakes {
    async fn account(&self, id: Uuid) -> Result<Account, PeerError> {
        self.up("account-info")?;
        self.accounts.lock().unwrap().get(&id).cloned().ok_or_else(|| not_found("account-info", "ACCOUNT_NOT_FOUND"))
    }
    async fn accounts(&self, ids: &[Uuid]) -> Result<AccountsFound, PeerError> {
        self.up("account-info")?;
        let known = self.accounts.lock().unwrap();
        let mut accounts: Vec<Account> = ids.iter().filter_map(|id| known.get(id).cloned()).collect();
        accounts.sort_by_key(|a| a.account_id);
        Ok(AccountsFound { accounts })
    }
    async fn list(&self, after: Option<Uuid>, limit: i64) -> Result<AccountPage, PeerError> {
        self.up("account-info")?;
        let mut accounts: Vec<Account> = self.accounts.lock().unwrap().values().cloned().collect();
        accounts.sort_by_key(|a| a.account_id);
        accounts.retain(|a| after.is_none_or(|x| a.account_id > x));
        accounts.truncate(limit as usize);
        let next_after = (accounts.len() as i64 == limit).then(|| accounts.last().map(|a| a.account_id)).flatten();
        Ok(AccountPage { accounts, next_after })
    }
}

#[async_trait]
impl crate::Customers for Fakes {
    async fn customer(&self, id: Uuid) -> Result<Customer, PeerError> {
        self.up("customer")?;
        self.customers.lock().unwrap().get(&id).cloned().ok_or_else(|| not_found("customer", "CUSTOMER_NOT_FOUND"))
    }
    async fn customers(&self, ids: &[Uuid]) -> Result<CustomersFound, PeerError> {
        self.up("customer")?;
        let known = self.customers.lock().unwrap();
        let mut customers: Vec<Customer> = ids.iter().filter_map(|id| known.get(id).cloned()).collect();
        customers.sort_by_key(|c| c.customer_id);
        Ok(CustomersFound { customers })
    }
}

#[async_trait]
impl crate::Products for Fakes {
    async fn product(&self, code: &str) -> Result<Product, PeerError> {
        self.up("interest")?;
        self.products.lock().unwrap().get(code).cloned().ok_or_else(|| not_found("interest", "PRODUCT_NOT_FOUND"))
    }
}

/// A scratch database named `{service}_{random}` on `TEST_DATABASE_URL` (default: local
/// PostgreSQL), and settings to start the service on port 0 with the manual clock and its own Redis
/// key prefix. The database is left for `deploy/test.sh` to sweep (name starts with `unit_`).
pub async fn common(service: &'static str) -> Common {
    use sqlx::Connection;
    let base =
        std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".into());
    let run = format!("unit_{}_{}", service.replace('-', "_"), &Uuid::new_v4().simple().to_string()[..10]);
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres")).await.expect("postgres reachable");
    sqlx::query(&format!("CREATE DATABASE {run}")).execute(&mut admin).await.unwrap();
    Common {
        service,
        bind: "127.0.0.1:0".parse().unwrap(),
        database_url: format!("{base}/{run}"),
        redis_url: std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        redis_prefix: run,
        clock_manual: true,
        otlp_endpoint: None,
        credentials: platform::credential::generated(service).expect("test credentials"),
    }
}

/// A client presenting the operators' service credential to `service` (any route), as the ops
/// tools do, for tests calling one service's routes.
pub fn client(service: &str) -> reqwest::Client {
    let ops = platform::credential::generated("ops").expect("test credentials");
    let token = ops.signer.mint(service, platform::credential::MAX_LIFETIME).expect("a token");
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("a header"));
    reqwest::Client::builder().default_headers(headers).build().expect("a client")
}

/// One scan of a table in a plan: its node type ("Index Scan", "Seq Scan", …), index and index
/// condition (empty when none).
#[derive(Debug)]
pub struct Scan {
    pub node: String,
    pub index: String,
    pub cond: String,
}

/// The plan PostgreSQL makes for `sql` with the query's parameters (`EXPLAIN (FORMAT JSON)`, not
/// run), and each scan of `table` in it: for tests that a statement reaches rows by key whatever
/// the statistics say.
pub async fn planned_scans(
    conn: &mut sqlx::PgConnection,
    explain: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    table: &str,
) -> (serde_json::Value, Vec<Scan>) {
    use serde_json::Value;
    use sqlx::Row;
    fn walk(plan: &Value, table: &str, scans: &mut Vec<Scan>) {
        let text = |key: &str| plan.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
        let node = text("Node Type");
        if node.ends_with("Scan") && text("Relation Name") == table {
            scans.push(Scan { node, index: text("Index Name"), cond: text("Index Cond") });
        }
        for child in plan.get("Plans").and_then(Value::as_array).into_iter().flatten() {
            walk(child, table, scans);
        }
    }
    let plan: Value = explain.fetch_one(conn).await.unwrap().get(0);
    let plan = plan[0]["Plan"].clone();
    let mut scans = vec![];
    walk(&plan, table, &mut scans);
    (plan, scans)
}

/// `sql` prefixed for [`planned_scans`].
pub fn explain(sql: &str) -> String {
    format!("EXPLAIN (FORMAT JSON) {sql}")
}
