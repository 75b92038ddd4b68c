//! The accounting service: the ledger. Balances of record, balanced journal entries, end-of-day
//! balances, deposits, withdrawals, transfers, and the booking of interest payouts — the single
//! durable commit point of a payout (see docs/payout-design.md).

mod error;
mod http;
mod ledger;
mod store;

use std::time::Duration;

use platform::client::{ClientSettings, ServiceClient};
use platform::clock::Clock;
use platform::config::{self, Common};
use platform::directory::Directory;
use platform::revision::{self, Publisher};
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/accounting");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    pub accounts: Directory,
    pub revisions: Publisher,
    /// How long one attempt waits for a busy balance row before backing off.
    pub lock_timeout: Duration,
    /// Total time a request keeps retrying a busy row before answering 503 ACCOUNT_BUSY.
    pub lock_budget: Duration,
}

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("accounting", 8083, "accounting")?;
    let account_info_url = config::url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082")?;
    let client = ClientSettings::from_env()?;
    let lock_timeout = config::millis("LEDGER_LOCK_TIMEOUT_MS", 300)?;
    let lock_budget = config::millis("LEDGER_LOCK_BUDGET_MS", 5000)?;
    let max_conn: u32 = config::parse("DATABASE_MAX_CONNECTIONS", "20")?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, true, max_conn).await?;
    let revisions = Publisher::start(infra.redis.clone());
    // A crash between a commit and its publication leaves a revision unpublished: republish the
    // last day's (nothing older can be behind a cached estimate).
    let recent = store::recent_history_revisions(&infra.pool).await?;
    revisions.publish_all(recent.into_iter().map(|(id, rev)| (revision::ledger_key(id), rev)).collect()).await;
    let account_info = ServiceClient::new("account-info", &account_info_url, client)?;
    let state = AppState {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        accounts: Directory::new(infra.redis.clone(), account_info, None),
        revisions,
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
