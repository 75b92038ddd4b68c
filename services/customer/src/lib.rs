//! The customer service: customers, their status (restrictions) and tax category.

mod http;
mod store;

use platform::config::Common;
use platform::server::Platform;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/customer");

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("customer", 8081, "customer")?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, false, 10).await?;
    let platform = Platform {
        service: common.service,
        openapi: include_str!("../openapi.json"),
        clock: infra.clock.clone(),
        checks: infra.checks(),
    };
    let app = platform::server::app(http::routes(infra.pool.clone()), platform);
    let listener = platform::runtime::bind(&common).await?;
    tracing::info!(addr = %common.bind, "customer service listening");
    platform::server::serve(listener, app).await?;
    Ok(())
}
