//! Revisions: how a service that owns some data tells every cache of it that it changed.
//!
//! The owner keeps a monotonic revision in its own database, bumped in the transaction that changes
//! the data, and publishes it to Redis after the commit (`SET` only if greater, so publications can
//! race or repeat). A reader takes the revision *before* it reads the data and stores the two
//! together; a cached value is used only while the revision in Redis is still the one it was read
//! at. Every committed change is eventually published: a failed publication is retried every second
//! until Redis answers, and owners republish recent changes at start-up (a crash between commit and
//! publication). The keys' names are `contracts::revision`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::redis::{Redis, RedisError};

/// A revision as read from Redis: `None` if never published (or evicted).
pub type Rev = Option<i64>;

/// Reads several revisions (and any other string keys) in one round trip, or from the connection's
/// mirror when it has one (`Redis::mirrored`).
pub async fn read(redis: &Redis, keys: &[String]) -> Result<Vec<Option<String>>, RedisError> {
    redis.read_many(keys).await
}

pub fn parse_rev(v: &Option<String>) -> Rev {
    v.as_deref().and_then(|s| s.parse().ok())
}

const SET_IF_GREATER: &str = r#"
local cur = tonumber(redis.call("GET", KEYS[1]) or "-1")
if tonumber(ARGV[1]) > cur then redis.call("SET", KEYS[1], ARGV[1]) return 1 end
return 0"#;

/// Publishes revisions, keeping the ones Redis did not take for a background retry.
#[derive(Clone)]
pub struct Publisher {
    redis: Option<Redis>,
    pending: Arc<Mutex<HashMap<String, i64>>>,
}

impl Publisher {
    /// A publisher whose failed publications are retried every second for the life of the process.
    pub fn start(redis: Option<Redis>) -> Self {
        let publisher = Self { redis, pending: Arc::new(Mutex::new(HashMap::new())) };
        tokio::spawn(publisher.clone().retry_forever());
        publisher
    }

    /// Publishes now; on failure the revision is retried in the background.
    pub async fn publish(&self, key: String, rev: i64) {
        if let Err(e) = self.try_publish(&[(key.clone(), rev)]).await {
            tracing::warn!(key, rev, error = %e, "revision not published; will retry");
            self.remember(key, rev);
        }
    }

    /// Publishes many (start-up republication); failures go to the retry set.
    pub async fn publish_all(&self, revs: Vec<(String, i64)>) {
        for chunk in revs.chunks(500) {
            if let Err(e) = self.try_publish(chunk).await {
                tracing::warn!(count = chunk.len(), error = %e, "revisions not published; will retry");
                for (k, r) in chunk {
                    self.remember(k.clone(), *r);
                }
            }
        }
    }

    fn remember(&self, key: String, rev: i64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let slot = p.entry(key).or_insert(rev);
        *slot = (*slot).max(rev);
    }

    async fn try_publish(&self, revs: &[(String, i64)]) -> Result<(), RedisError> {
        let Some(redis) = &self.redis else { return Ok(()) };
        let mut pipe = redis::pipe();
        for (k, r) in revs {
            pipe.cmd("EVAL").arg(SET_IF_GREATER).arg(1).arg(redis.key(k)).arg(*r).ignore();
        }
        let mut c = redis.conn();
        let published = pipe.query_async::<()>(&mut c).await;
        redis.written(&revs.iter().map(|(k, _)| redis.key(k)).collect::<Vec<_>>());
        published
    }

    async fn retry_forever(self) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let batch: Vec<(String, i64)> = {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                p.drain().collect()
            };
            if !batch.is_empty() {
                tracing::info!(count = batch.len(), "retrying unpublished revisions");
                self.publish_all(batch).await;
            }
        }
    }
}
