//! Reconciliation, the proof of "nothing lost" (`bankctl reconcile`, and ops' `GET
//! /v1/ops/reconcile` through the gateway). For payouts with a business date in the range,
//! compares what the interest service recorded, what the ledger booked (its interest postings,
//! whose tax lines credit the tax-payable accounts) and what the tax service withheld, through
//! their HTTP APIs, and reports missing, duplicate and mismatched items.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use contracts::{InterestPostingFeed, PayoutPage, Withholdings};
use serde::Serialize;
use uuid::Uuid;

/// The amounts every source must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Figures {
    account_id: Uuid,
    business_date: NaiveDate,
    gross: i64,
    income_tax: i64,
    local_tax: i64,
    rural_special_tax: i64,
}

/// What a reconciliation found; clean when every list is empty.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub interest_payouts: usize,
    pub ledger_postings: usize,
    pub withholdings: usize,
    /// Booked or recorded, but no withholding record.
    pub missing_withholdings: Vec<Uuid>,
    /// Booked by the ledger, not recorded by the interest service.
    pub missing_in_interest: Vec<Uuid>,
    /// Recorded by the interest service, not booked by the ledger.
    pub missing_in_ledger: Vec<Uuid>,
    /// Withheld for a payout the ledger never booked.
    pub unexpected_withholdings: Vec<Uuid>,
    /// More than one payout for an account on one business date, in any source.
    pub duplicates: Vec<String>,
    /// The same payout with different amounts in two sources.
    pub mismatched: Vec<Uuid>,
    /// Per tax component: ledger tax payable vs withheld.
    #[schema(value_type = BTreeMap<String, Vec<i64>>)]
    pub tax_totals: BTreeMap<String, (i64, i64)>,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.missing_withholdings.is_empty()
            && self.missing_in_interest.is_empty()
            && self.missing_in_ledger.is_empty()
            && self.unexpected_withholdings.is_empty()
            && self.duplicates.is_empty()
            && self.mismatched.is_empty()
    }
}

/// The report as text, for a terminal.
impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "reconciliation {} .. {}: interest {} · ledger {} · withholdings {}",
            self.from.map(|d| d.to_string()).unwrap_or_default(),
            self.to.map(|d| d.to_string()).unwrap_or_default(),
            self.interest_payouts,
            self.ledger_postings,
            self.withholdings
        )?;
        let lists: [(&str, Vec<String>); 6] = [
            ("missing withholdings", self.missing_withholdings.iter().map(Uuid::to_string).collect()),
            ("missing in interest", self.missing_in_interest.iter().map(Uuid::to_string).collect()),
            ("missing in ledger", self.missing_in_ledger.iter().map(Uuid::to_string).collect()),
            ("unexpected withholdings", self.unexpected_withholdings.iter().map(Uuid::to_string).collect()),
            ("duplicates", self.duplicates.clone()),
            ("mismatched", self.mismatched.iter().map(Uuid::to_string).collect()),
        ];
        for (name, items) in lists {
            writeln!(f, "  {name:<24} {}", items.len())?;
            for i in items.iter().take(20) {
                writeln!(f, "      {i}")?;
            }
        }
        for (component, (payable, withheld)) in &self.tax_totals {
            writeln!(f, "  {component:<24} ledger payable {payable} · withheld {withheld}")?;
        }
        writeln!(f, "  {}", if self.clean() { "CLEAN" } else { "DIFFERENCES FOUND" })
    }
}

pub struct Urls {
    pub interest: String,
    pub accounting: String,
    pub tax: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("GET {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("GET {url}: HTTP {status}: {body}")]
    Refused { url: String, status: u16, body: String },
}

/// Gives the service credential for calls to a service (`interest`, `accounting`, `tax-consumer`).
pub type Credential<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Where to read, and with which credentials.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub http: &'a reqwest::Client,
    pub urls: &'a Urls,
    pub credential: Credential<'a>,
}

async fn get<T: serde::de::DeserializeOwned>(from: Source<'_>, url: &str) -> Result<T, ReconcileError> {
    let unreachable = |source| ReconcileError::Unreachable { url: url.to_string(), source };
    let mut req = from.http.get(url);
    if let Some(token) = (from.credential)(from.audience) {
        req = req.bearer_auth(token);
    }
    let r = req.send().await.map_err(unreachable)?;
    let status = r.status();
    if !status.is_success() {
        let body = r.text().await.unwrap_or_default();
        return Err(ReconcileError::Refused { url: url.to_string(), status: status.as_u16(), body });
    }
    r.json().await.map_err(unreachable)
}

/// The figures of a payout, a ledger posting request (`figures!(x, amounts)`) or a withholding
/// record (`figures!(x)`).
macro_rules! figures {
    ($x:expr, amounts) => {
        figures!(@ $x, $x.amounts.gross(), $x.amounts.taxes())
    };
    ($x:expr) => {
        figures!(@ $x, $x.gross, $x.taxes)
    };
    (@ $x:expr, $gross:expr, $taxes:expr) => {
        Figures {
            account_id: $x.account_id,
            business_date: $x.business_date,
            gross: $gross,
            income_tax: $taxes.income_tax,
            local_tax: $taxes.local_tax,
            rural_special_tax: $taxes.rural_special_tax,
        }
    };
}

/// One service read: the client, the credential and the service it is for.
#[derive(Clone, Copy)]
struct Source<'a> {
    http: &'a reqwest::Client,
    credential: Credential<'a>,
    audience: &'static str,
}

/// Follows a listing keyset-paged by `after=<payout id>` to its end; `split` turns a page into its
/// items and the next cursor.
async fn keyset<P: serde::de::DeserializeOwned>(
    from: Source<'_>,
    base: &str,
    split: impl Fn(P) -> (Vec<(Uuid, Figures)>, Option<Uuid>),
) -> Result<Vec<(Uuid, Figures)>, ReconcileError> {
    let mut out = Vec::new();
    let mut after: Option<Uuid> = None;
    loop {
        let url = match after {
            Some(a) => format!("{base}&limit=5000&after={a}"),
            None => format!("{base}&limit=5000"),
        };
        let (items, next) = split(get(from, &url).await?);
        out.extend(items);
        match next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

pub async fn reconcile(sources: Sources<'_>, from: NaiveDate, to: NaiveDate) -> Result<Report, ReconcileError> {
    let Sources { http, urls, credential } = sources;
    let source = |audience| Source { http, credential, audience };
    // Interest service: recorded payouts.
    let interest = keyset(
        source("interest"),
        &format!("{}/v1/interest/payouts?from={from}&to={to}", urls.interest),
        |p: PayoutPage| (p.payouts.iter().map(|p| (p.payout_id, figures!(p, amounts))).collect(), p.next_after),
    )
    .await?;
    // Ledger: its payout feed, in booking order (paged by sequence number).
    let mut ledger = Vec::new();
    let mut seq = 0i64;
    loop {
        let url = format!("{}/v1/ledger/interest-postings?after_seq={seq}&limit=5000", urls.accounting);
        let feed: InterestPostingFeed = get(source("accounting"), &url).await?;
        let Some(last) = feed.postings.last() else { break };
        seq = last.seq;
        ledger.extend(
            feed.postings
                .iter()
                .map(|p| &p.request)
                .filter(|r| r.business_date >= from && r.business_date <= to)
                .map(|r| (r.payout_id, figures!(r, amounts))),
        );
    }
    // Tax service: withholding records.
    let tax = keyset(
        source("tax-consumer"),
        &format!("{}/v1/tax/withholdings?from={from}&to={to}", urls.tax),
        |w: Withholdings| (w.withholdings.iter().map(|w| (w.payout_id, figures!(w))).collect(), w.next_after),
    )
    .await?;
    Ok(compare(from, to, &interest, &ledger, &tax))
}

fn compare(
    from: NaiveDate,
    to: NaiveDate,
    interest: &[(Uuid, Figures)],
    ledger: &[(Uuid, Figures)],
    tax: &[(Uuid, Figures)],
) -> Report {
    let mut r = Report {
        from: Some(from),
        to: Some(to),
        interest_payouts: interest.len(),
        ledger_postings: ledger.len(),
        withholdings: tax.len(),
        ..Report::default()
    };
    for (name, source) in [("interest", interest), ("ledger", ledger), ("tax", tax)] {
        let mut per_day: HashMap<(Uuid, NaiveDate), usize> = HashMap::new();
        let mut ids: HashMap<Uuid, usize> = HashMap::new();
        for (id, f) in source {
            *per_day.entry((f.account_id, f.business_date)).or_default() += 1;
            *ids.entry(*id).or_default() += 1;
        }
        for ((account, day), n) in per_day.into_iter().filter(|(_, n)| *n > 1) {
            r.duplicates.push(format!("{name}: {n} payouts of {account} on {day}"));
        }
        for (id, n) in ids.into_iter().filter(|(_, n)| *n > 1) {
            r.duplicates.push(format!("{name}: payout {id} {n} times"));
        }
    }
    let i: HashMap<Uuid, Figures> = interest.iter().copied().collect();
    let l: HashMap<Uuid, Figures> = ledger.iter().copied().collect();
    let t: HashMap<Uuid, Figures> = tax.iter().copied().collect();
    for (id, f) in &l {
        match i.get(id) {
            None => r.missing_in_interest.push(*id),
            Some(g) if g != f => r.mismatched.push(*id),
            _ => {}
        }
        match t.get(id) {
            None => r.missing_withholdings.push(*id),
            Some(g) if g != f && !r.mismatched.contains(id) => r.mismatched.push(*id),
            _ => {}
        }
    }
    for id in i.keys().filter(|id| !l.contains_key(id)) {
        r.missing_in_ledger.push(*id);
        if !t.contains_key(id) {
            r.missing_withholdings.push(*id);
        }
    }
    r.unexpected_withholdings = t.keys().filter(|id| !l.contains_key(id)).copied().collect();
    let sum = |m: &HashMap<Uuid, Figures>, f: fn(&Figures) -> i64| m.values().map(f).sum::<i64>();
    r.tax_totals.insert("income_tax".into(), (sum(&l, |f| f.income_tax), sum(&t, |f| f.income_tax)));
    r.tax_totals.insert("local_tax".into(), (sum(&l, |f| f.local_tax), sum(&t, |f| f.local_tax)));
    r.tax_totals
        .insert("rural_special_tax".into(), (sum(&l, |f| f.rural_special_tax), sum(&t, |f| f.rural_special_tax)));
    for v in [&mut r.missing_withholdings, &mut r.missing_in_interest, &mut r.missing_in_ledger, &mut r.mismatched] {
        v.sort_unstable();
    }
    r.unexpected_withholdings.sort_unstable();
    r.duplicates.sort_unstable();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(account: u128, gross: i64) -> Figures {
        Figures {
            account_id: Uuid::from_u128(account),
            business_date: NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
            gross,
            income_tax: gross / 10,
            local_tax: 0,
            rural_special_tax: 0,
        }
    }

    #[test]
    fn finds_each_kind_of_difference() {
        let d = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
        let (a, b, c, e) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3), Uuid::from_u128(4));
        let ledger = vec![(a, fig(10, 100)), (b, fig(11, 200)), (c, fig(12, 300))];
        let interest = vec![(a, fig(10, 100)), (b, fig(11, 200))];
        let tax = vec![(a, fig(10, 100)), (c, fig(12, 310)), (e, fig(13, 50)), (Uuid::from_u128(5), fig(13, 50))];
        let r = compare(d, d, &interest, &ledger, &tax);
        assert_eq!(r.missing_in_interest, vec![c]);
        assert_eq!(r.missing_withholdings, vec![b]);
        assert_eq!(r.mismatched, vec![c]);
        assert_eq!(r.unexpected_withholdings.len(), 2);
        assert_eq!(r.duplicates, vec![format!("tax: 2 payouts of {} on {d}", Uuid::from_u128(13))]);
        assert!(!r.clean());
        let same = vec![(a, fig(10, 100))];
        assert!(compare(d, d, &same, &same, &same).clean());
    }
}
