//! Configuration from environment variables with local defaults, validated at start-up.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {name}={value:?}: {reason}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Where a service reads its settings: the process environment as is (one service per process),
/// or, when several services share a process (`bank`), each service's own prefix first
/// (`INTEREST_PORT`, `ACCOUNTING_DATABASE_URL`…) and then the shared name (`REDIS_URL`).
/// A service's port and database are never taken from the shared name in a shared process.
#[derive(Clone, Debug, Default)]
pub struct Env {
    prefix: Option<String>,
}

/// Settings that belong to one service and must not leak from the shared environment into
/// another service of the same process.
const OWN: [&str; 4] = ["PORT", "DATABASE_URL", "SERVICE_KEY", "SERVICE_KEY_FILE"];

impl Env {
    /// The process environment, unprefixed.
    pub fn process() -> Self {
        Self { prefix: None }
    }

    /// A service's view of a shared process's environment: `account-info` reads `ACCOUNT_INFO_*`.
    pub fn for_service(service: &str) -> Self {
        Self { prefix: Some(service.to_ascii_uppercase().replace('-', "_")) }
    }

    /// The variable's name as this view reads it first (for messages).
    pub fn name(&self, name: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}_{name}"),
            None => name.to_string(),
        }
    }

    fn lookup(&self, name: &str) -> Option<String> {
        let get = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        match &self.prefix {
            None => get(name),
            Some(_) if OWN.contains(&name) => get(&self.name(name)),
            Some(_) => get(&self.name(name)).or_else(|| get(name)),
        }
    }

    pub fn var(&self, name: &str, default: &str) -> String {
        self.lookup(name).unwrap_or_else(|| default.to_string())
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        self.lookup(name)
    }

    pub fn parse<T: FromStr>(&self, name: &str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.var(name, default);
        value.parse().map_err(|e: T::Err| ConfigError {
            name: self.name(name),
            value: value.clone(),
            reason: e.to_string(),
        })
    }

    pub fn millis(&self, name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.parse(name, &default_ms.to_string())?))
    }

    pub fn url(&self, name: &str, default: &str) -> Result<String, ConfigError> {
        let value = self.var(name, default);
        if !(value.starts_with("http://") || value.starts_with("https://")) {
            return Err(ConfigError {
                name: self.name(name),
                value,
                reason: "must start with http:// or https://".into(),
            });
        }
        Ok(value.trim_end_matches('/').to_string())
    }
}

/// Settings every service has.
#[derive(Debug, Clone)]
pub struct Common {
    pub service: &'static str,
    pub bind: SocketAddr,
    pub database_url: String,
    pub redis_url: String,
    /// Prefixes every Redis key so several deployments (or test runs) can share one Redis.
    pub redis_prefix: String,
    pub clock_manual: bool,
    pub otlp_endpoint: Option<String>,
    /// This service's signing key and the callers it trusts (`SERVICE_KEY`, `SERVICE_TRUST`):
    /// required, there is no unauthenticated mode.
    pub credentials: crate::credential::Credentials,
}

impl Common {
    pub fn from(env: &Env, service: &'static str, default_port: u16, default_db: &str) -> Result<Self, ConfigError> {
        let (var, optional) = (|n: &str, d: &str| env.var(n, d), |n: &str| env.optional(n));
        let host = var("HOST", "127.0.0.1");
        let port: u16 = env.parse("PORT", &default_port.to_string())?;
        let bind = format!("{host}:{port}").parse().map_err(|e: std::net::AddrParseError| ConfigError {
            name: "HOST".into(),
            value: host,
            reason: e.to_string(),
        })?;
        let database_url = var("DATABASE_URL", &format!("postgres://postgres:postgres@127.0.0.1:5432/{default_db}"));
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(ConfigError {
                name: env.name("DATABASE_URL"),
                value: database_url,
                reason: "must be a postgres:// URL".into(),
            });
        }
        // `redis://` or, for TLS, `rediss://`; either may carry `user:password@` (crate::redis).
        let redis_url = var("REDIS_URL", "redis://127.0.0.1:6379");
        if !redis_url.starts_with("redis://") && !redis_url.starts_with("rediss://") {
            return Err(ConfigError {
                name: "REDIS_URL".into(),
                // The message is logged: never with the password.
                value: crate::redis::redacted(&redis_url),
                reason: "must be a redis:// or rediss:// URL".into(),
            });
        }
        let clock_mode = var("CLOCK_MODE", "system");
        let clock_manual = match clock_mode.as_str() {
            "system" => false,
            "manual" => true,
            _ => {
                return Err(ConfigError {
                    name: "CLOCK_MODE".into(),
                    value: clock_mode,
                    reason: "must be system or manual".into(),
                })
            }
        };
        Ok(Self {
            service,
            bind,
            database_url,
            redis_url,
            redis_prefix: var("REDIS_PREFIX", "bank"),
            clock_manual,
            otlp_endpoint: optional("OTEL_EXPORTER_OTLP_ENDPOINT"),
            credentials: crate::credential::Credentials::from_env(env)?.belonging_to(env, service)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        let env = Env::process();
        assert!(env.url("PLATFORM_TEST_UNSET_URL", "ftp://x").is_err());
        assert_eq!(env.url("PLATFORM_TEST_UNSET_URL", "http://x:1/").unwrap(), "http://x:1");
    }

    #[test]
    fn redis_urls_may_ask_for_tls_and_auth_and_errors_hide_the_password() {
        // Its own prefix, so no other test's variables interfere.
        let env = Env::for_service("platform-test-redis");
        let (keys, trust) = crate::credential::generate(&["platform-test"]).unwrap();
        std::env::set_var("PLATFORM_TEST_REDIS_SERVICE_KEY", &keys[0].1);
        std::env::set_var("PLATFORM_TEST_REDIS_SERVICE_TRUST", trust);
        for url in ["redis://:pw@redis:6379", "rediss://bank:pw@redis.example:6380/0"] {
            std::env::set_var("PLATFORM_TEST_REDIS_REDIS_URL", url);
            assert_eq!(Common::from(&env, "platform-test", 1, "db").unwrap().redis_url, url);
        }
        std::env::set_var("PLATFORM_TEST_REDIS_REDIS_URL", "https://bank:s3cret@redis:6379");
        let err = Common::from(&env, "platform-test", 1, "db").unwrap_err().to_string();
        assert!(err.contains("rediss://") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_shared_process_reads_each_services_own_settings_first() {
        std::env::set_var("PLATFORM_TEST_SVC_PORT", "9001");
        std::env::set_var("PORT", "9999");
        std::env::set_var("PLATFORM_TEST_SHARED", "shared");
        let env = Env::for_service("platform-test-svc");
        assert_eq!(env.var("PORT", "1"), "9001");
        assert_eq!(env.var("PLATFORM_TEST_SHARED", ""), "shared");
        // A service's own settings never come from the shared name.
        assert_eq!(env.var("DATABASE_URL", "own-default"), "own-default");
        assert_eq!(env.name("PORT"), "PLATFORM_TEST_SVC_PORT");
    }
}
