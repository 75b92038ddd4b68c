//! Payout runs (issue 8): today's payout over every account (the monthly run) or over a list (batch
//! callers). Every account goes through `payout::pay` — the on-demand use case — with the key
//! `run:<run>:<account>`, so a resumed or retried run replays instead of paying twice, and an account
//! the customer already paid today is skipped. Runs live in the database: any replica enumerates a
//! page (the run row locked with SKIP LOCKED) or claims a chunk of items (SKIP LOCKED, with a lease
//! another replica takes over after a crash). A bounded number of payouts per replica are in flight,
//! so on-demand payouts keep their share of accounting.

use contracts::problem::Code;
use std::sync::Arc;
use std::time::Duration;

use contracts::{AccountPage, PayoutRun, PayoutRuns, StartPayoutRun};
use domain::Withheld;
use futures::StreamExt;
use platform::config::{ConfigError, Env};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::InterestError;
use crate::run_store::{self, Outcome, Run};
use crate::state::AppState;
use crate::{payout, rollout, run_chunk};

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

const MAX_LISTED_ACCOUNTS: usize = 100_000;

/// Starts a run, or returns `RunExists` with the run already started for that date and scope.
pub async fn start(state: &AppState, req: StartPayoutRun) -> Result<PayoutRun, InterestError> {
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
    match run_store::create_run(&state.pool, date, &scope, ids.as_deref()).await? {
        Ok(run_id) => {
            tracing::info!(%run_id, business_date = %date, scope = %scope, "payout run started");
            state.run_wake.notify_waiters();
            report(state, run_id).await
        }
        Err(existing) => Err(InterestError::RunExists(existing)),
    }
}

/// Cancels a running run (idempotent); a finished one cannot be (409 `RUN_FINISHED`).
pub async fn cancel(state: &AppState, run_id: Uuid) -> Result<PayoutRun, InterestError> {
    match run_store::cancel(&state.pool, run_id).await?.as_deref() {
        None => Err(InterestError::RunNotFound(run_id)),
        Some("CANCELLED") => {
            tracing::info!(%run_id, "payout run cancelled");
            report(state, run_id).await
        }
        Some(other) => Err(InterestError::Rule(Code::RunFinished, format!("run {run_id} is {other}"))),
    }
}

pub async fn list(state: &AppState, limit: i64) -> Result<PayoutRuns, InterestError> {
    if !(1..=1000).contains(&limit) {
        return Err(InterestError::Invalid { field: "limit".into(), detail: "limit must be 1 to 1000".into() });
    }
    Ok(PayoutRuns { runs: run_store::list(&state.pool, limit).await? })
}

pub async fn report(state: &AppState, run_id: Uuid) -> Result<PayoutRun, InterestError> {
    run_store::report(&state.pool, run_id).await?.ok_or(InterestError::RunNotFound(run_id))
}

/// Works on running runs until `shutdown`; idle, it waits for a new run or a second.
pub async fn worker(state: AppState, settings: RunSettings, shutdown: Arc<Notify>) {
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
                _ = state.run_wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

/// Each run's last account this worker claimed (see [`run_store::claim`]).
type Cursors = std::collections::HashMap<Uuid, Uuid>;

async fn work_once(state: &AppState, settings: &RunSettings, cursors: &mut Cursors) -> anyhow::Result<bool> {
    let mut worked = false;
    let running = run_store::running(&state.pool).await?;
    metrics::gauge!("interest_payout_runs_running").set(running.len() as f64);
    cursors.retain(|run_id, _| running.iter().any(|r| r.run_id == *run_id));
    for run in running {
        let today = state.clock.today().await?;
        if today > run.business_date {
            tracing::warn!(run_id = %run.run_id, "business date ended before the run; the rest fails");
            run_store::expire(&state.pool, run.run_id).await?;
            continue;
        }
        if today < run.business_date {
            continue;
        }
        if !run.listing_done {
            worked |= list_page(state, &run, settings).await?;
        }
        let after = cursors.get(&run.run_id).copied();
        let mut claimed = run_store::claim(&state.pool, run.run_id, after, settings.chunk, settings.lease_ms).await?;
        if claimed.is_empty() && after.is_some() {
            claimed = run_store::claim(&state.pool, run.run_id, None, settings.chunk, settings.lease_ms).await?;
        }
        match claimed.iter().map(|(id, _)| *id).max() {
            Some(last) => cursors.insert(run.run_id, last),
            None => cursors.remove(&run.run_id),
        };
        if claimed.is_empty() {
            if run_store::complete_if_done(&state.pool, run.run_id).await? {
                tracing::info!(run_id = %run.run_id, "payout run completed");
            }
            continue;
        }
        worked = true;
        let outcomes = pay_chunk(state, run.run_id, claimed, settings).await;
        run_store::record_outcomes(&state.pool, run.run_id, &outcomes).await?;
        for o in &outcomes {
            metrics::counter!("interest_payout_run_items_total", "state" => o.state).increment(1);
        }
    }
    Ok(worked)
}

/// Enumerates one page of accounts into the run, unless another replica is doing it.
async fn list_page(state: &AppState, run: &Run, settings: &RunSettings) -> anyhow::Result<bool> {
    let mut tx = state.pool.begin().await?;
    let Some((after, done)) = run_store::lock_listing(&mut tx, run.run_id).await? else { return Ok(false) };
    if done {
        return Ok(false);
    }
    let page: AccountPage = state.directory.account_info().list(after, settings.page).await?;
    let ids: Vec<Uuid> = page.accounts.iter().map(|a| a.account_id).collect();
    run_store::add_items(&mut tx, run.run_id, &ids).await?;
    let next = page.next_after.or(after);
    if !run_store::advance_listing(&mut tx, run.run_id, next, page.next_after.is_none()).await? {
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// Pays a claimed chunk: the accounts the rollout serves from the legacy core are skipped
/// (`ROUTED_TO_LEGACY`); the rest batched (`run_chunk`) unless `RUN_BOOKING=single`; what the
/// batch leaves, and every account when it fails, one by one through the on-demand use case. A
/// sample of the payouts goes to the shadow comparison with the legacy core (when there is one).
async fn pay_chunk(state: &AppState, run_id: Uuid, claimed: Vec<(Uuid, i32)>, settings: &RunSettings) -> Vec<Outcome> {
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
                state: "PENDING",
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
            state: "SKIPPED",
            reason: Some(Code::RoutedToLegacy.as_str().into()),
            paid: None,
            retry_in_ms: 0,
        })
        .collect();
    let (paid, rest) = if settings.batched && !ids.is_empty() {
        match run_chunk::pay(state, run_id, &ids).await {
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

async fn pay_one(state: &AppState, run_id: Uuid, id: Uuid, attempts: i32, settings: &RunSettings) -> Outcome {
    let key = run_chunk::key(run_id, id);
    let hash = run_chunk::request_hash();
    let outcome = |state: &'static str, reason: Option<String>, paid: Option<(Uuid, Withheld)>, retry_in_ms: i64| {
        Outcome { account_id: id, state, reason, paid, retry_in_ms }
    };
    match payout::pay(&state.payouts, id, &key, &hash).await {
        Ok(p) => {
            let paid = Some((p.payout_id, p.amounts));
            if let Some(shadow) = state.migration.shadow() {
                shadow.offer_from_run(p);
            }
            outcome("PAID", None, paid, 0)
        }
        Err(InterestError::Refused(r)) => outcome("SKIPPED", Some(r.code().to_string()), None, 0),
        // A resumed item whose first attempt was refused: the key replays that refusal.
        Err(InterestError::Replayed { code, .. }) => outcome("SKIPPED", Some(code), None, 0),
        Err(InterestError::AccountNotFound(_)) => {
            outcome("FAILED", Some(Code::AccountNotFound.as_str().into()), None, 0)
        }
        Err(e) if attempts >= settings.max_attempts => {
            tracing::warn!(%run_id, account_id = %id, error = %e, "run payout failed for good");
            outcome("FAILED", Some(e.to_string().chars().take(500).collect()), None, 0)
        }
        Err(e) => {
            tracing::info!(%run_id, account_id = %id, attempts, error = %e, "run payout will be retried");
            outcome("PENDING", None, None, 1000 * attempts as i64)
        }
    }
}
