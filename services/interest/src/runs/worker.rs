//! The run workers: each enumerates pages of accounts into a running run and claims chunks of its
//! items, pays them (batched through `chunk`, what the batch leaves one by one through the
//! on-demand use case) and records their outcomes.

use std::sync::Arc;
use std::time::Duration;

use contracts::problem::Code;
use contracts::AccountPage;
use domain::Withheld;
use futures::StreamExt;
use tokio::sync::Notify;
use uuid::Uuid;

use super::store::{self, Outcome, Run};
use super::{chunk, rollout, ItemState, RunSettings, Runs};
use crate::error::InterestError;
use crate::payout;

/// Works on running runs until `shutdown`; idle, it waits for a new run or a second.
pub async fn worker(state: Runs, settings: RunSettings, shutdown: Arc<Notify>) {
    let mut cursors = Cursors::new();
    loop {
        let worked = match work_once(&state, &settings, &mut cursors).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "payout run worker failed; retrying");
                false
            }
        };
        if !worked {
            tokio::select! {
                _ = shutdown.notified() => return,
                _ = state.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Each run's last account this worker claimed (see [`store::claim`]).
type Cursors = std::collections::HashMap<Uuid, Uuid>;

async fn work_once(state: &Runs, settings: &RunSettings, cursors: &mut Cursors) -> anyhow::Result<bool> {
    let mut worked = false;
    let running = store::running(&state.pool).await?;
    metrics::gauge!("interest_payout_runs_running").set(running.len() as f64);
    cursors.retain(|run_id, _| running.iter().any(|r| r.run_id == *run_id));
    for run in running {
        let today = state.clock.today().await?;
        if today > run.business_date {
            tracing::warn!(run_id = %run.run_id, "business date ended before the run; the rest fails");
            store::expire(&state.pool, run.run_id).await?;
            continue;
        }
        if today < run.business_date {
            continue;
        }
        if !run.listing_done {
            worked |= list_page(state, &run, settings).await?;
        }
        let after = cursors.get(&run.run_id).copied();
        let mut claimed = store::claim(&state.pool, run.run_id, after, settings.chunk, settings.lease_ms).await?;
        if claimed.is_empty() && after.is_some() {
            claimed = store::claim(&state.pool, run.run_id, None, settings.chunk, settings.lease_ms).await?;
        }
        match claimed.iter().map(|(id, _)| *id).max() {
            Some(last) => cursors.insert(run.run_id, last),
            None => cursors.remove(&run.run_id),
        };
        if claimed.is_empty() {
            if store::complete_if_done(&state.pool, run.run_id).await? {
                tracing::info!(run_id = %run.run_id, "payout run completed");
            }
            continue;
        }
        worked = true;
        let outcomes = pay_chunk(state, run.run_id, claimed, settings).await;
        store::record_outcomes(&state.pool, run.run_id, &outcomes).await?;
        for o in &outcomes {
            metrics::counter!("interest_payout_run_items_total", "state" => o.state.as_str()).increment(1);
        }
    }
    Ok(worked)
}

/// Enumerates one page of accounts into the run, unless another replica is doing it.
async fn list_page(state: &Runs, run: &Run, settings: &RunSettings) -> anyhow::Result<bool> {
    let mut tx = state.pool.begin().await?;
    let Some((after, done)) = store::lock_listing(&mut tx, run.run_id).await? else { return Ok(false) };
    if done {
        return Ok(false);
    }
    let page: AccountPage = state.directory.account_info().list(after, settings.page).await?;
    let ids: Vec<Uuid> = page.accounts.iter().map(|a| a.account_id).collect();
    store::add_items(&mut tx, run.run_id, &ids).await?;
    let next = page.next_after.or(after);
    if !store::advance_listing(&mut tx, run.run_id, next, page.next_after.is_none()).await? {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// Pays a claimed chunk: the accounts the rollout serves from the legacy core are skipped
/// (`ROUTED_TO_LEGACY`); the rest batched (`run_chunk`) unless `RUN_BOOKING=single`; what the
/// batch leaves, and every account when it fails, one by one through the on-demand use case. A
/// sample of the payouts goes to the shadow comparison with the legacy core (when there is one).
async fn pay_chunk(state: &Runs, run_id: Uuid, claimed: Vec<(Uuid, i32)>, settings: &RunSettings) -> Vec<Outcome> {
    let attempts: std::collections::HashMap<Uuid, i32> = claimed.iter().copied().collect();
    let ids: Vec<Uuid> = claimed.iter().map(|(id, _)| *id).collect();
    let legacy = match rollout::routed_to_legacy(state, &ids).await {
        Ok(legacy) => legacy,
        Err(e) => {
            // Which side serves them is not known: none is paid now (fail closed), all are retried.
            tracing::warn!(%run_id, error = %e, "rollout not followed for a chunk; retrying it");
            let retry = |id: &Uuid| 1000 * i64::from(attempts.get(id).copied().unwrap_or(1));
            let pending = |id: Uuid| Outcome {
                account_id: id,
                state: ItemState::Pending,
                reason: None,
                paid: None,
                retry_in_ms: retry(&id),
            };
            return ids.into_iter().map(pending).collect();
        }
    };
    let (ids, skipped): (Vec<Uuid>, Vec<Uuid>) = ids.into_iter().partition(|id| !legacy.contains(id));
    let mut outcomes: Vec<Outcome> = skipped
        .into_iter()
        .map(|id| Outcome {
            account_id: id,
            state: ItemState::Skipped,
            reason: Some(Code::RoutedToLegacy.as_str().into()),
            paid: None,
            retry_in_ms: 0,
        })
        .collect();
    let (paid, rest) = if settings.batched && !ids.is_empty() {
        match chunk::pay(state, run_id, &ids).await {
            Ok(paid_and_rest) => paid_and_rest,
            Err(e) => {
                tracing::warn!(%run_id, accounts = ids.len(), error = %e, "chunk booking failed; paying its accounts one by one");
                (Vec::new(), ids)
            }
        }
    } else {
        (Vec::new(), ids)
    };
    outcomes.extend(paid);
    let singles: Vec<Outcome> = futures::stream::iter(rest)
        .map(|id| pay_one(state, run_id, id, attempts.get(&id).copied().unwrap_or(1), settings))
        .buffer_unordered(settings.concurrency.max(1))
        .collect()
        .await;
    outcomes.extend(singles);
    outcomes
}

async fn pay_one(state: &Runs, run_id: Uuid, id: Uuid, attempts: i32, settings: &RunSettings) -> Outcome {
    let key = chunk::key(run_id, id);
    let hash = chunk::request_hash();
    let outcome = |state: ItemState, reason: Option<String>, paid: Option<(Uuid, Withheld)>, retry_in_ms: i64| {
        Outcome { account_id: id, state, reason, paid, retry_in_ms }
    };
    match payout::pay(&state.payouts, id, &key, &hash).await {
        Ok(p) => {
            let paid = Some((p.payout_id, p.amounts));
            if let Some(shadow) = &state.shadow {
                shadow.offer_from_run(p);
            }
            outcome(ItemState::Paid, None, paid, 0)
        }
        Err(InterestError::Refused(r)) => outcome(ItemState::Skipped, Some(r.code().to_string()), None, 0),
        // A resumed item whose first attempt was refused: the key replays that refusal.
        Err(InterestError::Replayed { code, .. }) => outcome(ItemState::Skipped, Some(code), None, 0),
        Err(InterestError::AccountNotFound(_)) => {
            outcome(ItemState::Failed, Some(Code::AccountNotFound.as_str().into()), None, 0)
        }
        Err(e) if attempts >= settings.max_attempts => {
            tracing::warn!(%run_id, account_id = %id, error = %e, "run payout failed for good");
            outcome(ItemState::Failed, Some(e.to_string().chars().take(500).collect()), None, 0)
        }
        Err(e) => {
            tracing::info!(%run_id, account_id = %id, attempts, error = %e, "run payout will be retried");
            outcome(ItemState::Pending, None, None, 1000 * attempts as i64)
        }
    }
}
