//! The gradual rollout from the legacy core to the new system (docs/migration.md): which side
//! serves a customer's estimates and payouts. The policy lives in the gateway's database (every
//! change kept, with who made it) and each replica re-reads it within `ROLLOUT_REFRESH_MS`, so a
//! change needs no restart. Correctness does not depend on replicas agreeing at every instant:
//! both sides book payouts in the same ledger, which books at most one per account and business
//! date and starts each period after the last payout either side booked.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use contracts::legacy::{RolloutPolicy, SetRollout};
use platform::redis::Redis;
use sqlx::PgPool;
use uuid::Uuid;

pub use contracts::legacy::{default_policy, route};

/// A row of `rollout_changes`, as its migration types it.
struct PolicyRow {
    version: i64,
    percent: i16,
    team: Vec<Uuid>,
    staff: Vec<Uuid>,
    kill_switch: bool,
    changed_by: String,
    changed_at: DateTime<Utc>,
    reason: Option<String>,
}

impl From<PolicyRow> for RolloutPolicy {
    fn from(r: PolicyRow) -> Self {
        RolloutPolicy {
            percent: u8::try_from(r.percent).unwrap_or(0),
            team: r.team,
            staff: r.staff,
            kill_switch: r.kill_switch,
            version: r.version,
            changed_by: Some(r.changed_by),
            changed_at: Some(r.changed_at),
            reason: r.reason,
        }
    }
}

/// The latest change (the default policy when there has been none).
pub async fn load(pool: &PgPool) -> Result<RolloutPolicy, sqlx::Error> {
    let row = sqlx::query_as!(
        PolicyRow,
        "SELECT version, percent, team, staff, kill_switch, changed_by, changed_at, reason
         FROM rollout_changes ORDER BY version DESC LIMIT 1"
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map_or_else(default_policy, RolloutPolicy::from))
}

/// The latest `limit` changes, newest first.
pub async fn changes(pool: &PgPool, limit: i64) -> Result<Vec<RolloutPolicy>, sqlx::Error> {
    let rows = sqlx::query_as!(
        PolicyRow,
        "SELECT version, percent, team, staff, kill_switch, changed_by, changed_at, reason
         FROM rollout_changes ORDER BY version DESC LIMIT $1",
        limit,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(RolloutPolicy::from).collect())
}

/// Stores the next version (changes serialized by a table lock: versions have no gaps).
pub async fn change(pool: &PgPool, set: &SetRollout, by: &str) -> Result<RolloutPolicy, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!("LOCK TABLE rollout_changes IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    let row = sqlx::query_as!(
        PolicyRow,
        "INSERT INTO rollout_changes (version, percent, team, staff, kill_switch, changed_by, reason)
         SELECT COALESCE(MAX(version), 0) + 1, $1, $2, $3, $4, $5, $6 FROM rollout_changes
         RETURNING version, percent, team, staff, kill_switch, changed_by, changed_at, reason",
        i16::from(set.percent),
        &set.team,
        &set.staff,
        set.kill_switch,
        by,
        set.reason.as_deref(),
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// The policy as this replica last read it.
pub struct Rollout {
    current: RwLock<(Instant, RolloutPolicy)>,
    refresh: Duration,
    /// Where payout runs read the policy (`contracts::revision::rollout()`).
    redis: Option<Redis>,
}

impl Rollout {
    pub fn new(policy: RolloutPolicy, refresh: Duration, redis: Option<Redis>) -> Self {
        Self { current: RwLock::new((Instant::now(), policy)), refresh, redis }
    }

    /// Publishes the policy for payout runs (failures are logged: the next publication heals).
    pub async fn publish(&self, policy: &RolloutPolicy) {
        let Some(redis) = &self.redis else { return };
        let json = match serde_json::to_string(policy) {
            Ok(j) => j,
            Err(e) => return tracing::warn!(error = %e, "rollout policy not serialized"),
        };
        if let Err(e) = redis.set(&contracts::revision::rollout(), &json).await {
            tracing::warn!(error = %e, "rollout policy not published to Redis; retried within the refresh interval");
        }
    }

    /// For the life of the process: every refresh interval, the policy is re-read and published,
    /// so payout runs follow a change made through any replica, and an emptied Redis is refilled.
    pub async fn keep_published(self: std::sync::Arc<Self>, pool: PgPool) {
        loop {
            match load(&pool).await {
                Ok(policy) => {
                    self.adopt(policy.clone());
                    self.publish(&policy).await;
                }
                Err(e) => tracing::warn!(error = %e, "rollout policy not re-read for publication"),
            }
            tokio::time::sleep(self.refresh).await;
        }
    }

    /// The policy, re-read when older than the refresh interval (the last one read when the
    /// database does not answer: routing keeps working on it).
    pub async fn policy(&self, pool: &PgPool) -> RolloutPolicy {
        let (at, policy) = self.current.read().unwrap_or_else(|p| p.into_inner()).clone();
        if at.elapsed() < self.refresh {
            return policy;
        }
        match load(pool).await {
            Ok(fresh) => {
                self.adopt(fresh.clone());
                fresh
            }
            Err(e) => {
                tracing::warn!(error = %e, "rollout policy not re-read; routing on the last one");
                policy
            }
        }
    }

    pub fn adopt(&self, policy: RolloutPolicy) {
        metrics::gauge!("rollout_percent").set(f64::from(policy.percent));
        metrics::gauge!("rollout_kill_switch").set(if policy.kill_switch { 1.0 } else { 0.0 });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::legacy::Side;
    use uuid::Uuid;

    fn policy(percent: u8) -> RolloutPolicy {
        RolloutPolicy { percent, ..default_policy() }
    }

    fn ids(n: u128) -> Vec<Uuid> {
        // Deterministic, unrelated ids (v5 of a counter), as customer ids are.
        (0..n).map(|i| Uuid::new_v5(&Uuid::NAMESPACE_OID, &i.to_be_bytes())).collect()
    }

    #[test]
    fn ten_percent_of_ten_thousand_customers_go_new_each_always_the_same_and_twenty_is_a_superset() {
        let customers = ids(10_000);
        let new_at = |p: u8| -> Vec<Uuid> {
            customers.iter().copied().filter(|c| route(&policy(p), *c).side == Side::New).collect()
        };
        let ten = new_at(10);
        assert!((900..=1100).contains(&ten.len()), "10% routed {} of 10,000 new", ten.len());
        assert_eq!(new_at(10), ten, "each customer always goes to the same side");
        let twenty = new_at(20);
        assert!((1850..=2150).contains(&twenty.len()), "20% routed {} new", twenty.len());
        assert!(ten.iter().all(|c| twenty.contains(c)), "raising 10% to 20% moved someone back");
        assert!(new_at(0).is_empty());
        assert_eq!(new_at(100).len(), 10_000);
    }

    #[test]
    fn the_kill_switch_beats_the_allowlists_and_the_allowlists_beat_the_percentage() {
        let c = ids(1)[0];
        let listed = RolloutPolicy { percent: 0, team: vec![c], ..default_policy() };
        assert_eq!(route(&listed, c).side, Side::New);
        assert_eq!(route(&listed, c).reason, "team");
        let staff = RolloutPolicy { percent: 0, staff: vec![c], ..default_policy() };
        assert_eq!(route(&staff, c).reason, "staff");
        let killed = RolloutPolicy { kill_switch: true, ..listed };
        assert_eq!(route(&killed, c).side, Side::Legacy);
        assert_eq!(route(&policy(0), c).side, Side::Legacy);
    }
}
