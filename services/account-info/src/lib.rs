//! The account-info service: accounts with their immutable facts (owner, product, opening date)
//! and mutable state (status, holds), plus a keyset-paged listing for batch runs.

mod changes;
mod http;
mod store;

use platform::client::{ClientSettings, ServiceClient};
use platform::clock::Clock;
use platform::config::{self, Common};
use platform::revision::Publisher;
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/account_info");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    pub customers: ServiceClient,
    pub interest: ServiceClient,
    /// The ledger, whose payout fence each status or holds change raises before it commits.
    pub ledger: ServiceClient,
    pub revisions: Publisher,
}

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("account-info", 8082, "account_info")?;
    let customer_url = config::url("CUSTOMER_URL", "http://127.0.0.1:8081")?;
    let interest_url = config::url("INTEREST_URL", "http://127.0.0.1:8084")?;
    let ledger_url = config::url("ACCOUNTING_URL", "http://127.0.0.1:8083")?;
    let client = ClientSettings::from_env()?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, true, 10).await?;
    let revisions = Publisher::start(infra.redis.clone());
    let state = AppState {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        customers: ServiceClient::new("customer", &customer_url, client)?,
        interest: ServiceClient::new("interest", &interest_url, client)?,
        ledger: ServiceClient::new("accounting", &ledger_url, client)?,
        revisions,
    };
    // Its own breaker (and metric label): failures while the ledger starts up must not open the
    // breaker requests use.
    let startup_ledger = ServiceClient::new("accounting-sync", &ledger_url, client)?;
    let catch_up_every = config::millis("FENCE_CATCH_UP_MS", 30_000)?;
    tokio::spawn(changes::catch_up_with_fences(state.clone(), startup_ledger, catch_up_every));
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
