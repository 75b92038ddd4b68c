//! The owners' side of payout fences: catching a revision up with a fence raised ahead of it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::Ledger;

/// For the life of the process: subjects (`{prefix}{id}`) whose fence is ahead of their revision
/// (the owner died, or lost the ledger's answer, between raising a fence and committing) catch up
/// with it through `adopt(id, fence_rev)`, so their payouts are not refused as stale until their
/// next change. At start-up over the last day (retried every 2 s until the ledger answers), then
/// every `every` (`FENCE_CATCH_UP_MS`, 30 s) over the last 10 minutes.
pub async fn catch_up<F, Fut>(ledger: Arc<dyn Ledger>, prefix: &'static str, every: Duration, mut adopt: F)
where
    F: FnMut(Uuid, i64) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut window = 86_400;
    loop {
        match ledger.recent_fences(prefix, window).await {
            Ok(fences) => {
                for f in fences {
                    if let Some(id) = f.subject.strip_prefix(prefix).and_then(|i| i.parse::<Uuid>().ok()) {
                        adopt(id, f.rev).await;
                    }
                }
                window = 600;
            }
            Err(e) => tracing::warn!(error = %e, prefix, "payout fences not readable; retrying"),
        }
        tokio::time::sleep(if window == 600 { every } else { Duration::from_secs(2) }).await;
    }
}
