//! `bankctl`: operations from the command line (and from cron).
//!
//! ```text
//! bankctl payout-run [--date YYYY-MM-DD] [--accounts FILE] [--no-progress]
//! bankctl payout-run --follow RUN_ID
//! ```
//! Starts today's payout run (every account, or the ids in FILE, one per line), follows it with a
//! progress bar until it ends, and prints the summary. If a run for that date and scope already
//! exists, follows that one. Exit code: 0 completed with no failed account, 1 completed with
//! failures or expired, 2 could not start or follow. `INTEREST_URL` (default http://127.0.0.1:8084).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use contracts::{PayoutRun, StartPayoutRun};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

struct Args {
    date: Option<String>,
    accounts: Option<String>,
    follow: Option<Uuid>,
    progress: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    if it.next().as_deref() != Some("payout-run") {
        bail!("usage: bankctl payout-run [--date YYYY-MM-DD] [--accounts FILE] [--follow RUN_ID] [--no-progress]");
    }
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

async fn run() -> anyhow::Result<bool> {
    let a = args()?;
    let base = std::env::var("INTEREST_URL").unwrap_or_else(|_| "http://127.0.0.1:8084".into());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
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

async fn start(http: &reqwest::Client, base: &str, a: &Args) -> anyhow::Result<Uuid> {
    let account_ids = match &a.accounts {
        None => None,
        Some(f) => Some(
            std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {f}"))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| l.parse::<Uuid>().with_context(|| format!("not an account id: {l}")))
                .collect::<anyhow::Result<Vec<_>>>()?,
        ),
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
    let t = &run.totals;
    println!(
        "  gross {} = net {} + income tax {} + local tax {} + rural special tax {}",
        t.gross, t.net, t.income_tax, t.local_tax, t.rural_special_tax
    );
    if let Some(f) = run.finished_at {
        let secs = (f - run.started_at).num_milliseconds() as f64 / 1000.0;
        println!("  took {secs:.1} s ({:.0} accounts/s)", run.accounts as f64 / secs.max(0.001));
    }
}
