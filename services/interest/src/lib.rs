//! The interest service: products and effective-dated rate schedules, estimates, payouts, and the
//! tax-event outbox. A payout is booked by the ledger (its one durable commit) and recorded here
//! right after; a recovery worker replays the ledger's payout feed so nothing booked is ever
//! missing here, and the outbox relay publishes each payout's tax event to Kafka.

mod error;
mod estimate_cache;
mod http;
mod outbox;
mod payout;
mod rates;
mod run_store;
mod runs;
mod store;

use std::sync::Arc;
use std::time::Duration;

use platform::client::{ClientSettings, ServiceClient};
use platform::clock::Clock;
use platform::config::{self, Common};
use platform::directory::Directory;
use platform::kafka::KafkaConfig;
use platform::redis::Redis;
use platform::revision::{self, Publisher};
use sqlx::PgPool;
use tokio::sync::Notify;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/interest");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    /// Redis for the payout lock (`None` when PAYOUT_REDIS_LOCK=false).
    pub redis: Option<Redis>,
    /// Redis for the estimate cache.
    pub redis_cache: Option<Redis>,
    pub directory: Directory,
    pub ledger: ServiceClient,
    pub flights: estimate_cache::Flights,
    /// Wakes the payout-run workers when a run starts.
    pub run_wake: Arc<Notify>,
    pub revisions: Publisher,
    /// Wakes the outbox relay right after a payout is recorded.
    pub outbox_wake: Arc<Notify>,
    pub lock_lease: Duration,
    pub lock_wait: Duration,
    /// Test-only (`PAYOUT_PAUSE_BEFORE_BOOKING_MS`, 0 = off): a pause between a payout's quote and
    /// its booking, so tests can commit changes inside that window.
    pub pause_before_booking: Duration,
}

/// Retried until the ledger answers (services start in any order).
async fn sync_rates_fences(state: AppState, ledger: ServiceClient) {
    loop {
        match rates::sync_rates_fences(&state, &ledger).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "rates fences not synced with the ledger yet; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("interest", 8084, "interest")?;
    let client = ClientSettings::from_env()?;
    let customers = ServiceClient::new("customer", &config::url("CUSTOMER_URL", "http://127.0.0.1:8081")?, client)?;
    let accounts =
        ServiceClient::new("account-info", &config::url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082")?, client)?;
    let ledger_url = config::url("ACCOUNTING_URL", "http://127.0.0.1:8083")?;
    let ledger = ServiceClient::new("accounting", &ledger_url, client)?;
    // Its own breaker (and metric label): failures while the ledger starts up must not open the
    // breaker payouts use.
    let startup_ledger = ServiceClient::new("accounting-sync", &ledger_url, client)?;
    let kafka = KafkaConfig::from_env()?;
    let run_settings = runs::RunSettings::from_env()?;
    let use_redis_lock = config::parse::<bool>("PAYOUT_REDIS_LOCK", "true")?;
    let max_conn: u32 = config::parse("DATABASE_MAX_CONNECTIONS", "20")?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, true, max_conn).await?;
    // Dashboards see both series from the start.
    for result in ["hit", "miss"] {
        metrics::counter!("interest_estimate_cache_total", "result" => result).increment(0);
    }
    metrics::counter!("interest_quote_stale_total").increment(0);
    for source in ["estimate_cache", "computed"] {
        metrics::counter!("interest_payout_quotes_total", "source" => source).increment(0);
    }
    let revisions = Publisher::start(infra.redis.clone());
    // Republish every product's rates revision (a crash may have come between commit and publication).
    let rates = store::rates_revisions(&infra.pool).await?;
    revisions.publish_all(rates.into_iter().map(|(code, rev)| (revision::rates_key(&code), rev)).collect()).await;
    kafka.ensure_topics(&[platform::kafka::TAX_TOPIC, platform::kafka::TAX_DLQ_TOPIC]).await?;
    let producer = kafka.producer()?;

    let state = AppState {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        redis: if use_redis_lock { infra.redis.clone() } else { None },
        redis_cache: infra.redis.clone(),
        directory: Directory::new(infra.redis.clone(), accounts, Some(customers)),
        ledger,
        flights: estimate_cache::Flights::default(),
        run_wake: Arc::new(Notify::new()),
        revisions,
        outbox_wake: Arc::new(Notify::new()),
        lock_lease: config::millis("PAYOUT_LOCK_LEASE_MS", 10_000)?,
        lock_wait: config::millis("PAYOUT_LOCK_WAIT_MS", 3_000)?,
        pause_before_booking: config::millis("PAYOUT_PAUSE_BEFORE_BOOKING_MS", 0)?,
    };
    tokio::spawn(sync_rates_fences(state.clone(), startup_ledger));
    let mut checks = infra.checks();
    let probe = kafka.consumer("interest-readiness")?;
    let probe = Arc::new(probe);
    checks.push(("kafka", platform::kafka::readiness_check(probe)));
    // Tells the background workers to stop once requests have drained.
    let shutdown = Arc::new(Notify::new());
    let relay = tokio::spawn(outbox::relay(state.clone(), kafka.clone(), producer, shutdown.clone()));
    let recovery = tokio::spawn(outbox::recover_from_ledger(state.clone(), shutdown.clone()));
    let run_worker = tokio::spawn(runs::worker(state.clone(), run_settings, shutdown.clone()));

    platform::runtime::serve(
        &common,
        include_str!("../openapi.json"),
        infra.clock.clone(),
        checks,
        http::routes(state),
    )
    .await?;
    // Requests have finished; let the relay publish what they recorded, then stop.
    shutdown.notify_waiters();
    let _ = tokio::time::timeout(Duration::from_secs(10), relay).await;
    recovery.abort();
    // A chunk in flight finishes or its claim lapses; either way the run resumes on restart.
    let _ = tokio::time::timeout(Duration::from_secs(5), run_worker).await;
    Ok(())
}
