//! The Kafka consumer loop. Every replica is a member of the consumer group
//! (`TAX_CONSUMER_GROUP`): Kafka shares the topic's partitions among them, so replicas consume in
//! parallel, and a replica that dies hands its partitions to the others (after the session
//! timeout, 6 s, when it could not leave). The positions are not the group's: each partition's
//! next offset lives in the tax database, written in the same transaction as the withholding
//! records (a batch of what has arrived) or the dead letter, and every partition the group assigns
//! starts there ([`Placement`]). So neither a crash nor a rebalance can lose an effect, and one
//! repeated (a batch in hand when its partition moved) is a no-op: the `payout_id` primary key
//! drops the record, the positions only move forward.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use contracts::{TaxWithholdingEvent, TAX_EVENT_SCHEMA_VERSION};
use domain::Withheld;
use futures::{FutureExt, StreamExt};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::store::{self, DeadLetter, Source};

/// Most records written in one transaction.
const MAX_BATCH: usize = 500;

pub struct Worker {
    pub pool: PgPool,
    pub consumer: Arc<StreamConsumer<Placement>>,
    pub dlq: FutureProducer,
    pub topic: String,
    pub dlq_topic: String,
    pub healthy: Arc<AtomicBool>,
}

/// Places each partition the group assigns this replica at the position the tax database holds
/// for it (the beginning of a partition never consumed). Kafka calls it on the consumer's poll, in
/// the middle of a rebalance; it reads the database there and then (the group waits for it), and
/// retries while the database does not answer — a partition is never started anywhere else.
pub struct Placement {
    pub pool: PgPool,
    pub runtime: tokio::runtime::Handle,
    pub healthy: Arc<AtomicBool>,
}

impl ClientContext for Placement {}

impl ConsumerContext for Placement {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let placed = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.place(tpl);
                consumer.assign(tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.unassign(),
            other => {
                tracing::warn!(error = ?other, "consumer group rebalance failed");
                consumer.unassign()
            }
        };
        if let Err(e) = placed {
            tracing::warn!(error = %e, "partitions not (un)assigned");
        }
        let partitions = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        metrics::gauge!("tax_consumer_partitions_assigned").set(partitions as f64);
        tracing::info!(partitions, "consumer group rebalanced");
    }
}

impl Placement {
    /// Sets each partition's offset to its stored position.
    fn place(&self, tpl: &mut TopicPartitionList) {
        let wanted: Vec<(String, i32)> =
            tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let mut backoff = Duration::from_millis(100);
        let stored = loop {
            match self.read_positions(&wanted) {
                Ok(stored) => break stored,
                Err(e) => {
                    self.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, "positions not readable; the assignment waits for the database");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        for (topic, partition) in &wanted {
            let offset = stored.get(&(topic.clone(), *partition)).map_or(Offset::Beginning, |o| Offset::Offset(*o));
            if let Err(e) = tpl.set_partition_offset(topic, *partition, offset) {
                tracing::warn!(error = %e, partition, "partition not placed");
            }
        }
    }

    /// Reads the positions, blocking this (Kafka's) call: on a runtime worker the runtime is told
    /// (`block_in_place`); the service runs on the multi-threaded runtime.
    fn read_positions(
        &self,
        wanted: &[(String, i32)],
    ) -> Result<std::collections::HashMap<(String, i32), i64>, sqlx::Error> {
        let read = || self.runtime.block_on(store::positions(&self.pool, wanted));
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(read),
            Err(_) => read(),
        }
    }
}

/// Why a message cannot be processed, ever: retrying will not help.
#[derive(Debug, thiserror::Error)]
pub enum Poison {
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("unknown schema_version {0}")]
    UnknownSchema(u32),
    #[error("invalid amounts: {0}")]
    InvalidAmounts(String),
}

pub fn parse(payload: &[u8]) -> Result<TaxWithholdingEvent, Poison> {
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| Poison::Malformed(e.to_string()))?;
    let version = v.get("schema_version").and_then(|s| s.as_u64()).unwrap_or(0) as u32;
    if version != TAX_EVENT_SCHEMA_VERSION {
        return Err(Poison::UnknownSchema(version));
    }
    let e: TaxWithholdingEvent = serde_json::from_value(v).map_err(|e| Poison::Malformed(e.to_string()))?;
    if e.gross < 1 {
        return Err(Poison::InvalidAmounts("gross must be at least 1".into()));
    }
    if let Err(e) = Withheld::new(e.gross, e.taxes) {
        return Err(Poison::InvalidAmounts(e.to_string()));
    }
    Ok(e)
}

impl Worker {
    /// Joins the group and consumes until `stop`.
    pub async fn run(self, stop: Arc<Notify>) {
        loop {
            match self.consumer.subscribe(&[&self.topic]) {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot join the consumer group; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.notified() => return,
                    }
                }
            }
        }
        tracing::info!(topic = %self.topic, "consuming as a member of the consumer group");
        self.consume(&stop).await;
        // Leaving hands the partitions over at once (no session timeout to wait for).
        self.consumer.unsubscribe();
    }

    /// Consumes until stopped.
    async fn consume(&self, stop: &Notify) {
        let mut stream = self.consumer.stream();
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(Ok(msg)) => {
                        // Whatever else has already arrived joins it: one transaction (one commit)
                        // per batch instead of per record.
                        let mut batch = vec![msg];
                        while batch.len() < MAX_BATCH {
                            match stream.next().now_or_never() {
                                Some(Some(Ok(m))) => batch.push(m),
                                _ => break,
                            }
                        }
                        self.handle(&batch).await;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "kafka receive error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    None => return,
                },
                _ = stop.notified() => return,
            }
        }
    }

    /// Records a batch in order: each run of good messages in one transaction, each poison
    /// message dead-lettered where it stands (the position never passes a message not yet dealt with).
    async fn handle(&self, batch: &[BorrowedMessage<'_>]) {
        let mut run: Vec<(TaxWithholdingEvent, Source<'_>)> = Vec::new();
        for msg in batch {
            let headers = platform::kafka::headers_to_map(msg.headers());
            // One span per message under the payout's trace (the write is the batch's).
            let span = tracing::info_span!(
                "tax.consume",
                "otel.name" = %format!("{} process", msg.topic()),
                "otel.kind" = "consumer",
                "messaging.system" = "kafka",
                "messaging.destination.name" = msg.topic(),
                "messaging.operation.type" = "process",
                "messaging.destination.partition.id" = msg.partition(),
                "messaging.kafka.offset" = msg.offset(),
                trace_id = tracing::field::Empty,
            );
            platform::telemetry::set_parent_from(&span, headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            span.record("trace_id", platform::telemetry::trace_id(&span));
            let parsed = span.in_scope(|| {
                let parsed = parse(msg.payload().unwrap_or_default());
                if let Ok(e) = &parsed {
                    tracing::info!(payout_id = %e.payout_id, "withholding event received");
                }
                parsed
            });
            let source = Source { topic: msg.topic(), partition: msg.partition(), offset: msg.offset() };
            match parsed {
                Ok(event) => run.push((event, source)),
                Err(poison) => {
                    self.record(&run).await;
                    run.clear();
                    let error = poison.to_string();
                    self.until_stored("dead-lettering", || self.dead_letter(msg, &headers, &error)).await;
                    metrics::counter!("tax_dead_letters_total").increment(1);
                }
            }
        }
        self.record(&run).await;
    }

    /// Writes the records and the positions past them.
    async fn record(&self, run: &[(TaxWithholdingEvent, Source<'_>)]) {
        if run.is_empty() {
            return;
        }
        let fresh = self.until_stored("withholding write", || store::consume_withholdings(&self.pool, run)).await;
        metrics::counter!("tax_withholdings_total", "result" => "recorded").increment(fresh as u64);
        let now = chrono::Utc::now();
        for (event, _) in run {
            let lag = (now - event.occurred_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("tax_withholding_lag_seconds").record(lag);
        }
        metrics::counter!("tax_withholdings_total", "result" => "duplicate").increment((run.len() - fresh) as u64);
    }

    /// Repeats `attempt` until it succeeds: transient failures (database down, broker away) are
    /// retried with capped exponential backoff, because the position must not move before the
    /// effect is stored. Readiness reports unhealthy meanwhile.
    async fn until_stored<T, E, Fut>(&self, what: &str, attempt: impl Fn() -> Fut) -> T
    where
        E: std::fmt::Display,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let mut backoff = Duration::from_millis(100);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match attempt().await {
                Ok(v) => {
                    self.healthy.store(true, Ordering::Relaxed);
                    return v;
                }
                Err(e) => {
                    self.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, attempts, "{what} failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
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
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let mut out = OwnedHeaders::new();
        for (k, v) in headers {
            out = out.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        for (k, v) in [
            ("dlq.error", error),
            // Poison is permanent (malformed, unknown schema, impossible amounts): retrying cannot
            // help, so it is dead-lettered on its first reading; transient failures never get here.
            ("dlq.attempts", "1"),
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
                attempts: 1,
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
