//! The Kafka consumer loop. A message's offset is stored only after the record's transaction commits
//! (or after the message is safely dead-lettered), and only stored offsets are ever committed (every
//! second and at shutdown), so a crash redelivers rather than loses; the `payout_id` primary key
//! makes a redelivery a no-op.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use contracts::{TaxWithholdingEvent, TAX_EVENT_SCHEMA_VERSION};
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::store::{self, DeadLetter, Source};

pub struct Worker {
    pub pool: PgPool,
    pub consumer: Arc<StreamConsumer>,
    pub dlq: FutureProducer,
    pub topic: String,
    pub dlq_topic: String,
    pub max_attempts: u32,
    pub healthy: Arc<AtomicBool>,
}

/// Why a message cannot be processed, ever: retrying will not help.
#[derive(Debug, thiserror::Error)]
pub enum Poison {
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("unknown schema_version {0}")]
    UnknownSchema(u32),
    #[error("invalid amounts: {0}")]
    InvalidAmounts(&'static str),
}

pub fn parse(payload: &[u8]) -> Result<TaxWithholdingEvent, Poison> {
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| Poison::Malformed(e.to_string()))?;
    let version = v.get("schema_version").and_then(|s| s.as_u64()).unwrap_or(0) as u32;
    if version != TAX_EVENT_SCHEMA_VERSION {
        return Err(Poison::UnknownSchema(version));
    }
    let e: TaxWithholdingEvent = serde_json::from_value(v).map_err(|e| Poison::Malformed(e.to_string()))?;
    if e.gross < 1 {
        return Err(Poison::InvalidAmounts("gross must be at least 1"));
    }
    if e.income_tax < 0 || e.local_tax < 0 || e.rural_special_tax < 0 {
        return Err(Poison::InvalidAmounts("taxes must not be negative"));
    }
    if e.income_tax + e.local_tax + e.rural_special_tax > e.gross {
        return Err(Poison::InvalidAmounts("taxes exceed gross"));
    }
    Ok(e)
}

impl Worker {
    pub async fn run(self, stop: Arc<Notify>) {
        if let Err(e) = self.consumer.subscribe(&[&self.topic]) {
            tracing::error!(error = %e, "cannot subscribe");
            return;
        }
        let mut stream = self.consumer.stream();
        loop {
            let next = tokio::select! {
                m = stream.next() => m,
                _ = stop.notified() => break,
            };
            match next {
                Some(Ok(msg)) => self.handle(&msg).await,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "kafka receive error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => break,
            }
        }
        if let Err(e) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::warn!(error = %e, "final offset commit failed; the last messages will be redelivered");
        }
    }

    async fn handle(&self, msg: &BorrowedMessage<'_>) {
        let headers = platform::kafka::headers_to_map(msg.headers());
        let span = tracing::info_span!("tax.consume", partition = msg.partition(), offset = msg.offset());
        platform::telemetry::set_parent_from(&span, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let _enter = span.enter();
        let payload = msg.payload().unwrap_or_default();
        let source = Source { topic: msg.topic(), partition: msg.partition(), offset: msg.offset() };
        match parse(payload) {
            Ok(event) => {
                // Transient failures (database down) are retried until they succeed: the offset must
                // not move before the record is written. Readiness reports unhealthy meanwhile.
                let mut backoff = Duration::from_millis(100);
                let mut attempt = 0u32;
                loop {
                    attempt += 1;
                    match store::insert_withholding(&self.pool, &event, &source).await {
                        Ok(fresh) => {
                            self.healthy.store(true, Ordering::Relaxed);
                            metrics::counter!("tax_withholdings_total", "result" => if fresh { "recorded" } else { "duplicate" }).increment(1);
                            break;
                        }
                        Err(e) => {
                            self.healthy.store(false, Ordering::Relaxed);
                            tracing::warn!(error = %e, attempt, "withholding write failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
            Err(poison) => {
                let mut backoff = Duration::from_millis(100);
                // Dead-lettering must succeed before the offset moves.
                while let Err(e) = self.dead_letter(msg, &headers, &poison.to_string()).await {
                    self.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, "dead-lettering failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                self.healthy.store(true, Ordering::Relaxed);
                metrics::counter!("tax_dead_letters_total").increment(1);
            }
        }
        if let Err(e) = self.consumer.store_offset_from_message(msg) {
            // Not fatal: the message will be redelivered and deduplicated.
            tracing::warn!(error = %e, "offset store failed");
        }
    }

    async fn dead_letter(
        &self,
        msg: &BorrowedMessage<'_>,
        headers: &std::collections::HashMap<String, String>,
        error: &str,
    ) -> anyhow::Result<()> {
        let payload = String::from_utf8_lossy(msg.payload().unwrap_or_default()).to_string();
        let key = msg.key().map(|k| String::from_utf8_lossy(k).to_string());
        let attempts = self.max_attempts.to_string();
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let mut out = OwnedHeaders::new();
        for (k, v) in headers {
            out = out.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        for (k, v) in [
            ("dlq.error", error),
            ("dlq.attempts", attempts.as_str()),
            ("dlq.source.topic", msg.topic()),
            ("dlq.source.partition", partition.as_str()),
            ("dlq.source.offset", offset.as_str()),
        ] {
            out = out.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let mut record = FutureRecord::to(&self.dlq_topic).payload(&payload).headers(out);
        if let Some(k) = &key {
            record = record.key(k);
        }
        self.dlq.send(record, Duration::from_secs(10)).await.map_err(|(e, _)| e)?;
        store::insert_dead_letter(
            &self.pool,
            &DeadLetter {
                source: Source { topic: msg.topic(), partition: msg.partition(), offset: msg.offset() },
                key: key.as_deref(),
                payload: &payload,
                headers: serde_json::to_value(headers)?,
                error,
                attempts: self.max_attempts as i32,
            },
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poison_is_recognised() {
        assert!(matches!(parse(b"{not json"), Err(Poison::Malformed(_))));
        assert!(matches!(parse(br#"{"schema_version": 9}"#), Err(Poison::UnknownSchema(9))));
        let good = serde_json::json!({
            "event_id": uuid::Uuid::new_v4(), "schema_version": 1, "payout_id": uuid::Uuid::new_v4(),
            "account_id": uuid::Uuid::new_v4(), "customer_id": uuid::Uuid::new_v4(), "business_date": "2024-01-02",
            "gross": 100, "income_tax": 10, "local_tax": 0, "rural_special_tax": 0, "tax_category": "GENERAL",
            "occurred_at": "2024-01-02T00:00:00Z"
        });
        assert!(parse(good.to_string().as_bytes()).is_ok());
        let mut bad = good.clone();
        bad["income_tax"] = serde_json::json!(1000);
        assert!(matches!(parse(bad.to_string().as_bytes()), Err(Poison::InvalidAmounts(_))));
    }
}
