//! The gateway's rollout policy, as a payout run follows it (docs/migration.md): an account whose
//! customer the rollout serves from the legacy core is not paid by this system's run — it is
//! skipped with `ROUTED_TO_LEGACY` and counted, and the legacy core pays it on its own schedule.
//!
//! The gateway owns the policy (its database) and publishes it to Redis on every change and every
//! second (`contracts::revision::rollout()`). A run reads it once a chunk; if Redis does not answer
//! or has lost it (emptied), the last policy this replica read governs — so a change reaches runs
//! within about a second, and an emptied Redis is healed by the gateway's next publication. With
//! no gateway ever having published (a bank without a legacy core), everyone is on the new system.

use std::collections::HashSet;
use std::sync::Mutex;

use contracts::legacy::{default_policy, route, RolloutPolicy, Side};
use platform::redis::Redis;
use uuid::Uuid;

use super::Runs;
use crate::error::InterestError;

/// The policy as this replica last read it.
#[derive(Default)]
pub struct Follower {
    last: Mutex<Option<RolloutPolicy>>,
}

impl Follower {
    /// The policy Redis holds, or the last one read when it cannot say.
    pub async fn policy(&self, redis: Option<&Redis>) -> RolloutPolicy {
        let last = || self.last.lock().unwrap_or_else(|p| p.into_inner()).clone().unwrap_or_else(default_policy);
        match read(redis).await {
            Ok(Some(policy)) => {
                *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(policy.clone());
                policy
            }
            Ok(None) => last(),
            Err(e) => {
                tracing::warn!(error = %e, "rollout policy not read; a run follows the last one read");
                last()
            }
        }
    }
}

async fn read(redis: Option<&Redis>) -> Result<Option<RolloutPolicy>, String> {
    let Some(redis) = redis else { return Ok(None) };
    let Some(json) = redis.get(&contracts::revision::rollout()).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    serde_json::from_str(&json).map(Some).map_err(|e| e.to_string())
}

/// Whether a policy sends anyone to the legacy core.
fn sends_anyone_to_legacy(p: &RolloutPolicy) -> bool {
    p.kill_switch || p.percent < 100
}

/// The accounts of `ids` whose customers the rollout serves from the legacy core.
pub async fn routed_to_legacy(state: &Runs, ids: &[Uuid]) -> Result<HashSet<Uuid>, InterestError> {
    let policy = state.rollout.policy(state.redis.as_ref()).await;
    if !sends_anyone_to_legacy(&policy) || ids.is_empty() {
        return Ok(HashSet::new());
    }
    let accounts = state.directory.account_info().accounts(ids).await?.accounts;
    Ok(accounts
        .into_iter()
        .filter(|a| route(&policy, a.customer_id).side == Side::Legacy)
        .map(|a| a.account_id)
        .collect())
}
