//! The account-info service: accounts with their immutable facts (owner, product, opening date)
//! and mutable state (status, holds), plus a keyset-paged listing for batch runs.

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

pub use peer::accounts as in_process_peer;
pub use state::AppState;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/account_info");

/// Account-info's settings.
pub struct Config {
    pub common: Common,
    /// How often accounts catch up with payout fences raised ahead of them (`FENCE_CATCH_UP_MS`).
    pub fence_catch_up: Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Self {
            common: Common::from(env, "account-info", 8082, "account_info")?,
            fence_catch_up: env.millis("FENCE_CATCH_UP_MS", 30_000)?,
        })
    }
}

/// Connects, migrates, starts catching up with fences, and binds; `run_until_stopped` serves.
pub async fn build(config: Config, peers: Peers) -> anyhow::Result<App<AppState>> {
    let infra = platform::runtime::start(&config.common, &MIGRATOR, true, 10).await?;
    let state = AppState {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        customers: peers.customers,
        products: peers.products,
        ledger: peers.ledger,
        revisions: Publisher::start(infra.redis.clone()),
    };
    tokio::spawn(changes::catch_up_with_fences(state.clone(), peers.ledger_sync, config.fence_catch_up));
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
    let peers = peers::http::peers("account-info", &env, &config.common.credentials.signer)?;
    platform::runtime::run_alone(&config.common.clone(), &MIGRATOR, build(config, peers)).await
}
