//! PostgreSQL pool and migrations.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// Connects lazily-tolerant: retries for up to `wait` so services can start before the database.
pub async fn connect(url: &str, max_connections: u32, wait: Duration) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse()?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let attempt = PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await;
        match attempt {
            Ok(pool) => return Ok(pool),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "database not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(anyhow::anyhow!("cannot connect to the database: {e}")),
        }
    }
}

pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator.run(pool).await.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))
}

pub async fn ping(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
}

/// True for a unique-constraint violation (23505), optionally on the named constraint.
pub fn is_unique_violation(e: &sqlx::Error, constraint: Option<&str>) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some("23505") && constraint.is_none_or(|c| db.constraint() == Some(c))
        }
        _ => false,
    }
}

/// A unique key that guards a rule: its violation is that rule's refusal, not a database failure
/// (`journal_entries_one_payout_a_day` → 409 `ALREADY_PAID_TODAY`, `products_pkey` → 409
/// `PRODUCT_EXISTS`). Other errors pass through as they are.
pub trait GuardedBy<T> {
    fn guarded_by<E: From<sqlx::Error>>(self, constraint: &str, refusal: impl FnOnce() -> E) -> Result<T, E>;
}

impl<T> GuardedBy<T> for Result<T, sqlx::Error> {
    fn guarded_by<E: From<sqlx::Error>>(self, constraint: &str, refusal: impl FnOnce() -> E) -> Result<T, E> {
        match self {
            Err(e) if is_unique_violation(&e, Some(constraint)) => Err(refusal()),
            other => other.map_err(E::from),
        }
    }
}
