//! Starting, cancelling and reading payout runs (the routes' use cases); the workers do the rest.

use contracts::problem::Code;
use contracts::{PayoutRun, PayoutRuns, RunState, StartPayoutRun};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{store, Runs};
use crate::error::InterestError;

const MAX_LISTED_ACCOUNTS: usize = 100_000;

/// Starts a run, or returns `RunExists` with the run already started for that date and scope.
pub async fn start(state: &Runs, req: StartPayoutRun) -> Result<PayoutRun, InterestError> {
    let today = state.clock.today().await?;
    let date = req.business_date.unwrap_or(today);
    if date != today {
        return Err(InterestError::Invalid {
            field: "business_date".into(),
            detail: format!("a run pays on today's business date, {today}"),
        });
    }
    let (scope, ids) = match req.account_ids {
        None => ("ALL".to_string(), None),
        Some(mut ids) => {
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() || ids.len() > MAX_LISTED_ACCOUNTS {
                return Err(InterestError::Invalid {
                    field: "account_ids".into(),
                    detail: format!("give 1 to {MAX_LISTED_ACCOUNTS} account ids, or none for every account"),
                });
            }
            let mut h = Sha256::new();
            for id in &ids {
                h.update(id.as_bytes());
            }
            let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            (format!("ACCOUNTS:{digest}"), Some(ids))
        }
    };
    match store::create_run(&state.pool, date, &scope, ids.as_deref()).await? {
        Ok(run_id) => {
            tracing::info!(%run_id, business_date = %date, scope = %scope, "payout run started");
            state.wake.notify_waiters();
            report(state, run_id).await
        }
        Err(existing) => Err(InterestError::RunExists(existing)),
    }
}

/// Cancels a running run (idempotent); a finished one cannot be (409 `RUN_FINISHED`).
pub async fn cancel(state: &Runs, run_id: Uuid) -> Result<PayoutRun, InterestError> {
    match store::cancel(&state.pool, run_id).await? {
        None => Err(InterestError::RunNotFound(run_id)),
        Some(RunState::Cancelled) => {
            tracing::info!(%run_id, "payout run cancelled");
            report(state, run_id).await
        }
        Some(other) => Err(InterestError::Rule(Code::RunFinished, format!("run {run_id} is {other}"))),
    }
}

pub async fn list(state: &Runs, limit: i64) -> Result<PayoutRuns, InterestError> {
    if !(1..=1000).contains(&limit) {
        return Err(InterestError::Invalid { field: "limit".into(), detail: "limit must be 1 to 1000".into() });
    }
    Ok(PayoutRuns { runs: store::list(&state.pool, limit).await? })
}

pub async fn report(state: &Runs, run_id: Uuid) -> Result<PayoutRun, InterestError> {
    store::report(&state.pool, run_id).await?.ok_or(InterestError::RunNotFound(run_id))
}
