//! The customer service: customers, their status (restrictions) and tax category.

mod changes;
mod http;
mod peer;
mod state;
mod store;

use std::time::Duration;

use peers::Peers;
use platform::config::{Common, Env};
use platform::revision::Publisher;
use platform::runtime::{App, Exposure};

pub use peer::customers as in_process_peer;
pub use state::AppState;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/customer");

/// The customer service's settings.
pub struct Config {
    pub common: Common,
    /// How often customers catch up with payout fences raised ahead of them (`FENCE_CATCH_UP_MS`).
    pub fence_catch_up: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Self {
            common: Common::from(env, "customer", 8081, "customer")?,
            fence_catch_up: env.millis("FENCE_CATCH_UP_MS", 30_000)?,
        })
    }
}

/// Connects, migrates, starts catching up with fences, and binds; `run_until_stopped` serves.
pub async fn build(config: Config, peers: Peers) -> anyhow::Result<App<AppState>> {
    let infra = platform::runtime::start(&config.common, &MIGRATOR, true, 10).await?;
    let revisions = Publisher::start(infra.redis.clone());
    let catch_up =
        changes::catch_up_with_fences(infra.pool.clone(), peers.ledger_sync, revisions.clone(), config.fence_catch_up);
    tokio::spawn(catch_up);
    let state = AppState { pool: infra.pool.clone(), revisions, ledger: peers.ledger };
    App::bind(
        &config.common,
        infra.clock.clone(),
        infra.checks(),
        http::routes(state.clone()),
        state,
        Exposure::Internal(http::GRANTS),
    )
    .await
}

/// The service as its own process: settings and peers from the environment, until SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    let env = Env::process();
    let config = Config::from_env(&env)?;
    let peers = peers::http::peers("customer", &env, &config.common.credentials.signer)?;
    platform::runtime::run_alone(&config.common.clone(), &MIGRATOR, build(config, peers)).await
}
