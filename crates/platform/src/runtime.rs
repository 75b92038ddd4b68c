//! Start-up shared by every service: the database (connected and migrated), Redis where the
//! service needs it (always with the manual clock), the clock, and a bound listener.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::Common;
use crate::redis::Redis;
use crate::server::{check, ReadinessCheck};

pub struct Infra {
    pub pool: PgPool,
    pub redis: Option<Redis>,
    pub clock: Clock,
}

pub async fn start(
    common: &Common,
    migrator: &Migrator,
    needs_redis: bool,
    max_db_connections: u32,
) -> anyhow::Result<Infra> {
    let pool = crate::db::connect(&common.database_url, max_db_connections, Duration::from_secs(30)).await?;
    crate::db::migrate(&pool, migrator).await?;
    let redis = if needs_redis || common.clock_manual {
        Some(
            Redis::connect(&common.redis_url, &common.redis_prefix)
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to Redis at {}: {e}", common.redis_url))?,
        )
    } else {
        None
    };
    let clock = match (&redis, common.clock_manual) {
        (Some(r), true) => Clock::manual(r.clone()),
        _ => Clock::System,
    };
    Ok(Infra { pool, redis, clock })
}

impl Infra {
    /// Readiness checks for the service's own database and, where used, Redis.
    pub fn checks(&self) -> Vec<(&'static str, ReadinessCheck)> {
        let pool = self.pool.clone();
        let mut checks = vec![(
            "database",
            check(move || {
                let pool = pool.clone();
                async move { crate::db::ping(&pool).await.map_err(|e| e.to_string()) }
            }),
        )];
        if let Some(redis) = self.redis.clone() {
            checks.push((
                "redis",
                check(move || {
                    let redis = redis.clone();
                    async move { redis.ping().await.map_err(|e| e.to_string()) }
                }),
            ));
        }
        checks
    }
}

pub async fn bind(common: &Common) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(common.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", common.bind))
}

/// Wraps the service's routes with the platform's, listens, and serves until a shutdown signal
/// lets in-flight requests finish.
pub async fn serve(
    common: &Common,
    openapi: &'static str,
    clock: Clock,
    checks: Vec<(&'static str, ReadinessCheck)>,
    routes: axum::Router,
) -> anyhow::Result<()> {
    let platform = crate::server::Platform { service: common.service, openapi, clock, checks };
    let app = crate::server::app(routes, platform);
    let listener = bind(common).await?;
    tracing::info!(service = common.service, addr = %common.bind, "listening");
    crate::server::serve(listener, app).await?;
    Ok(())
}
