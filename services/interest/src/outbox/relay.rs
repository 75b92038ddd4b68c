//! The relay: payouts with no `tax_event_published_at` are claimed with `FOR UPDATE SKIP LOCKED`
//! (so replicas never publish the same batch at once), produced to `tax.withholding.v1` by an
//! idempotent `acks=all` producer with the payout's `traceparent`, then marked published. A crash
//! between produce and mark republishes; the consumer dedupes on `payout_id`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use contracts::{TaxWithholdingEvent, TAX_EVENT_SCHEMA_VERSION};
use domain::{TaxBreakdown, TaxCategory};
use platform::kafka::KafkaConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Outbox, BATCH};

/// Consecutive failed batches after which the relay starts over with a new producer.
const FAILURES_BEFORE_NEW_PRODUCER: u32 = 5;

/// Publishes until shut down. After repeated failures the relay replaces its producer with a new
/// one from `kafka`, because a producer can stay stuck on state the broker lost (measured: tansu
/// 0.6.0, restarted after a storage panic, panics again on every produce from the old producer id)
/// and an idempotent producer can also hit fatal errors that only a new instance clears.
pub async fn relay(state: Outbox, kafka: KafkaConfig, mut producer: FutureProducer, shutdown: Arc<Notify>) {
    let topic = kafka.topic(contracts::TAX_TOPIC);
    let mut stopping = false;
    let mut failures = 0u32;
    loop {
        match publish_batch(&state, &producer, &topic).await {
            Ok(n) if n as i64 == BATCH => {
                failures = 0;
                continue;
            }
            Ok(_) if stopping => break,
            Ok(_) => failures = 0,
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, failures, "outbox relay failed; will retry");
                if stopping {
                    break;
                }
                if failures.is_multiple_of(FAILURES_BEFORE_NEW_PRODUCER) {
                    match kafka.producer() {
                        Ok(p) => {
                            tracing::warn!(failures, "outbox relay continues with a new producer");
                            producer = p;
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot create a new producer"),
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        tokio::select! {
            _ = state.wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.notified() => { stopping = true; }
        }
    }
    let _ = rdkafka::producer::Producer::flush(&producer, Duration::from_secs(5));
}

async fn publish_batch(state: &Outbox, producer: &FutureProducer, topic: &str) -> anyhow::Result<usize> {
    let mut tx = state.pool.begin().await?;
    let rows = sqlx::query!(
        "SELECT payout_id, tax_event_id, account_id, customer_id, business_date, gross, income_tax, local_tax,
                rural_special_tax, tax_category, created_at, trace_headers
         FROM payouts WHERE tax_event_published_at IS NULL
         ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
        BATCH,
    )
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut sends = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for r in rows {
        let category = r.tax_category;
        let event = TaxWithholdingEvent {
            event_id: r.tax_event_id,
            schema_version: TAX_EVENT_SCHEMA_VERSION,
            payout_id: r.payout_id,
            account_id: r.account_id,
            customer_id: r.customer_id,
            business_date: r.business_date,
            gross: r.gross,
            taxes: TaxBreakdown {
                income_tax: r.income_tax,
                local_tax: r.local_tax,
                rural_special_tax: r.rural_special_tax,
            },
            tax_category: TaxCategory::parse(&category).ok_or_else(|| anyhow::anyhow!("bad category {category}"))?,
            occurred_at: r.created_at,
        };
        let payout_trace: HashMap<String, String> = serde_json::from_value(r.trace_headers).unwrap_or_default();
        let payload = serde_json::to_string(&event)?;
        let key = event.account_id.to_string();
        ids.push(event.payout_id);
        // A producer span in the payout's trace; its context rides on the message, so the
        // consumer's span is its child (OpenTelemetry messaging conventions).
        let span = tracing::info_span!(
            "tax.publish",
            "otel.name" = %format!("{topic} publish"),
            "otel.kind" = "producer",
            "messaging.system" = "kafka",
            "messaging.destination.name" = topic,
            "messaging.operation.type" = "send",
            "messaging.kafka.message.key" = %key,
            payout_id = %event.payout_id,
        );
        platform::telemetry::set_parent_from(&span, payout_trace.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let headers = span.in_scope(platform::telemetry::current_trace_headers);
        sends.push(
            async move {
                let record = FutureRecord::to(topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(platform::kafka::headers_from(&headers));
                producer.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)
            }
            .instrument(span),
        );
    }
    for result in futures::future::join_all(sends).await {
        result?;
    }
    platform::fault::point("outbox.after_publish");
    sqlx::query!("UPDATE payouts SET tax_event_published_at = now() WHERE payout_id = ANY($1)", &ids as &[Uuid])
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("tax_events_published_total").increment(ids.len() as u64);
    Ok(ids.len())
}
