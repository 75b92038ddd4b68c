//! The owners' side of payout fences: catching revisions up with fences raised ahead of them.
//!
//! An owner raises a subject's fence to the new revision before it commits a change; if it dies
//! (or loses the ledger's answer) in between, the fence stays ahead of the owner's revision and
//! every payout and money movement of the subject is refused as stale — safe, not silent — until
//! the owner's revision catches up. Each owner therefore reads, for the life of the process, every
//! fence of its kind in the ledger's raise order (`seq`): from the first at start-up, then after
//! the last it read. There is no look-back window an outage could outlast.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use contracts::RaisedFence;

use crate::Ledger;

/// Fences read at a time.
const PAGE: i64 = 1000;

/// How soon a pass that failed is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// A fence raised this recently may still have a neighbour with a smaller `seq` uncommitted (a
/// raise takes at most a few seconds: a 2 s lock timeout, then its commit), so the cursor does not
/// move past it yet; it is read again next time (adopting a fence twice changes nothing).
const SETTLE: chrono::Duration = chrono::Duration::seconds(30);

/// For the life of the process: every fence whose subject starts with `prefix` goes to `adopt`
/// (a page at a time, subjects with the prefix stripped), which raises each subject's revision to
/// its fence where it is behind and answers how many it raised. Then every `every`
/// (`FENCE_CATCH_UP_MS`, 30 s) the fences raised since; a pass that failed (the ledger still
/// starting, or away) is tried again within 2 s.
///
/// Metrics, by `owner`: `payout_fences_ahead` (subjects found ahead of their owner in the last
/// pass, each healed at once), `payout_fences_ahead_total`, and
/// `payout_fence_catch_up_success_timestamp_seconds` (the last complete pass: alerts fire if
/// catching up stops).
pub async fn catch_up<F, Fut, E>(
    ledger: Arc<dyn Ledger>,
    owner: &'static str,
    prefix: &'static str,
    every: Duration,
    mut adopt: F,
) where
    F: FnMut(Vec<(String, i64)>) -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::fmt::Display,
{
    metrics::counter!("payout_fences_ahead_total", "owner" => owner).increment(0);
    let mut cursor = 0;
    loop {
        let pause = match pass(ledger.as_ref(), prefix, cursor, &mut adopt).await {
            Ok((next, ahead)) => {
                cursor = next;
                metrics::gauge!("payout_fences_ahead", "owner" => owner).set(ahead as f64);
                metrics::counter!("payout_fences_ahead_total", "owner" => owner).increment(ahead);
                metrics::gauge!("payout_fence_catch_up_success_timestamp_seconds", "owner" => owner)
                    .set(Utc::now().timestamp() as f64);
                if ahead > 0 {
                    tracing::warn!(owner, ahead, "revisions caught up with payout fences raised ahead of them");
                }
                every
            }
            Err(e) => {
                // The ledger may still be starting (services start in any order): soon again.
                tracing::warn!(owner, error = %e, "payout fences not caught up; retrying");
                every.min(RETRY)
            }
        };
        tokio::time::sleep(pause).await;
    }
}

/// One pass from `cursor`: the new cursor and how many subjects were ahead. The cursor passes
/// only settled fences; the pages after the first unsettled one are still read and adopted.
async fn pass<F, Fut, E>(
    ledger: &dyn Ledger,
    prefix: &str,
    mut cursor: i64,
    adopt: &mut F,
) -> Result<(i64, u64), String>
where
    F: FnMut(Vec<(String, i64)>) -> Fut,
    Fut: Future<Output = Result<u64, E>>,
    E: std::fmt::Display,
{
    let (mut ahead, mut from, mut advancing) = (0, cursor, true);
    loop {
        let page = ledger.fences_after(prefix, from, PAGE).await.map_err(|e| e.to_string())?.fences;
        let Some(last) = page.last().map(|f| f.seq) else { return Ok((cursor, ahead)) };
        if advancing {
            cursor = settled_through(&page, cursor);
            advancing = cursor == last;
        }
        let full = page.len() as i64 == PAGE;
        let subjects =
            page.into_iter().filter_map(|f| f.subject.strip_prefix(prefix).map(|s| (s.to_string(), f.rev))).collect();
        ahead += adopt(subjects).await.map_err(|e| e.to_string())?;
        if !full {
            return Ok((cursor, ahead));
        }
        from = last;
    }
}

/// The cursor after a page: the last `seq` of its settled prefix (raise order).
fn settled_through(page: &[RaisedFence], cursor: i64) -> i64 {
    let before = Utc::now() - SETTLE;
    page.iter().take_while(|f| f.changed_at < before).last().map_or(cursor, |f| f.seq)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fence(seq: i64, age_secs: i64) -> RaisedFence {
        let changed_at = Utc::now() - chrono::Duration::seconds(age_secs);
        RaisedFence { subject: format!("account:{seq}"), rev: 1, seq, changed_at }
    }

    #[test]
    fn the_cursor_passes_only_the_settled_fences_before_the_first_recent_one() {
        assert_eq!(settled_through(&[fence(3, 90), fence(5, 60), fence(9, 5), fence(11, 90)], 1), 5);
        assert_eq!(settled_through(&[fence(3, 2)], 1), 1, "nothing settled: the cursor stays");
        assert_eq!(settled_through(&[], 7), 7);
    }
}
