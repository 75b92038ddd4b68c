//! Redis: a reconnecting connection, key prefixing, and the per-account lock (random token, lease,
//! compare-and-delete release, bounded wait with jitter).

use std::time::Duration;

use rand::Rng;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

pub type RedisError = redis::RedisError;

#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
}

impl Redis {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self { conn, prefix: prefix.to_string() })
    }

    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{}", self.prefix, suffix)
    }

    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut c = self.conn.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ())
    }

    pub async fn get(&self, suffix: &str) -> Result<Option<String>, RedisError> {
        let mut c = self.conn.clone();
        c.get(self.key(suffix)).await
    }

    pub async fn set(&self, suffix: &str, value: &str) -> Result<(), RedisError> {
        let mut c = self.conn.clone();
        c.set(self.key(suffix), value).await
    }

    /// Sets a value that expires after `ttl`.
    pub async fn set_px(&self, suffix: &str, value: &str, ttl: Duration) -> Result<(), RedisError> {
        let mut c = self.conn.clone();
        redis::cmd("SET")
            .arg(self.key(suffix))
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut c)
            .await
    }

    /// Tries to take `name` for `lease`, waiting up to `wait` with jittered backoff.
    /// `Ok(None)` means someone else held it for the whole wait.
    pub async fn lock(&self, name: &str, lease: Duration, wait: Duration) -> Result<Option<LockGuard>, RedisError> {
        let key = self.key(&format!("lock:{name}"));
        let token = uuid::Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + wait;
        let mut backoff = Duration::from_millis(5);
        loop {
            let mut c = self.conn.clone();
            let ok: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg(&token)
                .arg("NX")
                .arg("PX")
                .arg(lease.as_millis() as u64)
                .query_async(&mut c)
                .await?;
            if ok.is_some() {
                return Ok(Some(LockGuard { redis: self.clone(), key, token }));
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64);
            let sleep = (backoff + Duration::from_millis(jitter)).min(deadline - now);
            tokio::time::sleep(sleep).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }
}

/// A held lock. Release it explicitly; if the holder dies, the lease expires on its own.
pub struct LockGuard {
    redis: Redis,
    key: String,
    token: String,
}

impl LockGuard {
    /// Deletes the key only if it still holds our token, so an expired lease taken over by another
    /// holder is never released by us.
    pub async fn release(self) -> Result<(), RedisError> {
        let script = Script::new(
            r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#,
        );
        let mut c = self.redis.conn.clone();
        script.key(&self.key).arg(&self.token).invoke_async::<i64>(&mut c).await.map(|_| ())
    }
}
