//! The account-info service: accounts with their immutable facts (owner, product, opening date)
//! and mutable state (status, holds), plus a keyset-paged listing for batch runs.

mod http;
mod store;

use std::time::Duration;

use platform::client::ServiceClient;
use platform::clock::Clock;
use platform::config::{self, Common};
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/account_info");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    pub customers: ServiceClient,
    pub interest: ServiceClient,
}

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("account-info", 8082, "account_info")?;
    let customer_url = config::url("CUSTOMER_URL", "http://127.0.0.1:8081")?;
    let interest_url = config::url("INTEREST_URL", "http://127.0.0.1:8084")?;
    let timeout = config::millis("HTTP_CLIENT_TIMEOUT_MS", 3000)?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, false, 10).await?;
    let state = AppState {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        customers: ServiceClient::new("customer", &customer_url, timeout)?,
        interest: ServiceClient::new("interest", &interest_url, timeout.max(Duration::from_millis(100)))?,
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
