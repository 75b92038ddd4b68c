//! Changes to an account's status and holds: both decide payouts (SPEC §5), so each is fenced in
//! the ledger before it commits (SPEC §7): with the row locked and the change written, the
//! ledger's fence for the account is raised to the new revision, which waits for bookings in
//! flight on the account and refuses, from then on, any quoted at an older revision.

use contracts::{Account, PayoutFence};
use platform::client::ServiceClient;
use platform::revision;
use platform::{ApiError, ApiResult};
use std::time::Duration;

use uuid::Uuid;

use crate::store::{self, Change};
use crate::AppState;

pub async fn change(s: &AppState, id: Uuid, change: Change) -> ApiResult<Account> {
    let mut tx = s.pool.begin().await?;
    let mut account = store::apply(&mut tx, id, &change)
        .await?
        .ok_or_else(|| ApiError::not_found("ACCOUNT_NOT_FOUND", format!("no account {id}")))?;
    let fence = PayoutFence { subject: contracts::fence::account(id), rev: account.rev, effective_from: None };
    let raised: PayoutFence = s.ledger.post("/v1/ledger/payout-fences", &fence, &[]).await?;
    // Higher only if an earlier change raised the fence and then failed to commit here.
    if let Some(rev) = store::catch_up(&mut *tx, id, raised.rev).await? {
        account.rev = rev;
    }
    platform::fault::point("account.after_fence");
    tx.commit().await?;
    s.revisions.publish(revision::account_key(id), account.rev).await;
    Ok(account)
}

/// For the life of the process: accounts whose fence is ahead of their revision (this service died,
/// or lost the ledger's answer, between raising a fence and committing) catch up with it, so their
/// payouts are not refused as stale until their next change. At start-up over the last day, then
/// every `every` (`FENCE_CATCH_UP_MS`, 30 s) over the last 10 minutes; a change in progress holds
/// the row, so this waits for it.
pub async fn catch_up_with_fences(s: AppState, ledger: ServiceClient, every: Duration) {
    let mut window = 86_400;
    loop {
        let path = format!("/v1/ledger/payout-fences?prefix=account:&within_secs={window}");
        match ledger.get::<Vec<PayoutFence>>(&path).await {
            Ok(fences) => {
                for f in fences {
                    let Some(id) = f.subject.strip_prefix("account:").and_then(|i| i.parse::<Uuid>().ok()) else {
                        continue;
                    };
                    match store::catch_up(&s.pool, id, f.rev).await {
                        Ok(Some(rev)) => s.revisions.publish(revision::account_key(id), rev).await,
                        Ok(None) => {}
                        Err(e) => tracing::warn!(error = %e, account_id = %id, "revision not caught up with its fence"),
                    }
                }
                window = 600;
            }
            Err(e) => tracing::warn!(error = %e, "payout fences not readable; retrying"),
        }
        tokio::time::sleep(if window == 600 { every } else { Duration::from_secs(2) }).await;
    }
}
