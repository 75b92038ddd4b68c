//! Changes to an account's status and holds: both decide payouts (SPEC §5), so each is fenced in
//! the ledger before it commits (SPEC §7): with the row locked and the change written, the
//! ledger's fence for the account is raised to the new revision, which waits for bookings in
//! flight on the account and refuses, from then on, any quoted at an older revision.

use contracts::problem::Code;
use std::sync::Arc;
use std::time::Duration;

use contracts::{Account, AccountPage, AccountsFound, PayoutFence};
use peers::Ledger;
use platform::{ApiError, ApiResult};
use uuid::Uuid;

use crate::state::AppState;
use crate::store::{self, Change};

fn not_found(id: Uuid) -> ApiError {
    ApiError::of(Code::AccountNotFound, format!("no account {id}"))
}

pub async fn read(s: &AppState, id: Uuid) -> ApiResult<Account> {
    store::find(&s.pool, id).await?.ok_or_else(|| not_found(id))
}

/// The accounts of `ids` that exist (a payout run's chunk).
pub async fn read_many(s: &AppState, ids: &[Uuid]) -> ApiResult<AccountsFound> {
    if ids.is_empty() || ids.len() > contracts::MAX_LOOKUP {
        return Err(ApiError::validation("account_ids", format!("give 1 to {} ids", contracts::MAX_LOOKUP)));
    }
    Ok(AccountsFound { accounts: store::find_many(&s.pool, ids).await? })
}

/// One keyset page of accounts in id order, optionally of one product, status or customer.
pub async fn list(s: &AppState, filter: &store::Filter<'_>, after: Option<Uuid>, limit: i64) -> ApiResult<AccountPage> {
    if !(1..=5000).contains(&limit) {
        return Err(ApiError::validation("limit", "limit must be 1 to 5000"));
    }
    let accounts = store::list(&s.pool, filter, after, limit).await?;
    let next_after = if accounts.len() as i64 == limit { accounts.last().map(|a| a.account_id) } else { None };
    Ok(AccountPage { accounts, next_after })
}

pub async fn change(s: &AppState, id: Uuid, change: Change) -> ApiResult<Account> {
    let mut tx = s.pool.begin().await?;
    let mut account = store::apply(&mut tx, id, &change).await?.ok_or_else(|| not_found(id))?;
    let fence = PayoutFence { subject: contracts::fence::account(id), rev: account.rev, effective_from: None };
    let raised = s.ledger.raise_fence(&fence).await?;
    // Higher only if an earlier change raised the fence and then failed to commit here.
    if let Some(rev) = store::catch_up(&mut *tx, id, raised.rev).await? {
        account.rev = rev;
    }
    platform::fault::point("account.after_fence");
    tx.commit().await?;
    s.revisions.publish(contracts::revision::account(id), account.rev).await;
    Ok(account)
}

/// Accounts whose fence is ahead of their revision catch up with it (see [`peers::fences`]); a
/// change in progress holds the row, so this waits for it.
pub async fn catch_up_with_fences(s: AppState, ledger: Arc<dyn Ledger>, every: Duration) {
    peers::fences::catch_up(ledger, "account-info", "account:", every, |page| {
        let s = s.clone();
        async move {
            let fences: Vec<(Uuid, i64)> = page.iter().filter_map(|(id, rev)| Some((id.parse().ok()?, *rev))).collect();
            let moved = store::catch_up_many(&s.pool, &fences).await?;
            let revs = moved.iter().map(|(id, rev)| (contracts::revision::account(*id), *rev)).collect();
            s.revisions.publish_all(revs).await;
            Ok::<_, sqlx::Error>(moved.len() as u64)
        }
    })
    .await
}
