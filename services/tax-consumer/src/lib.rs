//! The tax-consumer service: consumes `tax.withholding.v1`, writes one withholding record per
//! payout (a redelivery is a no-op), dead-letters what it cannot process, and serves the records,
//! the monthly remittance report and the dead-letter queue to ops.

mod consumer;
mod http;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use platform::config::{self, Common};
use platform::kafka::KafkaConfig;
use platform::server::check;
use sqlx::PgPool;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/tax");

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
}

pub async fn run() -> anyhow::Result<()> {
    let common = Common::from_env("tax-consumer", 8085, "tax")?;
    let kafka = KafkaConfig::from_env()?;
    let group = config::var("TAX_CONSUMER_GROUP", "tax-consumer");
    let max_attempts: u32 = config::parse("TAX_CONSUMER_MAX_ATTEMPTS", "5")?;
    let _telemetry = platform::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    let infra = platform::runtime::start(&common, &MIGRATOR, false, 10).await?;
    kafka.ensure_topics(&[platform::kafka::TAX_TOPIC, platform::kafka::TAX_DLQ_TOPIC]).await?;

    let healthy = Arc::new(AtomicBool::new(true));
    let worker = consumer::Worker {
        pool: infra.pool.clone(),
        consumer: Arc::new(kafka.consumer(&group)?),
        dlq: kafka.producer()?,
        topic: kafka.topic(platform::kafka::TAX_TOPIC),
        dlq_topic: kafka.topic(platform::kafka::TAX_DLQ_TOPIC),
        max_attempts,
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

    let state = AppState { pool: infra.pool.clone() };
    platform::runtime::serve(
        &common,
        include_str!("../openapi.json"),
        infra.clock.clone(),
        checks,
        http::routes(state),
    )
    .await?;
    stop.notify_waiters();
    let _ = tokio::time::timeout(Duration::from_secs(10), consuming).await;
    Ok(())
}
