//! The benchmark tool: runs against a running system (`bash deploy/up.sh`, manual clock) and prints
//! figures. It seeds its own product, customers and accounts through the public API, moving the
//! shared manual clock forward by a year to give accounts history.
//!
//! Usage: `cargo run --release -p bench -- [--quick] [estimate]`
//! Env: CUSTOMER_URL, ACCOUNT_INFO_URL, ACCOUNTING_URL, INTEREST_URL, TAX_URL, KAFKA_BROKERS,
//! KAFKA_TOPIC_PREFIX (default the local ports and topics).

mod api;
mod load;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, NaiveDate};
use futures::StreamExt;
use rand::Rng;
use uuid::Uuid;

use api::Api;
use load::Stats;

struct Options {
    quick: bool,
    scenarios: Vec<String>,
    /// Accounts seeded for the payout run (default 100,000; --quick 2,000).
    accounts: Option<usize>,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options { quick: false, scenarios: Vec::new(), accounts: None };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            "estimate" | "run" | "tax" => o.scenarios.push(a),
            "--accounts" => {
                let v = args.next().context("--accounts needs a number")?;
                o.accounts = Some(v.parse().context("--accounts must be a number")?);
            }
            "-h" | "--help" => {
                println!("bench [--quick] [--accounts N] [estimate] [run] [tax]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios.push("estimate".into());
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let api = Arc::new(Api::from_env()?);
    api.today().await.context("the bench needs the manual clock (CLOCK_MODE=manual, as deploy/up.sh)")?;
    println!("# bench {} — {} cores", if o.quick { "--quick" } else { "full" }, num_cpus());
    for s in &o.scenarios {
        match s.as_str() {
            "estimate" => estimates(&api, &o, api.today().await?).await?,
            "run" => payout_run(&api, &o, api.today().await?).await?,
            "tax" => tax_pipeline(&api, &o, api.today().await?).await?,
            _ => {}
        }
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs `n` seeding calls with bounded concurrency, printing progress.
async fn seed<F, Fut, T>(label: &str, n: usize, f: F) -> anyhow::Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let t = Instant::now();
    let mut out = Vec::with_capacity(n);
    let mut s = futures::stream::iter(0..n).map(f).buffered(32);
    while let Some(r) = s.next().await {
        out.push(r?);
        if out.len() % 1000 == 0 || out.len() == n {
            eprint!("\r  seeding {label}: {}/{n}", out.len());
        }
    }
    eprintln!("  ({:.1} s)", t.elapsed().as_secs_f64());
    Ok(out)
}

/// A new product opened on `day` and `n` accounts in it, each with one deposit.
async fn funded_accounts(api: &Arc<Api>, n: usize, day: NaiveDate) -> anyhow::Result<Vec<Uuid>> {
    let product = format!("BENCH_{}", &Uuid::new_v4().simple().to_string()[..8]);
    api.product(&product, day).await?;
    seed("accounts", n, |_| {
        let (api, product) = (api.clone(), product.clone());
        async move {
            let c = api.customer().await?;
            let a = api.account(c, &product).await?;
            api.deposit(a, rand::thread_rng().gen_range(1_000_000..200_000_000), None).await?;
            Ok(a)
        }
    })
    .await
}

async fn estimates(api: &Arc<Api>, o: &Options, start: NaiveDate) -> anyhow::Result<()> {
    let (warm_n, history_n, secs) = if o.quick { (200, 10, 3) } else { (2_000, 50, 10) };
    let duration = Duration::from_secs(secs);
    let ids = funded_accounts(api, warm_n + history_n, start).await?;
    let (warm, history) = ids.split_at(warm_n);
    let today = start + Days::new(365);
    api.set_clock(today).await?;
    // A balance change on every one of the 364 days after opening.
    let history_vec = history.to_vec();
    seed("daily history", history_n * 364, |i| {
        let (api, a) = (api.clone(), history_vec[i % history_n]);
        async move {
            let day = start + Days::new(1 + (i / history_n) as u64);
            api.deposit(a, rand::thread_rng().gen_range(10_000..1_000_000), Some(day)).await
        }
    })
    .await?;

    println!("\n## estimate ({} accounts, {}-day history)", warm_n + history_n, 365);
    let mut cold = Stats::default();
    let t = Instant::now();
    for a in history {
        let t = Instant::now();
        match api.estimate(*a).await {
            Ok(()) => cold.micros.push(t.elapsed().as_micros() as u64),
            Err(_) => cold.errors += 1,
        }
    }
    cold.elapsed = t.elapsed();
    println!("{}", cold.line("cold estimate, 365 balance changes, c=1"));
    for a in warm {
        api.estimate(*a).await?;
    }
    let warm: Arc<Vec<Uuid>> = Arc::new(warm.to_vec());
    let mut c16 = 0.0;
    for c in [1, 16, 64] {
        let (api2, warm) = (api.clone(), warm.clone());
        let s = load::closed(c, duration, move |_, _| {
            let (api, a) = (api2.clone(), warm[rand::thread_rng().gen_range(0..warm.len())]);
            async move { api.estimate(a).await.is_ok() }
        })
        .await;
        let api3 = api.clone();
        let base = load::closed(c, duration, move |_, _| {
            let api = api3.clone();
            async move { api.health().await.is_ok() }
        })
        .await;
        println!("{}", s.line(&format!("warm estimate c={c}")));
        println!("{}", base.line(&format!("  baseline GET /health/live c={c}")));
        println!("  ratio (estimate/baseline req/s): {:.2}", s.per_second() / base.per_second());
        if c == 16 {
            c16 = s.per_second();
        }
    }
    // Open loop at 70% of the closed-loop c=16 throughput: latency a steady arrival rate sees.
    let rate = (c16 * 0.7).max(1.0) as u64;
    let api2 = api.clone();
    let s = load::open(rate, duration, move |_| {
        let (api, a) = (api2.clone(), warm[rand::thread_rng().gen_range(0..warm.len())]);
        async move { api.estimate(a).await.is_ok() }
    })
    .await;
    println!("{}", s.line(&format!("warm estimate open loop {rate}/s")));
    Ok(())
}

/// The monthly batch: a run over every account (N seeded with a month of interest), with customers
/// asking for their own payout at a steady rate meanwhile.
async fn payout_run(api: &Arc<Api>, o: &Options, start: NaiveDate) -> anyhow::Result<()> {
    let n = o.accounts.unwrap_or(if o.quick { 2_000 } else { 100_000 });
    let mut ids = funded_accounts(api, n, start).await?;
    let today = start + Days::new(30);
    api.set_clock(today).await?;
    // The run takes accounts in id order: customers ask for the last ones, which it reaches last.
    ids.sort_unstable();
    let on_demand: Arc<Vec<Uuid>> = Arc::new(ids[ids.len().saturating_sub(2_000)..].to_vec());
    println!("\n## payout run ({n} accounts seeded, business date {today})");
    let t = Instant::now();
    let run = api.start_run().await?;
    let rate = 20;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let customers = tokio::spawn(load::open_until(rate, stop.clone(), {
        let (api, od) = (api.clone(), on_demand.clone());
        move |i| {
            let (api, a) = (api.clone(), od[i as usize % od.len()]);
            async move { api.pay(a).await.is_ok() }
        }
    }));
    let mut last = 0;
    let report = loop {
        let r = api.run(run).await?;
        let done = r["accounts"].as_i64().unwrap_or(0) - r["pending"].as_i64().unwrap_or(0);
        if done / 5_000 != last / 5_000 {
            eprint!("\r  run: {done} accounts done, {:.0}/s", done as f64 / t.elapsed().as_secs_f64());
        }
        last = done;
        if r["state"] != "RUNNING" {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let on_demand_stats = customers.await?;
    eprintln!();
    let accounts = report["accounts"].as_i64().unwrap_or(0);
    println!(
        "run state {} accounts {} paid {} skipped {} failed {}",
        report["state"], accounts, report["paid"], report["skipped"], report["failed"]
    );
    println!("run took {:.1} s: {:.0} accounts/s", took.as_secs_f64(), accounts as f64 / took.as_secs_f64());
    // On-demand payouts measured while the run was going (open loop, 20/s).
    println!("{}", on_demand_stats.line(&format!("on-demand payout during the run, {rate}/s open loop")));
    Ok(())
}

/// Payout commit → withholding record lag at steady payout rates, and the consumer's own maximum.
async fn tax_pipeline(api: &Arc<Api>, o: &Options, start: NaiveDate) -> anyhow::Result<()> {
    let secs = if o.quick { 5 } else { 20 };
    let rates: &[u64] = if o.quick { &[50] } else { &[100, 500] };
    println!("\n## tax pipeline");
    let mut day = start;
    for &rate in rates {
        let n = (rate * secs) as usize;
        let ids = funded_accounts(api, n, day).await?;
        day = day + Days::new(30);
        api.set_clock(day).await?;
        let ids = Arc::new(ids);
        let api2 = api.clone();
        let s = load::open(rate, Duration::from_secs(secs), move |i| {
            let (api, a) = (api2.clone(), ids[i as usize]);
            async move { api.pay(a).await.is_ok() }
        })
        .await;
        println!("{}", s.line(&format!("payouts offered at {rate}/s (open loop)")));
        let lag = api.tax_lag(day, n).await?;
        println!("{}", lag.line(&format!("  payout commit → withholding record, {rate}/s offered")));
    }
    // The consumer alone: events written straight to the topic, counted in a month of their own.
    let n = if o.quick { 5_000 } else { 50_000 };
    let month = format!("{}-01", 2200 + rand::thread_rng().gen_range(0..700));
    let t = api.produce_tax_events(n, &month).await?;
    let produced = t.elapsed();
    loop {
        let got = api.monthly_payouts(&month).await?;
        if got >= n as i64 {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            anyhow::bail!("the consumer recorded only {got} of {n} in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t.elapsed();
    println!(
        "consumer: {n} events produced in {:.1} s, all recorded after {:.1} s: {:.0} records/s",
        produced.as_secs_f64(),
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    Ok(())
}
