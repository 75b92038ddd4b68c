//! The customer service: customers, their status (restrictions) and tax category.

mod http;
mod store;

use platform::config::Common;
use platform::revision::Publisher;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/customer");

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("customer", 8081, "customer")?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, true, 10).await?;
    let revisions = Publisher::start(infra.redis.clone());
    platform::runtime::serve(
        &common,
        include_str!("../openapi.json"),
        infra.clock.clone(),
        infra.checks(),
        http::routes(http::AppState { pool: infra.pool.clone(), revisions }),
    )
    .await?;
    Ok(())
}
