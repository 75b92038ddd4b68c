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

pub fn var(name: &str, default: &str) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_string())
}

pub fn optional(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn parse<T: FromStr>(name: &str, default: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    let value = var(name, default);
    value.parse().map_err(|e: T::Err| ConfigError { name: name.into(), value: value.clone(), reason: e.to_string() })
}

pub fn millis(name: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(parse(name, &default_ms.to_string())?))
}

pub fn url(name: &str, default: &str) -> Result<String, ConfigError> {
    let value = var(name, default);
    if !(value.starts_with("http://") || value.starts_with("https://")) {
        return Err(ConfigError { name: name.into(), value, reason: "must start with http:// or https://".into() });
    }
    Ok(value.trim_end_matches('/').to_string())
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
}

impl Common {
    pub fn from_env(service: &'static str, default_port: u16, default_db: &str) -> Result<Self, ConfigError> {
        let host = var("HOST", "127.0.0.1");
        let port: u16 = parse("PORT", &default_port.to_string())?;
        let bind = format!("{host}:{port}").parse().map_err(|e: std::net::AddrParseError| ConfigError {
            name: "HOST".into(),
            value: host,
            reason: e.to_string(),
        })?;
        let database_url = var("DATABASE_URL", &format!("postgres://postgres:postgres@127.0.0.1:5432/{default_db}"));
        if !database_url.starts_with("postgres://") && !database_url.starts_with("postgresql://") {
            return Err(ConfigError {
                name: "DATABASE_URL".into(),
                value: database_url,
                reason: "must be a postgres:// URL".into(),
            });
        }
        let redis_url = var("REDIS_URL", "redis://127.0.0.1:6379");
        if !redis_url.starts_with("redis://") {
            return Err(ConfigError {
                name: "REDIS_URL".into(),
                value: redis_url,
                reason: "must be a redis:// URL".into(),
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_validation() {
        assert!(url("PLATFORM_TEST_UNSET_URL", "ftp://x").is_err());
        assert_eq!(url("PLATFORM_TEST_UNSET_URL", "http://x:1/").unwrap(), "http://x:1");
    }
}
