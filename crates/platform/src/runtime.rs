//! Start-up shared by every service: the database (connected and migrated), Redis where the
//! service needs it (always with the manual clock), the clock, and a bound listener.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

use sqlx::migrate::Migrator;
use sqlx::PgPool;

use crate::clock::Clock;
use crate::config::Common;
use crate::credential::Grant;
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
        Some(Redis::connect(&common.redis_url, &common.redis_prefix).await.map_err(|e| {
            anyhow::anyhow!("cannot connect to Redis at {}: {e}", crate::redis::redacted(&common.redis_url))
        })?)
    } else {
        None
    };
    let clock = match (&redis, common.clock_manual) {
        (Some(r), true) => Clock::manual(r.clone()),
        _ => Clock::System,
    };
    clock.follow(Duration::from_millis(500));
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

/// A service as its own process: telemetry for it, then the app `build` makes, served until SIGTERM.
/// (`build` is a future, so nothing in it runs before telemetry is set up.)
///
/// With the argument `migrate` it only applies the service's migrations and exits: the
/// migration Job run before a rollout (deploy/k8s).
pub async fn run_alone<S>(
    common: &Common,
    migrator: &'static sqlx::migrate::Migrator,
    build: impl Future<Output = anyhow::Result<App<S>>>,
) -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init(common.service, common.otlp_endpoint.as_deref())?;
    if std::env::args().nth(1).as_deref() == Some("migrate") {
        let pool = crate::db::connect(&common.database_url, 1, std::time::Duration::from_secs(120)).await?;
        crate::db::migrate(&pool, migrator).await?;
        tracing::info!(service = common.service, "migrations applied");
        return Ok(());
    }
    build.await?.run_until_stopped().await
}

pub async fn bind(common: &Common) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(common.bind)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", common.bind))
}

/// Who may call a service's routes.
pub enum Exposure {
    /// Every route but health needs a service credential whose caller one of the grants lets
    /// through.
    Internal(&'static [Grant]),
    /// The gateway: its own routes and document are open to the network (it checks its callers'
    /// tokens itself); its metrics still need a service credential (any trusted caller).
    Public,
}

/// A service built and listening (its port bound, port 0 picks a free one), not yet serving.
/// `state` is what the service's own routes use, so a process hosting several services can hand
/// one service's state to another's in-process peer.
pub struct App<S> {
    pub state: S,
    service: &'static str,
    listener: tokio::net::TcpListener,
    router: axum::Router,
    after_stop: Vec<BoxFuture<'static, ()>>,
}

impl<S> App<S> {
    /// Wraps the service's routes with the platform's and binds the listener; `exposure` says who
    /// may call them (see [`Exposure`]).
    pub async fn bind(
        common: &Common,
        clock: Clock,
        checks: Vec<(&'static str, ReadinessCheck)>,
        (routes, openapi): (axum::Router, utoipa::openapi::OpenApi),
        state: S,
        exposure: Exposure,
    ) -> anyhow::Result<Self> {
        let (grants, public) = match exposure {
            Exposure::Internal(grants) => (grants, false),
            Exposure::Public => (&[][..], true),
        };
        let access = crate::server::Access { trust: common.credentials.trust.clone(), grants, public };
        let platform = crate::server::Platform { service: common.service, openapi, clock, checks, access };
        let router = crate::server::app(routes, platform);
        let listener = bind(common).await?;
        Ok(Self { state, service: common.service, listener, router, after_stop: Vec::new() })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Work to finish once requests have drained (a relay publishing what they recorded).
    pub fn after_stop(mut self, work: impl Future<Output = ()> + Send + 'static) -> Self {
        self.after_stop.push(Box::pin(work));
        self
    }

    /// Serves until SIGTERM or Ctrl-C.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(crate::server::shutdown_signal()).await
    }

    /// Serves until `stop` completes; in-flight requests finish, then the after-stop work runs.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        tracing::info!(service = self.service, port = self.port(), "listening");
        // The peer's address is kept for the gateway's per-address limit.
        let service = self.router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(self.listener, service).with_graceful_shutdown(stop).await?;
        for work in self.after_stop {
            work.await;
        }
        Ok(())
    }
}
