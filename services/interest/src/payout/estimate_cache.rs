//! The estimate cache: an account's estimate is computed from the databases once per business date
//! and served from Redis until the date ends (the key names the date; the TTL ends at the next
//! Seoul midnight, or the manual clock's). An entry is used only while the ledger's history revision
//! (bumped by payouts and back-dated postings), the product's rates revision and the tax rules'
//! revision ([`Revisions`]) are the ones read before it was computed, and the customer's tax
//! category is unchanged. Eligibility from statuses
//! is never cached here: it is applied on every read from the directory's current data.
//!
//! Concurrent first reads in one process compute once (the others wait and read the result). A
//! payout on the same business date uses the entry's quote while the entry is good; the ledger
//! refuses it as stale if anything it was computed from changed since.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use contracts::{Estimate, QuoteBasis};
use domain::{Quote, TaxCategory};
use platform::revision::{self, Rev};
use serde::{Deserialize, Serialize};
use tokio::sync::OwnedMutexGuard;
use uuid::Uuid;

#[derive(Serialize, Deserialize)]
pub struct Entry {
    /// The revisions read before it was computed: it is good while Redis holds the same.
    pub revisions: Revisions,
    pub tax_category: TaxCategory,
    /// With only the refusals the ledger decides (already paid today, nothing to pay).
    pub estimate: Estimate,
    /// The quote behind the estimate and what it was computed from, so a payout of the same
    /// business date can book it without reading the ledger again: the booking verifies the basis.
    #[serde(default)]
    pub quote: Option<CachedQuote>,
}

/// A payable quote and its basis, serialized whole (the basis is the type the ledger verifies;
/// its account and customer revisions are set afresh on every use, see `Evaluation::new`).
#[derive(Clone, Serialize, Deserialize)]
pub struct CachedQuote {
    pub quote: Quote,
    pub basis: QuoteBasis,
}

pub fn key(id: Uuid, today: NaiveDate) -> String {
    format!("estimate:{id}:{today}")
}

/// The revisions an entry depends on, as Redis holds them (`None`: never published). A new input
/// of the estimate is one field here and its key in [`Revisions::keys`]; the array destructuring in
/// [`Revisions::from_values`] does not compile until both agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revisions {
    pub ledger: Rev,
    pub rates: Rev,
    pub tax_rules: Rev,
}

const REVISIONS: usize = 3;

impl Revisions {
    fn keys(id: Uuid, product_code: &str) -> [String; REVISIONS] {
        [contracts::revision::ledger(id), contracts::revision::rates(product_code), contracts::revision::tax_rules()]
    }

    fn from_values(values: [Rev; REVISIONS]) -> Self {
        let [ledger, rates, tax_rules] = values;
        Revisions { ledger, rates, tax_rules }
    }
}

/// The keys read together before using or computing an entry: the revisions, then the entry.
pub fn keys(id: Uuid, product_code: &str, today: NaiveDate) -> Vec<String> {
    let mut keys = Revisions::keys(id, product_code).to_vec();
    keys.push(key(id, today));
    keys
}

/// The revisions read with an entry, and the entry if it is still good for `tax_category`.
pub struct Read {
    pub revisions: Revisions,
    pub entry: Option<Entry>,
}

/// Reads back the values of [`keys`], in its order.
pub fn read(values: &[Option<String>], tax_category: TaxCategory) -> Read {
    let revs: [Rev; REVISIONS] = std::array::from_fn(|i| values.get(i).and_then(revision::parse_rev));
    let revisions = Revisions::from_values(revs);
    let entry = values
        .get(REVISIONS)
        .and_then(|v| v.as_deref())
        .and_then(|s| serde_json::from_str::<Entry>(s).ok())
        .filter(|e| e.revisions == revisions && e.tax_category == tax_category);
    Read { revisions, entry }
}

pub fn count(hit: bool) {
    metrics::counter!("interest_estimate_cache_total", "result" => if hit { "hit" } else { "miss" }).increment(1);
}

/// One computation per key at a time in this process.
#[derive(Clone, Default)]
pub struct Flights {
    inner: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

pub struct Flight {
    flights: Flights,
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
}

impl Flights {
    pub async fn enter(&self, key: &str) -> Flight {
        let lock = {
            let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(key.to_string()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Flight { flights: self.clone(), key: key.to_string(), guard: Some(guard) }
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.flights.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Only the map holds it now: nobody is waiting, so forget the key.
        if map.get(&self.key).is_some_and(|l| Arc::strong_count(l) == 1) {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `keys` and `read` agree on the order: an entry stored under `key` — the last of `keys` —
    /// is found by `read` among the values of `keys`, and only at the revisions it was stored at.
    #[test]
    fn an_entry_is_read_back_from_where_keys_put_it() {
        let (id, today) = (Uuid::new_v4(), NaiveDate::from_ymd_opt(2024, 3, 1).unwrap());
        let keys = keys(id, "SAVE", today);
        assert_eq!(keys.last(), Some(&key(id, today)), "the entry's key comes last");
        let estimate = Estimate {
            account_id: id,
            business_date: today,
            period_from: today,
            period_to: today,
            amounts: domain::Withheld::default(),
            carry_in_units: 0,
            payable: false,
            code: Some("NOTHING_TO_PAY".into()),
        };
        let entry = Entry {
            revisions: Revisions { ledger: Some(3), rates: Some(5), tax_rules: Some(7) },
            tax_category: TaxCategory::General,
            estimate,
            quote: None,
        };
        let values = |tax: &str| {
            vec![
                Some("3".to_string()),
                Some("5".into()),
                Some(tax.into()),
                Some(serde_json::to_string(&entry).unwrap()),
            ]
        };
        let read = read(&values("7"), TaxCategory::General);
        assert_eq!(read.revisions, Revisions { ledger: Some(3), rates: Some(5), tax_rules: Some(7) });
        assert!(read.entry.is_some());
        assert!(super::read(&values("8"), TaxCategory::General).entry.is_none(), "the tax rules moved");
        assert!(super::read(&values("7"), TaxCategory::TaxFree).entry.is_none(), "another category");
    }
}
