//! The customer service: customers, their status (restrictions) and tax category.

mod changes;
mod http;
mod store;

use platform::client::{ClientSettings, ServiceClient};
use platform::config::{self, Common};
use platform::revision::Publisher;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/customer");

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("customer", 8081, "customer")?;
    let ledger_url = config::url("ACCOUNTING_URL", "http://127.0.0.1:8083")?;
    let client = ClientSettings::from_env()?;
    let ledger = ServiceClient::new("accounting", &ledger_url, client)?;
    // Its own breaker (and metric label): failures while the ledger starts up must not open the
    // breaker requests use.
    let startup_ledger = ServiceClient::new("accounting-sync", &ledger_url, client)?;
    let catch_up_every = config::millis("FENCE_CATCH_UP_MS", 30_000)?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, true, 10).await?;
    let revisions = Publisher::start(infra.redis.clone());
    tokio::spawn(changes::catch_up_with_fences(infra.pool.clone(), startup_ledger, revisions.clone(), catch_up_every));
    platform::runtime::serve(
        &common,
        include_str!("../openapi.json"),
        infra.clock.clone(),
        infra.checks(),
        http::routes(http::AppState { pool: infra.pool.clone(), revisions, ledger }),
    )
    .await?;
    Ok(())
}
