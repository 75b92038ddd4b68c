//! The accounting service: the ledger. Balances of record, balanced journal entries, end-of-day
//! balances, deposits, withdrawals and transfers (decided on the owners' state at commit), and the
//! booking of interest payouts — the single durable commit point of a payout (see
//! docs/payout-design.md).

mod booking_queue;
mod bookings;
mod error;
mod http;
mod journal;
mod ledger;
mod movements;
mod peer;
mod state;
mod store;

use std::time::Duration;

use peers::directory::Directory;
use peers::Peers;
use platform::config::{Common, Env};
use platform::revision::Publisher;
use platform::runtime::{App, Exposure};

pub use peer::ledger as in_process_peer;
pub use state::AppState;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/accounting");

/// The ledger's settings.
pub struct Config {
    pub common: Common,
    pub lock_timeout: Duration,
    pub lock_budget: Duration,
    pub max_connections: u32,
    /// On-demand booking transactions kept going at once (each books every request queued); 0
    /// books each alone.
    pub booking_batches_in_flight: usize,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Self {
            common: Common::from(env, "accounting", 8083, "accounting")?,
            // PostgreSQL's lock_timeout: 0 would mean waiting for ever, and a value it refuses would
            // fail every transaction's BEGIN.
            lock_timeout: match env.millis("LEDGER_LOCK_TIMEOUT_MS", 300)? {
                t if (1..=60_000).contains(&t.as_millis()) => t,
                t => anyhow::bail!("LEDGER_LOCK_TIMEOUT_MS must be 1 to 60000, not {}", t.as_millis()),
            },
            lock_budget: env.millis("LEDGER_LOCK_BUDGET_MS", 5000)?,
            max_connections: env.parse("DATABASE_MAX_CONNECTIONS", "20")?,
            booking_batches_in_flight: match env.parse("LEDGER_BOOKING_BATCHES_IN_FLIGHT", "2")? {
                n @ 0..=16 => n,
                n => anyhow::bail!("LEDGER_BOOKING_BATCHES_IN_FLIGHT must be 0 (no batching) to 16, not {n}"),
            },
        })
    }
}

/// Connects, migrates, republishes revisions and binds; `run_until_stopped` serves.
pub async fn build(config: Config, peers: Peers) -> anyhow::Result<App<AppState>> {
    let infra = platform::runtime::start(&config.common, &MIGRATOR, true, config.max_connections).await?;
    let revisions = Publisher::start(infra.redis.clone());
    // A crash between a commit and its publication leaves a revision unpublished: republish the
    // last day's (nothing older can be behind a cached estimate).
    let recent = store::recent_history_revisions(&infra.pool).await?;
    revisions.publish_all(recent.into_iter().map(|(id, rev)| (contracts::revision::ledger(id), rev)).collect()).await;
    let (bookings, batcher) = booking_queue::BookingQueue::new(config.booking_batches_in_flight);
    let state = AppState::new(state::Shared {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        directory: Directory::new(infra.redis.clone(), peers.accounts, Some(peers.customers)),
        revisions,
        lock_timeout: config.lock_timeout,
        lock_budget: config.lock_budget,
        bookings,
    });
    if let Some(batcher) = batcher {
        tokio::spawn(booking_queue::serve(state.clone(), batcher));
    }
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
    let peers = peers::http::peers("accounting", &env, &config.common.credentials.signer)?;
    platform::runtime::run_alone(&config.common.clone(), &MIGRATOR, build(config, peers)).await
}
