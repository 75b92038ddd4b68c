//! The rates and tax-rule revisions outside this database: published to Redis (where estimates,
//! payouts and runs read them) and raised to the ledger's fences when a change left one ahead.

use std::sync::Arc;
use std::time::Duration;

use peers::Ledger;

use super::{store, Reference};

/// Republishes every product's rates revision and the tax rules' revision (a crash may have come
/// between a change's commit and its publication).
pub async fn republish(reference: &Reference) -> Result<(), sqlx::Error> {
    let rates = store::rates_revisions(&reference.pool).await?;
    reference
        .revisions
        .publish_all(rates.into_iter().map(|(code, rev)| (contracts::revision::rates(&code), rev)).collect())
        .await;
    let (_, tax_rules_rev) = store::tax_rules(&reference.pool).await?;
    reference.revisions.publish(contracts::revision::tax_rules(), tax_rules_rev).await;
    Ok(())
}

/// Products whose rates fence is ahead of their revision catch up with it (see
/// [`peers::fences`]): a crash between raising the fence and committing the schedule would
/// otherwise leave the product's payouts refused as stale until its next schedule change. A
/// change in progress holds the product row, so this waits for it.
pub async fn catch_up_rates(reference: Reference, ledger: Arc<dyn Ledger>, every: Duration) {
    peers::fences::catch_up(ledger, "interest-rates", "rates:", every, |page| {
        let reference = reference.clone();
        async move {
            let moved = store::catch_up_rates(&reference.pool, &page).await?;
            let revs = moved.iter().map(|(code, rev)| (contracts::revision::rates(code), *rev)).collect();
            reference.revisions.publish_all(revs).await;
            Ok::<_, sqlx::Error>(moved.len() as u64)
        }
    })
    .await
}

/// The tax rules' revision catches up with the categories' fences (see [`peers::fences`]): a
/// crash between raising a fence and committing the rule leaves the fence ahead.
pub async fn catch_up_tax_rules(reference: Reference, ledger: Arc<dyn Ledger>, every: Duration) {
    peers::fences::catch_up(ledger, "interest-tax", "tax:", every, |page| {
        let reference = reference.clone();
        async move {
            let Some(highest) = page.iter().map(|(_, rev)| *rev).max() else { return Ok(0) };
            let moved = store::catch_up_tax_rules(&reference.pool, highest).await?;
            if let Some(rev) = moved {
                reference.revisions.publish(contracts::revision::tax_rules(), rev).await;
            }
            Ok::<_, sqlx::Error>(u64::from(moved.is_some()))
        }
    })
    .await
}
