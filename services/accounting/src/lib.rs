//! The accounting service: the ledger. Balances of record, balanced journal entries, end-of-day
//! balances, deposits, withdrawals, transfers, and the booking of interest payouts — the single
//! durable commit point of a payout (see docs/payout-design.md).

mod error;
mod http;
mod ledger;
mod store;

use std::time::Duration;

use platform::client::ServiceClient;
use platform::clock::Clock;
use platform::config::{self, Common};
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/accounting");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    pub accounts: ServiceClient,
    /// How long one attempt waits for a busy balance row before backing off.
    pub lock_timeout: Duration,
    /// Total time a request keeps retrying a busy row before answering 503 ACCOUNT_BUSY.
    pub lock_budget: Duration,
}

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("accounting", 8083, "accounting")?;
    let account_info_url = config::url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082")?;
    let timeout = config::millis("HTTP_CLIENT_TIMEOUT_MS", 3000)?;
    let lock_timeout = config::millis("LEDGER_LOCK_TIMEOUT_MS", 300)?;
    let lock_budget = config::millis("LEDGER_LOCK_BUDGET_MS", 5000)?;
    let max_conn: u32 = config::parse("DATABASE_MAX_CONNECTIONS", "20")?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, false, max_conn).await?;
    let state = AppState {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        accounts: ServiceClient::new("account-info", &account_info_url, timeout)?,
        lock_timeout,
        lock_budget,
    };
    platform::runtime::serve(
        &common,
        include_str!("../openapi.json"),
        infra.clock.clone(),
        infra.checks(),
        http::routes(state),
    )
    .await?;
    Ok(())
}
