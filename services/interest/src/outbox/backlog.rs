//! The relay's backlog as metrics, measured on its own.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::Outbox;

/// Every 5 s, on its own (the relay may be stuck on a broker that does not answer): the relay's
/// backlog, how many payouts' tax events wait to be published and how long the oldest has waited
/// (0 when none waits) — the alert on a relay that stopped. Interest stays ready without the
/// broker (a payout needs none: the outbox keeps its event), so this is how a broker outage shows.
pub async fn watch_backlog(state: Outbox, shutdown: Arc<Notify>) {
    loop {
        record_outbox_age(&state).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.notified() => return,
        }
    }
}

async fn record_outbox_age(state: &Outbox) {
    let backlog = sqlx::query!(
        r#"SELECT count(*) AS "waiting!", EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS "age?"
         FROM payouts WHERE tax_event_published_at IS NULL"#
    )
    .fetch_one(&state.pool)
    .await;
    if let Ok(b) = backlog {
        metrics::gauge!("interest_outbox_unpublished").set(b.waiting as f64);
        metrics::gauge!("interest_outbox_oldest_unpublished_seconds").set(b.age.unwrap_or(0.0).max(0.0));
    }
}
