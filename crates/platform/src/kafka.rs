//! Kafka: an idempotent `acks=all` producer, consumers that keep their positions in their own
//! database (a plain one, and a consumer-group member whose context places its partitions), and
//! topic creation.
//! The code speaks only the Kafka protocol, so any Kafka-compatible broker is a configuration change.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

#[derive(Debug, Clone)]
pub struct KafkaConfig {
    pub brokers: String,
    /// Prefixed to topic names so test runs can share one broker without seeing each other.
    pub topic_prefix: String,
    pub partitions: i32,
    /// Produce requests in flight per broker connection (`KAFKA_MAX_IN_FLIGHT`, 1 to 5).
    pub max_in_flight: u8,
    /// How long the producer gathers records into one request (`KAFKA_LINGER_MS`, 20 ms: a run's
    /// events go in larger batches, which costs the broker less CPU; BENCHMARKS.md).
    pub linger_ms: u32,
    /// `none`, `gzip`, `snappy`, `lz4` or `zstd` (`KAFKA_COMPRESSION`).
    pub compression: String,
    /// An idempotent producer (`KAFKA_IDEMPOTENCE`): no duplicate record from a retried request.
    /// The consumer writes one record per payout anyway, so a duplicate changes nothing.
    pub idempotence: bool,
}

impl KafkaConfig {
    pub fn from(env: &crate::config::Env) -> Result<Self, crate::config::ConfigError> {
        let invalid = |name: &str, value: String, reason: &str| crate::config::ConfigError {
            name: env.name(name),
            value,
            reason: reason.into(),
        };
        let max_in_flight: u8 = env.parse("KAFKA_MAX_IN_FLIGHT", "5")?;
        if !(1..=5).contains(&max_in_flight) {
            return Err(invalid(
                "KAFKA_MAX_IN_FLIGHT",
                max_in_flight.to_string(),
                "must be 1 to 5 (idempotent producer)",
            ));
        }
        let compression = env.var("KAFKA_COMPRESSION", "none");
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&compression.as_str()) {
            return Err(invalid("KAFKA_COMPRESSION", compression, "must be none, gzip, snappy, lz4 or zstd"));
        }
        Ok(Self {
            brokers: env.var("KAFKA_BROKERS", "127.0.0.1:9092"),
            topic_prefix: env.var("KAFKA_TOPIC_PREFIX", ""),
            partitions: env.parse("KAFKA_PARTITIONS", "6")?,
            max_in_flight,
            linger_ms: env.parse("KAFKA_LINGER_MS", "20")?,
            idempotence: env.parse("KAFKA_IDEMPOTENCE", "true")?,
            compression,
        })
    }

    pub fn topic(&self, name: &str) -> String {
        format!("{}{}", self.topic_prefix, name)
    }

    pub fn producer(&self) -> Result<FutureProducer, KafkaError> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("enable.idempotence", self.idempotence.to_string())
            .set("acks", "all")
            // Up to 5 produce requests in flight per connection: the most an idempotent producer
            // may pipeline while Kafka keeps each partition's order across retries.
            .set("max.in.flight.requests.per.connection", self.max_in_flight.to_string())
            .set("linger.ms", self.linger_ms.to_string())
            .set("compression.type", &self.compression)
            .set("message.timeout.ms", "30000")
            .set("socket.timeout.ms", "10000")
            .create()
    }

    pub fn consumer(&self, group: &str) -> Result<StreamConsumer, KafkaError> {
        self.consumer_config(group).create()
    }

    /// A member of the consumer group `group` whose `context` places each partition the group
    /// assigns it (consumers here keep their positions in their own database, so nothing is
    /// committed to the broker).
    pub fn group_member<C: ConsumerContext + 'static>(
        &self,
        group: &str,
        context: C,
    ) -> Result<StreamConsumer<C>, KafkaError> {
        self.consumer_config(group).create_with_context(context)
    }

    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // A member killed without leaving hands its partitions over after this (Kafka's lowest
            // default bound is 6 s); a live one heartbeats every 2 s.
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "2000")
            .set("socket.timeout.ms", "10000")
            // A fetch that finds nothing waits this long on the broker; it answers as soon as a
            // record arrives, so this bounds only an idle consumer's wake-ups.
            .set("fetch.wait.max.ms", "100");
        config
    }

    /// Creates the tax topics if they do not exist yet, as deploy/k8s/strimzi/topics.yaml has them
    /// (the topic with `partitions`, its dead-letter topic with one); a broker that has them all is
    /// not asked to create any.
    pub async fn ensure_tax_topics(&self) -> anyhow::Result<()> {
        let dlq = self.topic(contracts::TAX_DLQ_TOPIC);
        let partitions = |t: &str| if t == dlq { 1 } else { self.partitions };
        self.ensure_topics(&[contracts::TAX_TOPIC, contracts::TAX_DLQ_TOPIC], partitions).await
    }

    /// Creates the topics if they do not exist yet, each with `partitions(name)` partitions.
    pub async fn ensure_topics(&self, names: &[&str], partitions: impl Fn(&str) -> i32) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            ClientConfig::new().set("bootstrap.servers", &self.brokers).create()?;
        let topics: Vec<String> = names.iter().map(|n| self.topic(n)).collect();
        let admin = std::sync::Arc::new(admin);
        let known = tokio::task::spawn_blocking({
            let admin = admin.clone();
            move || -> Vec<String> {
                let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10));
                metadata.map(|m| m.topics().iter().map(|t| t.name().to_string()).collect()).unwrap_or_default()
            }
        })
        .await?;
        if topics.iter().all(|t| known.contains(t)) {
            return Ok(());
        }
        let new: Vec<NewTopic> =
            topics.iter().map(|t| NewTopic::new(t, partitions(t), TopicReplication::Fixed(1))).collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(new.iter(), &opts).await? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => anyhow::bail!("cannot create topic {topic}: {code}"),
            }
        }
        Ok(())
    }
}

/// A readiness check: the broker answers a metadata request from this client.
pub fn readiness_check<C: ConsumerContext + 'static>(
    client: std::sync::Arc<StreamConsumer<C>>,
) -> crate::server::ReadinessCheck {
    crate::server::check(move || {
        let client = client.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                client.fetch_metadata(None, Duration::from_secs(1)).map(|_| ()).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        }
    })
}

pub fn headers_from(map: &HashMap<String, String>) -> OwnedHeaders {
    map.iter().fold(OwnedHeaders::new(), |h, (k, v)| h.insert(Header { key: k, value: Some(v.as_bytes()) }))
}

pub fn headers_to_map<H: Headers>(headers: Option<&H>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(h) = headers {
        for header in h.iter() {
            if let Some(v) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
                out.insert(header.key.to_string(), v.to_string());
            }
        }
    }
    out
}
