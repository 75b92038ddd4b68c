//! Online shadow verification: after an estimate or a payout is answered, the legacy core is asked
//! for the same account and business date and the two are compared field by field. Never on the
//! request's path: a request only offers its answer to a bounded queue (full: the comparison is
//! dropped and counted); workers call the legacy core with a short timeout. Counted in
//! `shadow_comparisons_total{kind,result}` (`match`, `mismatch`, `legacy_unavailable`);
//! mismatches are logged as errors and stored with both figures for ops.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use contracts::legacy::{Figures, LegacyQuote, ShadowMismatches, ShadowMismatchesQuery};
use contracts::{Estimate, Payout};
use sqlx::PgPool;
use tokio::sync::{mpsc, Semaphore};
use uuid::Uuid;

use super::legacy::LegacyCore;
use super::{store, Migration};
use crate::error::InterestError;

/// How shadow verification runs (`SHADOW_*`).
#[derive(Debug, Clone)]
pub struct ShadowSettings {
    /// Share of answers compared, in parts per million (`SHADOW_SAMPLE_RATIO`, a decimal 0–1).
    pub sample_ppm: u32,
    /// Share of a payout run's payouts compared (`SHADOW_RUN_SAMPLE_RATIO`, default 0.01): a run
    /// pays every account at once, and its sample must leave the queue room for answers.
    pub run_sample_ppm: u32,
    pub queue: usize,
    pub concurrency: usize,
    pub timeout: Duration,
}

/// "0.25" → 250,000 ppm; decimal text, no float.
pub fn parse_ratio(text: &str) -> Result<u32, String> {
    let bad = || format!("{text:?} is not a ratio between 0 and 1 (e.g. 0.1)");
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if fraction.len() > 6 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let ppm = match whole {
        "0" | "" => format!("{fraction:0<6}").parse::<u32>().map_err(|_| bad())?,
        "1" if fraction.chars().all(|c| c == '0') => 1_000_000,
        _ => return Err(bad()),
    };
    Ok(ppm)
}

pub enum Answer {
    Estimate(Estimate),
    Payout(Payout),
}

impl Answer {
    fn kind(&self) -> &'static str {
        match self {
            Answer::Estimate(_) => "estimate",
            Answer::Payout(_) => "payout",
        }
    }

    fn key(&self) -> (Uuid, NaiveDate) {
        match self {
            Answer::Estimate(e) => (e.account_id, e.business_date),
            Answer::Payout(p) => (p.account_id, p.business_date),
        }
    }

    fn figures(&self) -> Figures {
        match self {
            Answer::Estimate(e) => Figures::from_estimate(e),
            Answer::Payout(p) => Figures::from_payout(p),
        }
    }

    fn payload(&self) -> serde_json::Value {
        match self {
            Answer::Estimate(e) => serde_json::json!(e),
            Answer::Payout(p) => serde_json::json!(p),
        }
    }
}

#[derive(Clone)]
pub struct Shadow {
    jobs: mpsc::Sender<Answer>,
    sample_ppm: u32,
    run_sample_ppm: u32,
}

const KINDS: [&str; 2] = ["estimate", "payout"];
const RESULTS: [&str; 3] = ["match", "mismatch", "legacy_unavailable"];

impl Shadow {
    /// Starts the comparison workers.
    pub fn start(legacy: LegacyCore, pool: PgPool, settings: ShadowSettings) -> Self {
        for kind in KINDS {
            for result in RESULTS {
                metrics::counter!("shadow_comparisons_total", "kind" => kind, "result" => result).increment(0);
            }
            metrics::counter!("shadow_comparisons_dropped_total", "kind" => kind).increment(0);
        }
        let (jobs, rx) = mpsc::channel(settings.queue.max(1));
        tokio::spawn(work(rx, legacy, pool, settings.clone()));
        Self { jobs, sample_ppm: settings.sample_ppm, run_sample_ppm: settings.run_sample_ppm }
    }

    /// Offers an answer for comparison; returns at once whatever happens to it.
    pub fn offer(&self, answer: Answer) {
        self.offer_sampled(answer, self.sample_ppm);
    }

    /// Offers a payout a run made, at the runs' sample ratio.
    pub fn offer_from_run(&self, payout: Payout) {
        self.offer_sampled(Answer::Payout(payout), self.run_sample_ppm);
    }

    fn offer_sampled(&self, answer: Answer, sample_ppm: u32) {
        if sample_ppm < 1_000_000 && rand::random::<u32>() % 1_000_000 >= sample_ppm {
            return;
        }
        let kind = answer.kind();
        if self.jobs.try_send(answer).is_err() {
            metrics::counter!("shadow_comparisons_dropped_total", "kind" => kind).increment(1);
        }
    }
}

async fn work(mut rx: mpsc::Receiver<Answer>, legacy: LegacyCore, pool: PgPool, settings: ShadowSettings) {
    let slots = Arc::new(Semaphore::new(settings.concurrency.max(1)));
    while let Some(answer) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (legacy, pool, timeout) = (legacy.clone(), pool.clone(), settings.timeout);
        tokio::spawn(async move {
            let kind = answer.kind();
            let result = compare(&legacy, &pool, answer, timeout).await;
            metrics::counter!("shadow_comparisons_total", "kind" => kind, "result" => result).increment(1);
            drop(slot);
        });
    }
}

async fn ask(
    legacy: &LegacyCore,
    id: Uuid,
    date: NaiveDate,
    as_if_unpaid: bool,
    timeout: Duration,
) -> Option<LegacyQuote> {
    // The client's own timeout is `timeout`; this one is a backstop.
    match tokio::time::timeout(timeout + Duration::from_millis(200), legacy.quote(id, date, as_if_unpaid)).await {
        Ok(Ok(q)) => Some(q),
        Ok(Err(e)) => {
            tracing::warn!(account_id = %id, error = %e, "shadow comparison: the legacy core did not answer");
            None
        }
        Err(_) => {
            tracing::warn!(account_id = %id, "shadow comparison: the legacy core timed out");
            None
        }
    }
}

async fn compare(legacy: &LegacyCore, pool: &PgPool, answer: Answer, timeout: Duration) -> &'static str {
    let (id, date) = answer.key();
    let ours = answer.figures();
    // A payout is compared with what the legacy core would have paid on that date.
    let as_if_unpaid = matches!(answer, Answer::Payout(_));
    let Some(mut quote) = ask(legacy, id, date, as_if_unpaid, timeout).await else { return "legacy_unavailable" };
    // The account was paid between our estimate and this question: compare with the quote before it.
    let paid_since =
        quote.code.as_deref() == Some("ALREADY_PAID_TODAY") && ours.code.as_deref() != Some("ALREADY_PAID_TODAY");
    if paid_since && !as_if_unpaid {
        let Some(before) = ask(legacy, id, date, true, timeout).await else { return "legacy_unavailable" };
        quote = before;
    }
    let theirs = Figures::from_legacy(&quote);
    let fields = ours.differences(&theirs);
    if fields.is_empty() {
        return "match";
    }
    tracing::error!(kind = answer.kind(), account_id = %id, business_date = %date, fields = ?fields,
        "shadow comparison: the legacy core disagrees");
    let finding = store::ShadowFinding {
        kind: answer.kind(),
        account_id: id,
        business_date: date,
        fields: &fields,
        ours: &ours,
        legacy: &theirs,
        ours_payload: answer.payload(),
        legacy_payload: serde_json::json!(quote),
    };
    if let Err(e) = store::insert_shadow_mismatch(pool, finding).await {
        tracing::error!(error = %e, "shadow mismatch not stored");
    }
    "mismatch"
}

/// Comparisons that found a difference, newest first, keyset-paged by their sequence.
pub async fn mismatches(state: &Migration, q: &ShadowMismatchesQuery) -> Result<ShadowMismatches, InterestError> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(InterestError::Invalid { field: "limit".into(), detail: "limit must be 1 to 1000".into() });
    }
    let rows = store::shadow_mismatches(&state.pool, q, limit).await?;
    let next_before = (rows.len() as i64 == limit).then(|| rows.last().map(|r| r.0)).flatten();
    Ok(ShadowMismatches { mismatches: rows.into_iter().map(|r| r.1).collect(), next_before })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ratios_are_decimal_text() {
        assert_eq!(super::parse_ratio("1"), Ok(1_000_000));
        assert_eq!(super::parse_ratio("1.0"), Ok(1_000_000));
        assert_eq!(super::parse_ratio("0.1"), Ok(100_000));
        assert_eq!(super::parse_ratio("0"), Ok(0));
        assert_eq!(super::parse_ratio(".25"), Ok(250_000));
        for bad in ["1.5", "2", "-0.1", "0.1234567", "x"] {
            assert!(super::parse_ratio(bad).is_err(), "{bad}");
        }
    }
}
