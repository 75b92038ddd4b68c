//! Reads of recorded payouts: an account's history, a range of business dates for reconciliation,
//! and the batched reads a run's chunk starts from.

use std::collections::HashMap;

use contracts::{Payout, PayoutPage, PayoutsQuery};
use uuid::Uuid;

use super::{store, Payouts};
use crate::error::InterestError;

/// The account's payouts, newest first.
pub async fn history(state: &Payouts, id: Uuid) -> Result<contracts::Payouts, InterestError> {
    Ok(contracts::Payouts { account_id: id, payouts: store::payouts(&state.pool, id).await? })
}

/// Recorded payouts with a business date in `from..=to`, keyset-paged by payout id.
pub async fn payouts_between(state: &Payouts, q: &PayoutsQuery) -> Result<PayoutPage, InterestError> {
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(InterestError::Invalid { field: "limit".into(), detail: "limit must be 1 to 10000".into() });
    }
    let payouts = store::payouts_between(&state.pool, q.from, q.to, q.after, limit).await?;
    let next_after = (payouts.len() as i64 == limit).then(|| payouts.last().map(|p| p.payout_id)).flatten();
    Ok(PayoutPage { payouts, next_after })
}

/// Which of the `(account, key)` pairs already have an answer (a payout or a kept refusal).
pub async fn answered(state: &Payouts, accounts: &[Uuid], keys: &[String]) -> Result<Vec<Uuid>, InterestError> {
    Ok(store::answered(&state.pool, accounts, keys).await?)
}

/// The last recorded payout of each of `ids` that has one.
pub async fn last_payouts(state: &Payouts, ids: &[Uuid]) -> Result<HashMap<Uuid, Payout>, InterestError> {
    Ok(store::last_payouts(&state.pool, ids).await?)
}
