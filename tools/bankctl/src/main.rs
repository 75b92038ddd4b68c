//! `bankctl`: operations from the command line (and from cron).
//!
//! ```text
//! bankctl payout-run [--date YYYY-MM-DD] [--accounts FILE] [--no-progress]
//! bankctl payout-run --follow RUN_ID
//! bankctl reconcile --from YYYY-MM-DD --to YYYY-MM-DD [--json]
//! bankctl token --key PEM --sub SUBJECT --scope "SCOPES" [--minutes N]
//! bankctl verify --date YYYY-MM-DD (--accounts FILE | --all) [--out DIR] [--max-mismatches N]
//!                [--concurrency N] [--no-progress]
//! ```
//! Starts today's payout run (every account, or the ids in FILE, one per line), follows it with a
//! progress bar until it ends, and prints the summary. If a run for that date and scope already
//! exists, follows that one. Exit code: 0 completed with no failed account, 1 completed with
//! failures or expired, 2 could not start or follow. `reconcile` compares interest payouts, ledger
//! postings and withholding records (exit 0 clean, 1 differences, 2 could not read).
//! `INTEREST_URL`, `ACCOUNTING_URL`, `TAX_URL` (default the local ports), `SERVICE_TOKEN` (the
//! internal services' credential, when they require one). `token` signs a bearer
//! token for the gateway (ES256) with a local issuer's private key — for demos and local tests;
//! production tokens come from the bank's identity provider (`AUTH_ISSUER`, `AUTH_AUDIENCE`).
//! `verify` compares every account's figures with the legacy core's (`LEGACY_CORE_URL`; also
//! `ACCOUNT_INFO_URL`, `CUSTOMER_URL`) in estimate mode and writes `DIR/mismatches.csv` and
//! `DIR/summary.json` (exit 0 within `--max-mismatches`, default 0; 1 above; 2 could not run).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use contracts::{PayoutRun, StartPayoutRun};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

mod verify;

struct Args {
    date: Option<String>,
    accounts: Option<String>,
    follow: Option<Uuid>,
    progress: bool,
}

fn args(mut it: impl Iterator<Item = String>) -> anyhow::Result<Args> {
    let mut a = Args { date: None, accounts: None, follow: None, progress: true };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--date" => a.date = Some(it.next().context("--date needs a value")?),
            "--accounts" => a.accounts = Some(it.next().context("--accounts needs a file")?),
            "--follow" => a.follow = Some(it.next().context("--follow needs a run id")?.parse()?),
            "--no-progress" => a.progress = false,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bankctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

const USAGE: &str = "usage: bankctl payout-run [--date YYYY-MM-DD] [--accounts FILE] [--follow RUN_ID] [--no-progress]
       bankctl reconcile --from YYYY-MM-DD --to YYYY-MM-DD [--json]
       bankctl token --key PEM --sub SUBJECT --scope \"customer | ops:read | ops:write | batch\" [--minutes N]
       bankctl verify --date YYYY-MM-DD (--accounts FILE | --all) [--out DIR] [--max-mismatches N] [--concurrency N] [--no-progress]";

fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// A client for the internal services: it presents `SERVICE_TOKEN` (the credential
/// `deploy/up.sh` prints) when set.
fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(token) = std::env::var("SERVICE_TOKEN") {
        headers.insert("x-service-token", token.parse().context("SERVICE_TOKEN is not a valid header value")?);
    }
    Ok(reqwest::Client::builder().default_headers(headers).timeout(timeout).build()?)
}

async fn run() -> anyhow::Result<bool> {
    let mut it = std::env::args().skip(1);
    match it.next().as_deref() {
        Some("payout-run") => payout_run(args(it)?).await,
        Some("reconcile") => reconcile_cmd(it).await,
        Some("token") => token_cmd(it),
        Some("verify") => verify::verify(it).await,
        _ => bail!("{USAGE}"),
    }
}

fn token_cmd(mut it: impl Iterator<Item = String>) -> anyhow::Result<bool> {
    let (mut key, mut sub, mut scope, mut minutes) = (None, None, None, 60i64);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--key" => key = Some(it.next().context("--key needs a PEM file")?),
            "--sub" => sub = Some(it.next().context("--sub needs a subject")?),
            "--scope" => scope = Some(it.next().context("--scope needs scopes")?),
            "--minutes" => minutes = it.next().context("--minutes needs a number")?.parse()?,
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let key = key.context("--key is required")?;
    let pem = std::fs::read(&key).with_context(|| format!("cannot read {key}"))?;
    let claims = serde_json::json!({
        "sub": sub.context("--sub is required")?,
        "scope": scope.context("--scope is required")?,
        "iss": url("AUTH_ISSUER", "interest-bank"),
        "aud": url("AUTH_AUDIENCE", "interest-bank-api"),
        "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + 60 * minutes,
    });
    let key =
        jsonwebtoken::EncodingKey::from_ec_pem(&pem).context("the key must be an EC P-256 private key (PKCS#8 PEM)")?;
    println!("{}", jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key)?);
    Ok(true)
}

async fn reconcile_cmd(mut it: impl Iterator<Item = String>) -> anyhow::Result<bool> {
    let (mut from, mut to, mut json) = (None, None, false);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--from" => from = Some(it.next().context("--from needs a date")?.parse::<chrono::NaiveDate>()?),
            "--to" => to = Some(it.next().context("--to needs a date")?.parse::<chrono::NaiveDate>()?),
            "--json" => json = true,
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    let (from, to) = (from.context("--from is required")?, to.context("--to is required")?);
    let urls = reconcile::Urls {
        interest: url("INTEREST_URL", "http://127.0.0.1:8084"),
        accounting: url("ACCOUNTING_URL", "http://127.0.0.1:8083"),
        tax: url("TAX_URL", "http://127.0.0.1:8085"),
    };
    let http = client(Duration::from_secs(60))?;
    let report = reconcile::reconcile(&http, &urls, from, to).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(report.clean())
}

async fn payout_run(a: Args) -> anyhow::Result<bool> {
    let base = url("INTEREST_URL", "http://127.0.0.1:8084");
    let http = client(Duration::from_secs(30))?;
    let run_id = match a.follow {
        Some(id) => id,
        None => start(&http, &base, &a).await?,
    };
    let bar = if a.progress { ProgressBar::new(1) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} accounts ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let run = loop {
        let run = read(&http, &base, run_id).await?;
        bar.set_length(run.accounts.max(1) as u64);
        bar.set_position((run.accounts - run.pending) as u64);
        bar.set_message(format!(
            "paid {} skipped {} failed {}",
            run.paid,
            run.skipped.values().sum::<i64>(),
            run.failed
        ));
        if run.state != "RUNNING" {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish();
    print_summary(&run);
    Ok(run.state == "COMPLETED" && run.failed == 0)
}

/// Account ids from a file, one per line (blank lines skipped).
fn account_ids_from(file: &str) -> anyhow::Result<Vec<Uuid>> {
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {file}"))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<Uuid>().with_context(|| format!("not an account id: {l}")))
        .collect()
}

async fn start(http: &reqwest::Client, base: &str, a: &Args) -> anyhow::Result<Uuid> {
    let account_ids = match &a.accounts {
        None => None,
        Some(f) => Some(account_ids_from(f)?),
    };
    let business_date = a.date.as_deref().map(str::parse).transpose().context("--date must be YYYY-MM-DD")?;
    let body = StartPayoutRun { business_date, account_ids };
    let r = http.post(format!("{base}/v1/interest/payout-runs")).json(&body).send().await?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if status.as_u16() == 409 && v["code"] == "RUN_EXISTS" {
        let id = v["instance"].as_str().and_then(|i| i.rsplit('/').next()).and_then(|s| s.parse().ok());
        let id = id.context("409 without the existing run")?;
        eprintln!("a run for this date and scope exists: following {id}");
        return Ok(id);
    }
    if !status.is_success() {
        bail!("starting the run: HTTP {status}: {v}");
    }
    let id = v["run_id"].as_str().and_then(|s| s.parse().ok()).context("no run_id in the answer")?;
    eprintln!("started payout run {id}");
    Ok(id)
}

async fn read(http: &reqwest::Client, base: &str, id: Uuid) -> anyhow::Result<PayoutRun> {
    // A restarting interest service is not a reason to give up following.
    let mut last = None;
    for _ in 0..60 {
        match http.get(format!("{base}/v1/interest/payout-runs/{id}")).send().await {
            Ok(r) if r.status().is_success() => return Ok(r.json().await?),
            Ok(r) if r.status().as_u16() == 404 => bail!("no payout run {id}"),
            Ok(r) => last = Some(format!("HTTP {}", r.status())),
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("cannot read run {id}: {}", last.unwrap_or_default())
}

fn print_summary(run: &PayoutRun) {
    println!("payout run {} for {} ({}): {}", run.run_id, run.business_date, run.scope, run.state);
    println!("  accounts  {}", run.accounts);
    println!("  paid      {}", run.paid);
    for (reason, n) in &run.skipped {
        println!("  skipped   {n}  {reason}");
    }
    println!("  failed    {}", run.failed);
    let (a, t) = (&run.totals, run.totals.taxes());
    println!(
        "  gross {} = net {} + income tax {} + local tax {} + rural special tax {}",
        a.gross(),
        a.net(),
        t.income_tax,
        t.local_tax,
        t.rural_special_tax
    );
    if let Some(f) = run.finished_at {
        let secs = (f - run.started_at).num_milliseconds() as f64 / 1000.0;
        println!("  took {secs:.1} s ({:.0} accounts/s)", run.accounts as f64 / secs.max(0.001));
    }
}
