//! `bankctl verify`: batch verification against the legacy core (docs/migration.md). Every
//! account's figures for the business date on both sides, in estimate mode (nothing is paid),
//! compared field by field; a CSV of the mismatches and a summary (by field, product and customer
//! status, the largest differences).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::NaiveDate;
use clap::{ArgGroup, Args};
use contracts::legacy::{Figures, LegacyQuote, FIELDS};
use contracts::{Account, AccountPage, Customer, Estimate};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use uuid::Uuid;

use crate::services::Services;
use crate::{
    command_help, url, ACCOUNT_INFO_URL, CUSTOMER_URL, INTEREST_URL, LEGACY_CORE_URL, SERVICE_KEY, SERVICE_TRUST,
};

/// Compare every account's figures with the legacy core's
///
/// Both sides' figures for the business date, in estimate mode (nothing is paid), compared field by
/// field; writes DIR/mismatches.csv and DIR/summary.json and prints the summary (by field, product
/// and customer status, the largest differences). An account either side could not answer for is
/// unverified.
#[derive(Args, Debug)]
#[command(after_help = command_help(
    &[&INTEREST_URL, &LEGACY_CORE_URL, &ACCOUNT_INFO_URL, &CUSTOMER_URL, &SERVICE_KEY, &SERVICE_TRUST],
    &[
        "mismatched plus unverified accounts within --max-mismatches",
        "above --max-mismatches",
        "could not run",
    ],
))]
// --accounts or --all: exactly one of them.
#[command(group(ArgGroup::new("which").required(true).multiple(false).args(["accounts", "all"])))]
pub struct VerifyArgs {
    /// Business date to compare
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub(crate) date: NaiveDate,
    /// Verify the accounts whose ids are in FILE, one per line (blank lines skipped)
    #[arg(long, value_name = "FILE")]
    pub(crate) accounts: Option<PathBuf>,
    /// Verify every account (as the account-info service lists them)
    #[arg(long)]
    pub(crate) all: bool,
    /// Directory for mismatches.csv and summary.json (created if missing) [default: verify-DATE]
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Mismatched plus unverified accounts tolerated before the exit code is 1
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) max_mismatches: usize,
    /// Accounts compared at once (1 to 256; a number outside is taken as the nearest)
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub(crate) concurrency: usize,
    /// Do not draw the progress bar
    #[arg(long)]
    pub(crate) no_progress: bool,
}

enum Outcome {
    Match,
    Mismatch { fields: Vec<&'static str>, ours: Box<Figures>, legacy: Box<Figures> },
    Unverified(String),
}

struct Urls {
    interest: String,
    legacy: String,
    account_info: String,
    customer: String,
}

async fn get<T: serde::de::DeserializeOwned>(http: &Services, url: &str) -> Result<T, String> {
    let r = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = r.status();
    if !status.is_success() {
        let body = r.text().await.unwrap_or_default();
        return Err(format!("HTTP {status}: {}", body.chars().take(200).collect::<String>()));
    }
    r.json().await.map_err(|e| e.to_string())
}

async fn compare(http: &Services, u: &Urls, id: Uuid, date: NaiveDate) -> Outcome {
    let ours = async {
        let r = http
            .get(format!("{}/v1/interest/accounts/{id}", u.interest))
            // The batch compares itself; no shadow comparison of these estimates.
            .header("x-shadow", "off")
            .send()
            .await
            .map_err(|e| format!("new system: {e}"))?;
        if !r.status().is_success() {
            return Err(format!("new system: HTTP {}", r.status()));
        }
        r.json::<Estimate>().await.map_err(|e| format!("new system: {e}"))
    };
    let legacy_url = format!("{}/legacy/v1/accounts/{id}/interest?business_date={date}", u.legacy);
    let legacy = get::<LegacyQuote>(http, &legacy_url);
    let (ours, legacy) = tokio::join!(ours, legacy);
    let ours = match ours {
        Ok(e) if e.business_date != date => {
            return Outcome::Unverified(format!("the new system's business date is {}", e.business_date))
        }
        Ok(e) => Figures::from_estimate(&e),
        Err(e) => return Outcome::Unverified(e),
    };
    let legacy = match legacy {
        Ok(q) => Figures::from_legacy(&q),
        Err(e) => return Outcome::Unverified(format!("legacy core: {e}")),
    };
    let fields = ours.differences(&legacy);
    if fields.is_empty() {
        Outcome::Match
    } else {
        Outcome::Mismatch { fields, ours: Box::new(ours), legacy: Box::new(legacy) }
    }
}

async fn all_accounts(http: &Services, base: &str) -> anyhow::Result<Vec<Uuid>> {
    let mut ids = Vec::new();
    let mut after: Option<Uuid> = None;
    loop {
        let mut path = format!("{base}/v1/accounts?limit=1000");
        if let Some(a) = after {
            path.push_str(&format!("&after={a}"));
        }
        let page: AccountPage = get(http, &path).await.map_err(|e| anyhow::anyhow!("listing accounts: {e}"))?;
        ids.extend(page.accounts.iter().map(|a| a.account_id));
        match page.next_after {
            Some(n) => after = Some(n),
            None => return Ok(ids),
        }
    }
}

#[derive(Serialize)]
struct Largest {
    account_id: Uuid,
    fields: String,
    largest_difference_won: i64,
}

#[derive(Serialize, Default)]
struct Summary {
    business_date: Option<NaiveDate>,
    accounts: usize,
    matched: usize,
    mismatched: usize,
    unverified: usize,
    seconds: f64,
    accounts_per_second: f64,
    by_field: BTreeMap<String, usize>,
    by_product: BTreeMap<String, usize>,
    by_customer_status: BTreeMap<String, usize>,
    unverified_reasons: BTreeMap<String, usize>,
    largest: Vec<Largest>,
}

const HEADER: &str = "account_id,customer_id,product_code,customer_status,fields,largest_difference_won,\
ours_period_from,ours_period_to,legacy_period_from,legacy_period_to,ours_gross,legacy_gross,\
ours_income_tax,legacy_income_tax,ours_local_tax,legacy_local_tax,ours_rural_special_tax,legacy_rural_special_tax,\
ours_net,legacy_net,ours_payable,legacy_payable,ours_code,legacy_code";

fn csv_row(id: Uuid, account: Option<&Account>, status: &str, fields: &[&str], o: &Figures, l: &Figures) -> String {
    let (customer, product) =
        account.map_or((String::new(), String::new()), |a| (a.customer_id.to_string(), a.product_code.clone()));
    format!(
        "{id},{customer},{product},{status},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
        fields.join(";"),
        o.largest_difference(l),
        o.period_from,
        o.period_to,
        l.period_from,
        l.period_to,
        o.gross,
        l.gross,
        o.income_tax,
        l.income_tax,
        o.local_tax,
        l.local_tax,
        o.rural_special_tax,
        l.rural_special_tax,
        o.net,
        l.net,
        o.payable,
        l.payable,
        o.code.as_deref().unwrap_or(""),
        l.code.as_deref().unwrap_or(""),
    )
}

/// Runs the verification; `Ok(true)` when the mismatches and unverified accounts are within the
/// threshold.
pub async fn verify(o: VerifyArgs) -> anyhow::Result<bool> {
    let out = o.out.clone().unwrap_or_else(|| PathBuf::from(format!("verify-{}", o.date)));
    let concurrency = o.concurrency.clamp(1, 256);
    let u = Urls {
        interest: url(&INTEREST_URL),
        legacy: url(&LEGACY_CORE_URL),
        account_info: url(&ACCOUNT_INFO_URL),
        customer: url(&CUSTOMER_URL),
    };
    let http = crate::services::services(Duration::from_secs(30))?;
    let ids = match &o.accounts {
        Some(f) => crate::account_ids_from(f)?,
        None => all_accounts(&http, &u.account_info).await?,
    };
    let started = Instant::now();
    let bar = if !o.no_progress { ProgressBar::new(ids.len() as u64) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} accounts ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (mut results, mut mismatched) = (Vec::with_capacity(ids.len()), 0usize);
    let mut stream = futures::stream::iter(ids.iter().copied())
        .map(|id| {
            let (http, u) = (&http, &u);
            async move { (id, compare(http, u, id, o.date).await) }
        })
        .buffer_unordered(concurrency);
    while let Some((id, outcome)) = stream.next().await {
        if matches!(outcome, Outcome::Mismatch { .. }) {
            mismatched += 1;
            bar.set_message(format!("{mismatched} mismatched"));
        }
        bar.inc(1);
        results.push((id, outcome));
    }
    bar.finish();
    let seconds = started.elapsed().as_secs_f64();
    let mut s = Summary { business_date: Some(o.date), accounts: ids.len(), seconds, ..Default::default() };
    s.accounts_per_second = ids.len() as f64 / seconds.max(0.001);
    let out_text = out.display().to_string();
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {out_text}"))?;
    let csv_path = out.join("mismatches.csv");
    let mut csv = std::io::BufWriter::new(std::fs::File::create(&csv_path)?);
    writeln!(csv, "{HEADER}")?;
    // Who and what each mismatched account is (account, then its customer), fetched concurrently.
    let mismatched: Vec<Uuid> =
        results.iter().filter(|(_, o)| matches!(o, Outcome::Mismatch { .. })).map(|(id, _)| *id).collect();
    let described: std::collections::HashMap<Uuid, (Option<Account>, String)> = futures::stream::iter(mismatched)
        .map(|id| {
            let (http, u) = (&http, &u);
            async move {
                let account: Option<Account> = get(http, &format!("{}/v1/accounts/{id}", u.account_info)).await.ok();
                let status = match &account {
                    Some(a) => get::<Customer>(http, &format!("{}/v1/customers/{}", u.customer, a.customer_id))
                        .await
                        .map_or_else(|_| "UNKNOWN".to_string(), |c| c.status.as_str().to_string()),
                    None => "UNKNOWN".to_string(),
                };
                (id, (account, status))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut largest = Vec::new();
    for (id, outcome) in &results {
        match outcome {
            Outcome::Match => s.matched += 1,
            Outcome::Unverified(reason) => {
                s.unverified += 1;
                let reason: String = reason.chars().take(80).collect();
                *s.unverified_reasons.entry(reason).or_default() += 1;
            }
            Outcome::Mismatch { fields, ours, legacy } => {
                s.mismatched += 1;
                let (account, status) = described.get(id).cloned().unwrap_or((None, "UNKNOWN".to_string()));
                for f in fields {
                    *s.by_field.entry(f.to_string()).or_default() += 1;
                }
                let product = account.as_ref().map_or_else(|| "UNKNOWN".to_string(), |a| a.product_code.clone());
                *s.by_product.entry(product).or_default() += 1;
                *s.by_customer_status.entry(status.clone()).or_default() += 1;
                writeln!(csv, "{}", csv_row(*id, account.as_ref(), &status, fields, ours, legacy))?;
                largest.push(Largest {
                    account_id: *id,
                    fields: fields.join(";"),
                    largest_difference_won: ours.largest_difference(legacy),
                });
            }
        }
    }
    csv.flush()?;
    largest.sort_by_key(|l| std::cmp::Reverse(l.largest_difference_won));
    largest.truncate(10);
    s.largest = largest;
    std::fs::write(out.join("summary.json"), serde_json::to_string_pretty(&s)?)?;
    print_summary(&s, &out_text);
    Ok(s.mismatched + s.unverified <= o.max_mismatches)
}

fn print_summary(s: &Summary, out: &str) {
    println!(
        "verified {} accounts for {} in {:.1} s ({:.0} accounts/s)",
        s.accounts,
        s.business_date.map(|d| d.to_string()).unwrap_or_default(),
        s.seconds,
        s.accounts_per_second
    );
    println!("  matched     {}", s.matched);
    println!("  mismatched  {}", s.mismatched);
    println!("  unverified  {}", s.unverified);
    for f in FIELDS {
        if let Some(n) = s.by_field.get(f) {
            println!("    field {f:<18} {n}");
        }
    }
    for (p, n) in &s.by_product {
        println!("    product {p:<16} {n}");
    }
    for (c, n) in &s.by_customer_status {
        println!("    customer {c:<15} {n}");
    }
    for (r, n) in &s.unverified_reasons {
        println!("    unverified: {r} ({n})");
    }
    for l in &s.largest {
        println!("    largest: {} {} won ({})", l.account_id, l.largest_difference_won, l.fields);
    }
    println!("report: {out}/mismatches.csv, {out}/summary.json");
}
