//! The interest service: products and effective-dated rate schedules, estimates, payouts, and the
//! tax-event outbox. A payout is booked by the ledger (its one durable commit) and recorded here
//! right after; a recovery worker replays the ledger's payout feed so nothing booked is ever
//! missing here, and the outbox relay publishes each payout's tax event to Kafka.
//!
//! Laid out by capability, each a module with its own state and its SQL, lowest first:
//! `reference` (products, rate schedules, tax rules), `payout` (estimates and payouts), `migration`
//! (the legacy core and the shadow comparisons), `runs` (payout runs) and `outbox` (the relay and
//! the ledger-feed recovery). A module names only those before it; `http` (thin handlers) and
//! `peer` reach them through `state::AppState`, which composes their states.

mod error;
mod http;
mod migration;
mod outbox;
mod payout;
mod peer;
mod reference;
mod runs;
mod state;

use std::sync::Arc;
use std::time::Duration;

use peers::directory::Directory;
use peers::Peers;
use platform::config::{Common, Env};
use platform::kafka::KafkaConfig;
use platform::revision::Publisher;
use platform::runtime::{App, Exposure};
use tokio::sync::Notify;

pub use peer::products as in_process_peer;
pub use runs::RunSettings;
pub use state::AppState;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/interest");

/// The interest service's settings.
pub struct Config {
    pub common: Common,
    pub kafka: KafkaConfig,
    pub runs: RunSettings,
    pub use_redis_lock: bool,
    pub max_connections: u32,
    pub lock_lease: Duration,
    pub lock_wait: Duration,
    pub pause_before_booking: Duration,
    pub legacy: Option<LegacySettings>,
    /// How often rates and tax-rule revisions catch up with fences raised ahead of them
    /// (`FENCE_CATCH_UP_MS`).
    pub fence_catch_up: Duration,
    /// Whether Redis keys read by estimates and lookups are kept in process, invalidated by Redis
    /// (`REDIS_MIRROR`, on by default; `platform::redis_mirror`).
    pub redis_mirror: bool,
}

/// The legacy core and the shadow comparisons with it.
pub struct LegacySettings {
    pub url: String,
    pub client: platform::client::ClientSettings,
    pub shadow: migration::ShadowSettings,
}

impl LegacySettings {
    fn from(env: &Env, signer: &std::sync::Arc<platform::credential::Signer>) -> anyhow::Result<Option<Self>> {
        let Some(url) = env.optional("LEGACY_CORE_URL") else { return Ok(None) };
        let url = env.url("LEGACY_CORE_URL", &url)?;
        let ratio = env.var("SHADOW_SAMPLE_RATIO", "1");
        let sample_ppm = migration::parse_ratio(&ratio).map_err(|e| anyhow::anyhow!("SHADOW_SAMPLE_RATIO: {e}"))?;
        let run_ratio = env.var("SHADOW_RUN_SAMPLE_RATIO", "0.01");
        let run_sample_ppm =
            migration::parse_ratio(&run_ratio).map_err(|e| anyhow::anyhow!("SHADOW_RUN_SAMPLE_RATIO: {e}"))?;
        Ok(Some(Self {
            url,
            client: platform::client::ClientSettings::from(env, signer)?,
            shadow: migration::ShadowSettings {
                sample_ppm,
                run_sample_ppm,
                queue: env.parse("SHADOW_QUEUE", "1000")?,
                concurrency: env.parse("SHADOW_CONCURRENCY", "8")?,
                timeout: env.millis("SHADOW_TIMEOUT_MS", 2_000)?,
            },
        }))
    }
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let common = Common::from(env, "interest", 8084, "interest")?;
        Ok(Self {
            legacy: LegacySettings::from(env, &common.credentials.signer)?,
            common,
            kafka: KafkaConfig::from(env)?,
            runs: RunSettings::from(env)?,
            use_redis_lock: env.parse::<bool>("PAYOUT_REDIS_LOCK", "true")?,
            max_connections: env.parse("DATABASE_MAX_CONNECTIONS", "20")?,
            lock_lease: env.millis("PAYOUT_LOCK_LEASE_MS", 10_000)?,
            lock_wait: env.millis("PAYOUT_LOCK_WAIT_MS", 3_000)?,
            pause_before_booking: env.millis("PAYOUT_PAUSE_BEFORE_BOOKING_MS", 0)?,
            fence_catch_up: env.millis("FENCE_CATCH_UP_MS", 30_000)?,
            redis_mirror: env.parse::<bool>("REDIS_MIRROR", "true")?,
        })
    }
}

/// Connects, migrates, republishes rates revisions, ensures the topics, starts the relay, the
/// recovery worker and the run worker, and binds; `run_until_stopped` serves, then lets the relay
/// publish what requests recorded.
pub async fn build(config: Config, peers: Peers) -> anyhow::Result<App<AppState>> {
    let mut infra = platform::runtime::start(&config.common, &MIGRATOR, true, config.max_connections).await?;
    if config.redis_mirror {
        infra.redis = infra.redis.map(platform::redis::Redis::mirrored);
    }
    // Dashboards see both series from the start.
    for result in ["hit", "miss"] {
        metrics::counter!("interest_estimate_cache_total", "result" => result).increment(0);
    }
    metrics::counter!("interest_quote_stale_total").increment(0);
    for data in ["rates", "tax_rules"] {
        for result in ["hit", "miss"] {
            metrics::counter!("interest_reference_cache_total", "data" => data, "result" => result).increment(0);
        }
    }
    for source in ["estimate_cache", "computed"] {
        metrics::counter!("interest_payout_quotes_total", "source" => source).increment(0);
    }
    let revisions = Publisher::start(infra.redis.clone());
    let reference = reference::Reference::new(&infra, peers.ledger.clone(), revisions);
    reference::republish(&reference).await?;
    let kafka = config.kafka;
    // Started without the broker too: the topics are made when it answers (the relay's events wait
    // in the outbox meanwhile).
    tokio::spawn({
        let kafka = kafka.clone();
        async move {
            while let Err(e) = kafka.ensure_tax_topics().await {
                tracing::warn!(error = %e, "tax topics not ensured yet (broker away?); retrying");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
    });
    let producer = kafka.producer()?;
    let (legacy, shadow) = match config.legacy {
        Some(l) => {
            // The comparisons' own client: their timeout, their breaker.
            let quick = platform::client::ClientSettings { timeout: l.shadow.timeout, ..l.client.clone() };
            let core = migration::LegacyCore::new(&l.url, l.client)?;
            let shadow =
                migration::Shadow::start(migration::LegacyCore::new(&l.url, quick)?, infra.pool.clone(), l.shadow);
            (Some(core), Some(shadow))
        }
        None => (None, None),
    };
    // Each capability's state, the lower ones handed to those built on them; the routes' state is
    // composed of them, and each worker gets its own capability's.
    let directory = Directory::new(infra.redis.clone(), peers.accounts, Some(peers.customers));
    let outbox_wake = Arc::new(Notify::new());
    let settings = payout::PayoutSettings {
        use_redis_lock: config.use_redis_lock,
        lock_lease: config.lock_lease,
        lock_wait: config.lock_wait,
        pause_before_booking: config.pause_before_booking,
    };
    let payouts = payout::Payouts::new(
        &infra,
        directory.clone(),
        peers.ledger.clone(),
        reference.clone(),
        settings,
        outbox_wake.clone(),
    );
    let migration = migration::Migration::new(&infra, legacy, shadow, payouts.clone());
    let outbox = outbox::Outbox::new(&infra, peers.ledger.clone(), outbox_wake);
    let shadow = migration.shadow().cloned();
    let runs = runs::Runs::new(&infra, directory, peers.ledger, reference.clone(), payouts.clone(), shadow);
    let state =
        AppState::new(state::Capabilities { reference: reference.clone(), payouts, runs: runs.clone(), migration });
    tokio::spawn(reference::catch_up_rates(reference.clone(), peers.ledger_sync.clone(), config.fence_catch_up));
    tokio::spawn(reference::catch_up_tax_rules(reference, peers.ledger_sync, config.fence_catch_up));
    // Ready without the broker: a payout needs none (its tax event waits in the outbox), so a
    // broker outage must not pull every replica out of service. The relay's backlog is a metric
    // (`interest_outbox_unpublished`, `interest_outbox_oldest_unpublished_seconds`) and an alert.
    let checks = infra.checks();
    // Tells the background workers to stop once requests have drained.
    let shutdown = Arc::new(Notify::new());
    let relay = tokio::spawn(outbox::relay(outbox.clone(), kafka.clone(), producer, shutdown.clone()));
    let recovery = tokio::spawn(outbox::recover_from_ledger(outbox.clone(), shutdown.clone()));
    tokio::spawn(outbox::watch_backlog(outbox, shutdown.clone()));
    // Several chunk workers per replica: one quotes while another's chunk is in the ledger.
    let run_workers: Vec<_> = (0..config.runs.workers.max(1))
        .map(|_| tokio::spawn(runs::worker(runs.clone(), config.runs, shutdown.clone())))
        .collect();
    let app = App::bind(
        &config.common,
        infra.clock.clone(),
        checks,
        http::routes(state.clone()),
        state,
        Exposure::Internal(http::GRANTS),
    )
    .await?;
    Ok(app.after_stop(async move {
        // Requests have finished; let the relay publish what they recorded, then stop.
        shutdown.notify_waiters();
        let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
        recovery.abort();
        // A chunk in flight finishes or its claim lapses; either way the run resumes on restart.
        let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(run_workers)).await;
    }))
}

/// The service as its own process: settings and peers from the environment, until SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    let env = Env::process();
    let config = Config::from_env(&env)?;
    let peers = peers::http::peers("interest", &env, &config.common.credentials.signer)?;
    platform::runtime::run_alone(&config.common.clone(), &MIGRATOR, build(config, peers)).await
}
