//! Redis: a reconnecting connection (plain or TLS, with AUTH), key prefixing, and the per-account
//! lock (random token, lease, compare-and-delete release, bounded wait with jitter, given up early
//! once the work is done).
//!
//! The URL says how to reach and authenticate: `redis://host:port`, `redis://:password@host:port`
//! (the default user), `redis://user:password@host:port` (an ACL user), `rediss://…` for TLS. A TLS
//! server's certificate is checked against the system's roots, or only against the PEM file
//! `REDIS_CA_FILE` names (a private CA).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::Rng;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

pub type RedisError = redis::RedisError;

/// The variable naming a PEM file of the CA(s) a `rediss://` server's certificate must chain to.
pub const CA_FILE_VAR: &str = "REDIS_CA_FILE";

/// Why [`Redis::connect`] (or [`client`]) could not connect.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot read the Redis CA file {path}: {source}")]
    CaFile { path: PathBuf, source: std::io::Error },
    #[error("{CA_FILE_VAR} is set, but the Redis URL is not a rediss:// (TLS) URL")]
    CaFileWithoutTls,
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// `REDIS_CA_FILE` from the process environment (shared by every service of a process, as
/// `REDIS_URL` is).
pub fn ca_file_from_env() -> Option<PathBuf> {
    std::env::var_os(CA_FILE_VAR).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// A client for `url`; for `rediss://`, trusting only the CA(s) in `ca_file` when given, else the
/// system's roots. Connects to nothing yet.
pub fn client(url: &str, ca_file: Option<&Path>) -> Result<redis::Client, ConnectError> {
    // rustls needs a process-wide crypto provider; install ring's unless one is already installed
    // (then that one is used, so the error is moot). Deprecated in rustls 0.23.48 for lacking
    // post-quantum key exchange; aws-lc-rs has it at the cost of a C/CMake build (Cargo.toml).
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(path) = ca_file else {
        return Ok(redis::Client::open(url)?);
    };
    // Checked here: redis's own message would name neither the file nor the variable.
    if !url.starts_with("rediss://") {
        return Err(ConnectError::CaFileWithoutTls);
    }
    let pem = std::fs::read(path).map_err(|source| ConnectError::CaFile { path: path.to_path_buf(), source })?;
    let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
    Ok(redis::Client::build_with_tls(url, certs)?)
}

/// `url` fit for logs and messages: the password (or a lone user-info part, which some write as
/// the password) replaced by `***`; the user name, host, port and database kept.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL: it could be anything, a password included.
        return "***".into();
    };
    // The last `@` ends the user info: a password may hold an unescaped `@` or `/`, a host never.
    let Some(at) = rest.rfind('@') else {
        return url.to_string();
    };
    let (info, host) = (&rest[..at], &rest[at..]);
    match info.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***{host}"),
        None => format!("{scheme}://***{host}"),
    }
}

#[derive(Clone)]
pub struct Redis {
    conn: ConnectionManager,
    prefix: String,
    client: std::sync::Arc<redis::Client>,
    /// Keys kept in process with Redis's invalidations, for [`Redis::read_many`] (when started).
    mirror: Option<crate::redis_mirror::Mirror>,
}

impl Redis {
    /// Connects to `url` (see the module's documentation; `REDIS_CA_FILE` from the environment) and
    /// checks that Redis answers and accepts the credentials, so a wrong password stops start-up
    /// instead of failing every request.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, ConnectError> {
        Self::connect_client(client(url, ca_file_from_env().as_deref())?, prefix).await
    }

    /// [`Redis::connect`] with a client already built (e.g. by [`client`] with a CA of one's own).
    pub async fn connect_client(client: redis::Client, prefix: &str) -> Result<Self, ConnectError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        let redis = Self { conn, prefix: prefix.to_string(), client: std::sync::Arc::new(client), mirror: None };
        // Without a password, against a server that requires one, the connection opens and only
        // the first command fails (NOAUTH): ask one now.
        redis.ping().await?;
        Ok(redis)
    }

    /// This connection with a mirror of the keys read through [`Redis::read_many`]: answered from
    /// process memory while Redis's invalidations are tracked (`redis_mirror`).
    pub fn mirrored(mut self) -> Self {
        self.mirror = Some(crate::redis_mirror::Mirror::start(self.client.as_ref().clone()));
        self
    }

    /// The mirror, if [`Redis::mirrored`] started one.
    pub fn mirror(&self) -> Option<&crate::redis_mirror::Mirror> {
        self.mirror.as_ref()
    }

    /// The values of several keys (suffixes), in one round trip — or none, from the mirror.
    pub async fn read_many(&self, suffixes: &[String]) -> Result<Vec<Option<String>>, RedisError> {
        if suffixes.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = suffixes.iter().map(|k| self.key(k)).collect();
        if let Some(mirror) = &self.mirror {
            if let Some(values) = mirror.read(&keys).await {
                return Ok(values);
            }
        }
        let mut c = self.conn.clone();
        redis::cmd("MGET").arg(&keys).query_async(&mut c).await
    }

    /// Makes this process's mirror forget keys (full names) it has just written: their values in
    /// Redis are this process's own writes, which its next read must see whether or not Redis's
    /// invalidation has arrived yet.
    pub fn written(&self, keys: &[String]) {
        if let Some(mirror) = &self.mirror {
            mirror.forget(keys);
        }
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
        let key = self.key(suffix);
        let set = c.set(&key, value).await;
        self.written(&[key]);
        set
    }

    /// Sets a value only if the key is absent; whether it was set.
    pub async fn set_nx(&self, suffix: &str, value: &str) -> Result<bool, RedisError> {
        let mut c = self.conn.clone();
        let key = self.key(suffix);
        let set: Result<Option<String>, RedisError> =
            redis::cmd("SET").arg(&key).arg(value).arg("NX").query_async(&mut c).await;
        self.written(&[key]);
        Ok(set?.is_some())
    }

    /// Sets a value that expires after `ttl`.
    pub async fn set_px(&self, suffix: &str, value: &str, ttl: Duration) -> Result<(), RedisError> {
        let mut c = self.conn.clone();
        let key = self.key(suffix);
        let set = redis::cmd("SET")
            .arg(&key)
            .arg(value)
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async::<()>(&mut c)
            .await;
        self.written(&[key]);
        set
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
                Some("held") => {
                    let guard = LockGuard { redis: self.clone(), key, done_key, token, waited };
                    return Ok(Lock::Held(guard));
                }
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
    /// The key whose existence means the guarded work is done (see [`Redis::lock_unless`]).
    done_key: String,
    token: String,
    waited: bool,
}

/// Deletes the lock `KEYS[1]` only while it holds our token `ARGV[1]`.
const RELEASE_IF_OURS: &str =
    r#"if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end"#;

impl LockGuard {
    /// Whether another holder had it first (whatever it guarded may have changed meanwhile).
    pub fn waited(&self) -> bool {
        self.waited
    }

    /// Deletes the key only if it still holds our token, so an expired lease taken over by another
    /// holder is never released by us.
    pub async fn release(self) -> Result<(), RedisError> {
        let script = Script::new(RELEASE_IF_OURS);
        let mut c = self.redis.conn.clone();
        script.key(&self.key).arg(&self.token).invoke_async::<i64>(&mut c).await.map(|_| ())
    }

    /// Marks the guarded work done (the `done` key of [`Redis::lock_unless`] set to `value` for
    /// `ttl`) and releases the lock as [`LockGuard::release`] does, in one round trip.
    pub async fn release_done(self, value: &str, ttl: Duration) -> Result<(), RedisError> {
        let script = Script::new(&format!(r#"redis.call("SET", KEYS[2], ARGV[2], "PX", ARGV[3]) {RELEASE_IF_OURS}"#));
        let mut c = self.redis.conn.clone();
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let mut released = script.key(&self.key);
        released.key(&self.done_key).arg(&self.token).arg(value).arg(ttl_ms);
        let answer = released.invoke_async::<i64>(&mut c).await.map(|_| ());
        self.redis.written(&[self.done_key]);
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_reach_a_message() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("redis://:s3cret@redis:6379/0", "redis://:***@redis:6379/0"),
            ("rediss://bank:s3cret@redis.example:6380", "rediss://bank:***@redis.example:6380"),
            ("rediss://s3cret@redis:6380", "rediss://***@redis:6380"),
            ("redis://bank:s3c@r/t@redis:6379", "redis://bank:***@redis:6379"),
            ("s3cret", "***"),
        ] {
            assert_eq!(redacted(url), shown);
            assert!(!redacted(url).contains("s3c"), "{url}");
        }
    }
}
