//! The tax-consumer service: consumes `tax.withholding.v1`, writes one withholding record per
//! payout (a redelivery is a no-op), dead-letters what it cannot process, and serves the records,
//! the monthly remittance report and the dead-letter queue to ops.

mod consumer;
mod http;
mod state;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use platform::config::{Common, Env};
use platform::kafka::KafkaConfig;
use platform::runtime::{App, Exposure};
use platform::server::check;

pub use state::AppState;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/tax");

/// The tax consumer's settings.
pub struct Config {
    pub common: Common,
    pub kafka: KafkaConfig,
    /// The consumer group the replicas share the topic's partitions in (positions are kept in the
    /// tax database, not in the group).
    pub group: String,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Self {
            common: Common::from(env, "tax-consumer", 8085, "tax")?,
            kafka: KafkaConfig::from(env)?,
            group: env.var("TAX_CONSUMER_GROUP", "tax-consumer"),
        })
    }
}

/// Connects, migrates, ensures the topics, starts consuming and binds; `run_until_stopped` serves,
/// then stops consuming after the batch in hand.
pub async fn build(config: Config) -> anyhow::Result<App<AppState>> {
    let infra = platform::runtime::start(&config.common, &MIGRATOR, false, 10).await?;
    let kafka = config.kafka;
    kafka.ensure_tax_topics().await?;

    let healthy = Arc::new(AtomicBool::new(true));
    let placement = consumer::Placement {
        pool: infra.pool.clone(),
        runtime: tokio::runtime::Handle::current(),
        healthy: healthy.clone(),
    };
    let worker = consumer::Worker {
        pool: infra.pool.clone(),
        consumer: Arc::new(kafka.group_member(&config.group, placement)?),
        dlq: kafka.producer()?,
        topic: kafka.topic(contracts::TAX_TOPIC),
        dlq_topic: kafka.topic(contracts::TAX_DLQ_TOPIC),
        healthy: healthy.clone(),
    };
    let probe = worker.consumer.clone();
    let mut checks = infra.checks();
    checks.push((
        "consumer",
        check(move || {
            let healthy = healthy.clone();
            async move {
                if healthy.load(Ordering::Relaxed) {
                    Ok(())
                } else {
                    Err("consumer is retrying a failing write".into())
                }
            }
        }),
    ));
    checks.push(("kafka", platform::kafka::readiness_check(probe)));
    let stop = Arc::new(tokio::sync::Notify::new());
    let consuming = tokio::spawn(worker.run(stop.clone()));

    let counting = tokio::spawn(store::count_dead_letters(infra.pool.clone()));
    let state = AppState { pool: infra.pool.clone() };
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
        stop.notify_waiters();
        counting.abort();
        let _ = tokio::time::timeout(Duration::from_secs(10), consuming).await;
    }))
}

/// The service as its own process: settings from the environment, until SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    let config = Config::from_env(&Env::process())?;
    platform::runtime::run_alone(&config.common.clone(), &MIGRATOR, build(config)).await
}
