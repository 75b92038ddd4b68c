//! Redis: a reconnecting connection, key prefixing, and the per-account lock (random token, lease,
//! compare-and-delete release, bounded wait with jitter, given up early once the work is done).

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

    /// Sets a value only if the key is absent; whether it was set.
    pub async fn set_nx(&self, suffix: &str, value: &str) -> Result<bool, RedisError> {
        let mut c = self.conn.clone();
        let set: Option<String> =
            redis::cmd("SET").arg(self.key(suffix)).arg(value).arg("NX").query_async(&mut c).await?;
        Ok(set.is_some())
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

    /// Tries to take `name` for `lease`, waiting up to `wait` with jittered backoff — unless the
    /// key `done` exists (checked on every attempt, in the same round trip): then the work the lock
    /// guards is already done, and its value is returned instead of waiting on.
    pub async fn lock_unless(
        &self,
        name: &str,
        done: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Lock, RedisError> {
        const TAKE_UNLESS_DONE: &str = r#"
local done = redis.call("GET", KEYS[2])
if done then return {"done", done} end
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then return {"held"} end
return {"busy"}"#;
        let key = self.key(&format!("lock:{name}"));
        let done_key = self.key(done);
        let token = uuid::Uuid::new_v4().to_string();
        let deadline = tokio::time::Instant::now() + wait;
        let mut backoff = Duration::from_millis(5);
        let mut waited = false;
        loop {
            let mut c = self.conn.clone();
            let answer: Vec<String> = redis::cmd("EVAL")
                .arg(TAKE_UNLESS_DONE)
                .arg(2)
                .arg(&key)
                .arg(&done_key)
                .arg(&token)
                .arg(lease.as_millis() as u64)
                .query_async(&mut c)
                .await?;
            match answer.first().map(String::as_str) {
                Some("held") => return Ok(Lock::Held(LockGuard { redis: self.clone(), key, token, waited })),
                Some("done") => return Ok(Lock::Done(answer.get(1).cloned().unwrap_or_default())),
                _ => {}
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Lock::Busy);
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64);
            let sleep = (backoff + Duration::from_millis(jitter)).min(deadline - now);
            tokio::time::sleep(sleep).await;
            waited = true;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }
}

/// What [`Redis::lock_unless`] found.
pub enum Lock {
    Held(LockGuard),
    /// Someone else held it for the whole wait.
    Busy,
    /// The guarded work is done; the marker's value.
    Done(String),
}

/// A held lock. Release it explicitly; if the holder dies, the lease expires on its own.
pub struct LockGuard {
    redis: Redis,
    key: String,
    token: String,
    waited: bool,
}

impl LockGuard {
    /// Whether another holder had it first (whatever it guarded may have changed meanwhile).
    pub fn waited(&self) -> bool {
        self.waited
    }

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
