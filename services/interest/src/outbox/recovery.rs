//! Recovery: reads the ledger's payout feed and records any booked payout missing here (a crash,
//! or a database that lost the payout's non-durable commit, between the ledger's commit and ours;
//! or a payout the legacy core booked).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use contracts::InterestPostingFeed;
use tokio::sync::Notify;

use super::{store, Outbox, BATCH};

/// Postings younger than this may still have concurrent neighbours with smaller sequence
/// numbers uncommitted, so the cursor does not move past them yet.
const SETTLE: chrono::Duration = chrono::Duration::seconds(30);

pub async fn recover_from_ledger(state: Outbox, shutdown: Arc<Notify>) {
    loop {
        if let Err(e) = recover_once(&state).await {
            tracing::warn!(error = %e, "ledger feed recovery failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.notified() => return,
        }
    }
}

pub async fn recover_once(state: &Outbox) -> anyhow::Result<u64> {
    let mut cursor = store::feed_cursor(&state.pool).await?;
    let mut recovered = 0;
    loop {
        let feed: InterestPostingFeed = state.ledger.interest_feed(cursor, BATCH).await?;
        if feed.postings.is_empty() {
            return Ok(recovered);
        }
        let settled = Utc::now() - SETTLE;
        let new_cursor =
            feed.postings.iter().take_while(|p| p.posted_at < settled).map(|p| p.seq).max().unwrap_or(cursor);
        let n = store::record_recovered(&state.pool, &feed.postings, new_cursor).await?;
        if n > 0 {
            tracing::warn!(recovered = n, "recorded payouts booked by the ledger but missing here");
            state.wake.notify_one();
        }
        recovered += n;
        if new_cursor == cursor || (feed.postings.len() as i64) < BATCH {
            return Ok(recovered);
        }
        cursor = new_cursor;
    }
}
