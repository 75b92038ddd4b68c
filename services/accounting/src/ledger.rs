//! The ledger's shared machinery and its owner-facing use cases: the bounded retry of a busy
//! balance row (every use case that locks one), payout fences, and the payout feed.

use contracts::problem::Code;
use std::future::Future;
use std::time::Duration;

use contracts::{FencePage, InterestPostingFeed, PayoutFence};
use rand::Rng;

use crate::error::LedgerError;
use crate::state::AppState;
use crate::store;

/// Runs `attempt` until it succeeds or fails for a reason another attempt cannot change. A busy
/// row, a deadlock, or an owner's change since what the attempt read (`LedgerError::is_retryable`)
/// is tried again, with backoff and jitter, until the budget runs out (503 `ACCOUNT_BUSY`).
pub(crate) async fn retrying<T, F, Fut>(state: &AppState, mut attempt: F) -> Result<T, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, LedgerError>>,
{
    let deadline = tokio::time::Instant::now() + state.lock_budget;
    let mut backoff = Duration::from_millis(10);
    loop {
        match attempt().await {
            Err(e) if e.is_retryable() => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(LedgerError::Busy);
                }
                let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64);
                tokio::time::sleep((backoff + Duration::from_millis(jitter)).min(deadline - now)).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Raises an owner's fence (see `contracts::PayoutFence`): waits for the bookings in flight on the
/// subject, refuses a rate schedule that starts inside a booked period, and from its commit on
/// refuses bookings quoted at an older revision.
pub async fn raise_fence(state: &AppState, fence: &PayoutFence) -> Result<PayoutFence, LedgerError> {
    if fence.subject.is_empty() || fence.subject.chars().count() > 200 || fence.rev < 0 {
        let detail = "subject must be 1 to 200 characters and rev not negative";
        return Err(LedgerError::Invalid("subject", detail.into()));
    }
    // Bookings hold the subject for one short transaction each; give up well before the owner's
    // HTTP timeout (3 s by default) so the owner learns the fence was not raised.
    let mut tx = store::begin_waiting_at_most(&state.pool, 2000).await?;
    store::lock_fence(&mut tx, &fence.subject).await?;
    if let (Some(product), Some(from)) = (contracts::fence::rates_product(&fence.subject), fence.effective_from) {
        if let Some(paid) = store::product_paid_through(&mut tx, product).await?.filter(|p| from <= *p) {
            return Err(LedgerError::Refused(
                Code::RateScheduleAffectsPaidPeriod,
                format!("interest of {product} is already paid through {paid}; a new schedule must start after it"),
            ));
        }
    }
    if let (Some(category), Some(from)) = (contracts::fence::tax_category(&fence.subject), fence.effective_from) {
        if let Some(paid) = store::category_paid_on(&mut tx, category).await?.filter(|p| from <= *p) {
            return Err(LedgerError::Refused(
                Code::TaxRuleAffectsPaidPeriod,
                format!("a {} payout was booked on {paid}; a new tax rule must start after it", category.as_str()),
            ));
        }
    }
    let rev = store::raise_fence(&mut tx, &fence.subject, fence.rev).await?;
    tx.commit().await?;
    Ok(PayoutFence { rev, ..fence.clone() })
}

/// Fences of one kind (`prefix`) raised after `after_seq`, in raise order: an owner reads them
/// all, from wherever it stopped, to catch its revisions up with any a failed change left ahead.
pub async fn fences_after(
    state: &AppState,
    prefix: &str,
    after_seq: i64,
    limit: i64,
) -> Result<FencePage, LedgerError> {
    if prefix.chars().count() > 200 {
        return Err(LedgerError::Invalid("prefix", "prefix must be at most 200 characters".into()));
    }
    if !(1..=10_000).contains(&limit) {
        return Err(LedgerError::Invalid("limit", "limit must be 1 to 10000".into()));
    }
    Ok(FencePage { fences: store::fences_after(&state.pool, prefix, after_seq.max(0), limit).await? })
}

/// Booked payouts in booking order after `after_seq`, for the interest service's recovery.
pub async fn interest_feed(state: &AppState, after_seq: i64, limit: i64) -> Result<InterestPostingFeed, LedgerError> {
    let limit = limit.clamp(1, 5000);
    Ok(InterestPostingFeed { postings: store::interest_feed(&state.pool, after_seq, limit).await? })
}
