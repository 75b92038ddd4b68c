//! Changes to a customer's status and tax category: both decide payouts (SPEC §4, §5), so each is
//! fenced in the ledger before it commits (SPEC §7): with the row locked and the change written,
//! the ledger's fence for the customer is raised to the new revision, which waits for bookings in
//! flight on the customer and refuses, from then on, any quoted at an older revision.

use contracts::{Customer, PayoutFence};
use platform::client::ServiceClient;
use platform::revision::{self, Publisher};
use platform::{ApiError, ApiResult};
use sqlx::PgPool;
use std::time::Duration;

use uuid::Uuid;

use crate::store::{self, Change};

/// Applies the changes (one or more, in one transaction) behind one fence.
pub async fn change(
    pool: &PgPool,
    ledger: &ServiceClient,
    revisions: &Publisher,
    id: Uuid,
    changes: &[Change<'_>],
) -> ApiResult<Customer> {
    let mut tx = pool.begin().await?;
    let mut changed = None;
    for change in changes {
        changed = store::apply(&mut tx, id, change).await?;
    }
    let mut customer = changed.ok_or_else(|| ApiError::not_found("CUSTOMER_NOT_FOUND", format!("no customer {id}")))?;
    let fence = PayoutFence { subject: contracts::fence::customer(id), rev: customer.rev, effective_from: None };
    let raised: PayoutFence = ledger.post("/v1/ledger/payout-fences", &fence, &[]).await?;
    // Higher only if an earlier change raised the fence and then failed to commit here.
    if let Some(rev) = store::catch_up(&mut *tx, id, raised.rev).await? {
        customer.rev = rev;
    }
    platform::fault::point("customer.after_fence");
    tx.commit().await?;
    revisions.publish(revision::customer_key(id), customer.rev).await;
    Ok(customer)
}

/// For the life of the process: customers whose fence is ahead of their revision (this service died,
/// or lost the ledger's answer, between raising a fence and committing) catch up with it, so their
/// payouts are not refused as stale until their next change. At start-up over the last day, then
/// every `every` (`FENCE_CATCH_UP_MS`, 30 s) over the last 10 minutes; a change in progress holds
/// the row, so this waits for it.
pub async fn catch_up_with_fences(pool: PgPool, ledger: ServiceClient, revisions: Publisher, every: Duration) {
    let mut window = 86_400;
    loop {
        let path = format!("/v1/ledger/payout-fences?prefix=customer:&within_secs={window}");
        match ledger.get::<Vec<PayoutFence>>(&path).await {
            Ok(fences) => {
                for f in fences {
                    let Some(id) = f.subject.strip_prefix("customer:").and_then(|i| i.parse::<Uuid>().ok()) else {
                        continue;
                    };
                    match store::catch_up(&pool, id, f.rev).await {
                        Ok(Some(rev)) => revisions.publish(revision::customer_key(id), rev).await,
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, customer_id = %id, "revision not caught up with its fence")
                        }
                    }
                }
                window = 600;
            }
            Err(e) => tracing::warn!(error = %e, "payout fences not readable; retrying"),
        }
        tokio::time::sleep(if window == 600 { every } else { Duration::from_secs(2) }).await;
    }
}
