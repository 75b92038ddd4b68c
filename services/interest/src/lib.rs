//! The interest service: products and effective-dated rate schedules, estimates, payouts, and the
//! tax-event outbox. A payout is booked by the ledger (its one durable commit) and recorded here
//! right after; a recovery worker replays the ledger's payout feed so nothing booked is ever
//! missing here, and the outbox relay publishes each payout's tax event to Kafka.

mod error;
mod http;
mod outbox;
mod payout;
mod rates;
mod store;

use std::sync::Arc;
use std::time::Duration;

use platform::client::ServiceClient;
use platform::clock::Clock;
use platform::config::{self, Common};
use platform::kafka::KafkaConfig;
use platform::redis::Redis;
use sqlx::PgPool;
use tokio::sync::Notify;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/interest");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub clock: Clock,
    pub redis: Option<Redis>,
    pub customers: ServiceClient,
    pub accounts: ServiceClient,
    pub ledger: ServiceClient,
    /// Wakes the outbox relay right after a payout is recorded.
    pub outbox_wake: Arc<Notify>,
    pub lock_lease: Duration,
    pub lock_wait: Duration,
}

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("interest", 8084, "interest")?;
    let timeout = config::millis("HTTP_CLIENT_TIMEOUT_MS", 3000)?;
    let customers = ServiceClient::new("customer", &config::url("CUSTOMER_URL", "http://127.0.0.1:8081")?, timeout)?;
    let accounts =
        ServiceClient::new("account-info", &config::url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082")?, timeout)?;
    let ledger = ServiceClient::new("accounting", &config::url("ACCOUNTING_URL", "http://127.0.0.1:8083")?, timeout)?;
    let kafka = KafkaConfig::from_env()?;
    let use_redis_lock = config::parse::<bool>("PAYOUT_REDIS_LOCK", "true")?;
    let max_conn: u32 = config::parse("DATABASE_MAX_CONNECTIONS", "20")?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, use_redis_lock, max_conn).await?;
    kafka.ensure_topics(&[platform::kafka::TAX_TOPIC, platform::kafka::TAX_DLQ_TOPIC]).await?;
    let producer = kafka.producer()?;

    let state = AppState {
        pool: infra.pool.clone(),
        clock: infra.clock.clone(),
        redis: if use_redis_lock { infra.redis.clone() } else { None },
        customers,
        accounts,
        ledger,
        outbox_wake: Arc::new(Notify::new()),
        lock_lease: config::millis("PAYOUT_LOCK_LEASE_MS", 10_000)?,
        lock_wait: config::millis("PAYOUT_LOCK_WAIT_MS", 3_000)?,
    };
    let mut checks = infra.checks();
    let probe = kafka.consumer("interest-readiness")?;
    let probe = Arc::new(probe);
    checks.push(("kafka", platform::kafka::readiness_check(probe)));
    // Tells the background workers to stop once requests have drained.
    let shutdown = Arc::new(Notify::new());
    let relay =
        tokio::spawn(outbox::relay(state.clone(), producer, kafka.topic(platform::kafka::TAX_TOPIC), shutdown.clone()));
    let recovery = tokio::spawn(outbox::recover_from_ledger(state.clone(), shutdown.clone()));

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
    Ok(())
}
