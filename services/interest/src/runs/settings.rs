//! How a replica works on payout runs (`RUN_*`).

use platform::config::{ConfigError, Env};

#[derive(Clone, Copy, Debug)]
pub struct RunSettings {
    /// Payouts in flight per replica.
    pub concurrency: usize,
    /// Items claimed at a time.
    pub chunk: i64,
    /// How long a claim protects items from other replicas (a crashed replica's items wait this).
    pub lease_ms: i64,
    /// Attempts before an account fails for a transient reason.
    pub max_attempts: i32,
    /// Accounts per listing page.
    pub page: i64,
    /// Chunk workers per replica (`RUN_WORKERS`), each with its own claimed chunk.
    pub workers: usize,
    /// Chunks booked in one ledger call (`RUN_BOOKING=chunk`, the default) or account by account
    /// (`single`, the on-demand path for each).
    pub batched: bool,
}

impl RunSettings {
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        let chunk: i64 = env.parse("RUN_CHUNK", "200")?;
        if !(1..=contracts::MAX_LOOKUP as i64).contains(&chunk) {
            let reason = format!("must be 1 to {} (one lookup and one booking call per chunk)", contracts::MAX_LOOKUP);
            return Err(ConfigError { name: env.name("RUN_CHUNK"), value: chunk.to_string(), reason });
        }
        Ok(Self {
            concurrency: env.parse("RUN_CONCURRENCY", "8")?,
            chunk,
            lease_ms: env.parse("RUN_CLAIM_LEASE_MS", "30000")?,
            max_attempts: env.parse("RUN_MAX_ATTEMPTS", "5")?,
            page: env.parse("RUN_PAGE", "1000")?,
            workers: env.parse("RUN_WORKERS", "2")?,
            batched: match env.var("RUN_BOOKING", "chunk").as_str() {
                "chunk" => true,
                "single" => false,
                other => {
                    let reason = "must be chunk or single".to_string();
                    return Err(ConfigError { name: env.name("RUN_BOOKING"), value: other.into(), reason });
                }
            },
        })
    }
}
