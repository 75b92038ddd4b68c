//! Changes to a customer's status and tax category: both decide payouts (SPEC §4, §5), so each is
//! fenced in the ledger before it commits (SPEC §7): with the row locked and the change written,
//! the ledger's fence for the customer is raised to the new revision, which waits for bookings in
//! flight on the customer and refuses, from then on, any quoted at an older revision.

use contracts::problem::Code;
use std::sync::Arc;
use std::time::Duration;

use contracts::{Customer, CustomersFound, PayoutFence};
use peers::Ledger;
use platform::revision::Publisher;
use platform::{ApiError, ApiResult};
use sqlx::PgPool;
use uuid::Uuid;

use crate::store::{self, Change};

fn not_found(id: Uuid) -> ApiError {
    ApiError::of(Code::CustomerNotFound, format!("no customer {id}"))
}

pub async fn read(pool: &PgPool, id: Uuid) -> ApiResult<Customer> {
    store::find(pool, id).await?.ok_or_else(|| not_found(id))
}

/// The customers of `ids` that exist (a payout run's chunk).
pub async fn read_many(pool: &PgPool, ids: &[Uuid]) -> ApiResult<CustomersFound> {
    if ids.is_empty() || ids.len() > contracts::MAX_LOOKUP {
        return Err(ApiError::validation("customer_ids", format!("give 1 to {} ids", contracts::MAX_LOOKUP)));
    }
    Ok(CustomersFound { customers: store::find_many(pool, ids).await? })
}

/// Applies the changes (one or more, in one transaction) behind one fence.
pub async fn change(
    pool: &PgPool,
    ledger: &dyn Ledger,
    revisions: &Publisher,
    id: Uuid,
    changes: &[Change<'_>],
) -> ApiResult<Customer> {
    let mut tx = pool.begin().await?;
    let mut changed = None;
    for change in changes {
        changed = store::apply(&mut tx, id, change).await?;
    }
    let mut customer = changed.ok_or_else(|| not_found(id))?;
    let fence = PayoutFence { subject: contracts::fence::customer(id), rev: customer.rev, effective_from: None };
    let raised = ledger.raise_fence(&fence).await?;
    // Higher only if an earlier change raised the fence and then failed to commit here.
    if let Some(rev) = store::catch_up(&mut *tx, id, raised.rev).await? {
        customer.rev = rev;
    }
    platform::fault::point("customer.after_fence");
    tx.commit().await?;
    revisions.publish(contracts::revision::customer(id), customer.rev).await;
    Ok(customer)
}

/// Customers whose fence is ahead of their revision catch up with it (see [`peers::fences`]); a
/// change in progress holds the row, so this waits for it.
pub async fn catch_up_with_fences(pool: PgPool, ledger: Arc<dyn Ledger>, revisions: Publisher, every: Duration) {
    peers::fences::catch_up(ledger, "customer", "customer:", every, |page| {
        let (pool, revisions) = (pool.clone(), revisions.clone());
        async move {
            let fences: Vec<(Uuid, i64)> = page.iter().filter_map(|(id, rev)| Some((id.parse().ok()?, *rev))).collect();
            let moved = store::catch_up_many(&pool, &fences).await?;
            let revs = moved.iter().map(|(id, rev)| (contracts::revision::customer(*id), *rev)).collect();
            revisions.publish_all(revs).await;
            Ok::<_, sqlx::Error>(moved.len() as u64)
        }
    })
    .await
}
