//! The benchmark tool: measures a running system (`bash deploy/up.sh`, manual clock) against this
//! machine's own limits and prints a report (BENCHMARKS.md explains it).
//!
//! It moves the manual clock to the next day (a business date on which nothing is paid yet),
//! bulk-loads N accounts with 30–365 days of history straight into the databases, then measures:
//! estimates (cold, warm at c=1/16/64, open loop) against the HTTP baseline; payouts at c=1/16/64
//! and on one hot account against `pgbench` running the payout's SQL, with statements, commits and
//! HTTP calls per payout; the payout run over every account; tax lag and the consumer's maximum.
//!
//! Usage: `cargo run --release -p bench -- [--quick] [--accounts N] [--seconds S] [estimate] [payout] [run] [tax]`
//! (no scenario = all). Progress goes to stderr, the report to stdout; errors are listed at its top.
//! Env: CUSTOMER_URL, ACCOUNT_INFO_URL, ACCOUNTING_URL, INTEREST_URL, TAX_URL, KAFKA_BROKERS,
//! KAFKA_TOPIC_PREFIX, DATABASE_URL_BASE, DATABASE_NAME_PREFIX (default: deploy/up.sh's).

mod api;
mod baseline;
mod counts;
mod load;
mod seed;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{Days, NaiveDate};
use futures::StreamExt;
use rand::seq::SliceRandom;
use rand::Rng;
use uuid::Uuid;

use api::Api;
use load::Stats;
use seed::{Databases, Seeded};

struct Options {
    quick: bool,
    scenarios: Vec<String>,
    /// Accounts seeded (default 100,000; --quick 2,000).
    accounts: Option<i64>,
    /// Length of each timed measurement (default 10 s; --quick 2 s).
    seconds: Option<u64>,
}

const SCENARIOS: [&str; 4] = ["estimate", "payout", "run", "tax"];

fn options() -> anyhow::Result<Options> {
    let mut o = Options { quick: false, scenarios: Vec::new(), accounts: None, seconds: None };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => o.quick = true,
            s if SCENARIOS.contains(&s) => o.scenarios.push(a),
            "--accounts" => {
                let v = args.next().context("--accounts needs a number")?;
                o.accounts = Some(v.parse().context("--accounts must be a number")?);
            }
            "--seconds" => {
                let v = args.next().context("--seconds needs a number")?;
                o.seconds = Some(v.parse().context("--seconds must be a number")?);
            }
            "-h" | "--help" => {
                println!("bench [--quick] [--accounts N] [--seconds S] [estimate] [payout] [run] [tax]");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    if o.scenarios.is_empty() {
        o.scenarios = SCENARIOS.iter().map(|s| s.to_string()).collect();
    }
    Ok(o)
}

/// The report: lines shown as they are measured (stderr) and printed whole at the end (stdout),
/// with every measurement that had errors listed first.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    errors: Vec<String>,
}

impl Report {
    fn add(&mut self, line: impl Into<String>) {
        let line = line.into();
        eprintln!("{line}");
        self.lines.push(line);
    }

    fn stats(&mut self, name: &str, s: &Stats) {
        self.add(s.line(name));
        if s.errors > 0 {
            self.errors.push(format!("{}: {} errors", name.trim(), s.errors));
        }
    }

    /// Latencies of events that were not requests (no rate).
    fn latencies(&mut self, name: &str, s: &Stats) {
        self.add(format!(
            "{name:<44} p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  n={} missing={}",
            s.ms(0.5),
            s.ms(0.99),
            s.ms(0.999),
            s.ok(),
            s.errors
        ));
        if s.errors > 0 {
            self.errors.push(format!("{}: {} missing", name.trim(), s.errors));
        }
    }

    fn error(&mut self, what: String) {
        self.add(format!("  ERROR: {what}"));
        self.errors.push(what);
    }

    fn print(&self) {
        println!();
        if self.errors.is_empty() {
            println!("# bench report — no errors");
        } else {
            println!("# bench report — WITH ERRORS ({}):", self.errors.len());
            for e in &self.errors {
                println!("#   {e}");
            }
        }
        for l in &self.lines {
            println!("{l}");
        }
    }
}

/// Accounts handed out once each, in random order: a payout per account per business date.
struct Draw {
    ids: Vec<Uuid>,
    next: AtomicUsize,
}

impl Draw {
    fn shuffled(mut ids: Vec<Uuid>) -> Arc<Self> {
        ids.shuffle(&mut rand::thread_rng());
        Arc::new(Self { ids, next: AtomicUsize::new(0) })
    }

    fn next(&self) -> Option<Uuid> {
        self.ids.get(self.next.fetch_add(1, Ordering::Relaxed)).copied()
    }
}

/// A payout of the next unpaid account: done when it was paid (201); exhausted when none is left.
async fn pay_next(api: Arc<Api>, draw: Arc<Draw>) -> load::Attempt {
    match draw.next() {
        Some(a) => api.pay_status(a).await.is_ok_and(|s| s == 201).into(),
        None => load::Attempt::Exhausted,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = options()?;
    let api = Arc::new(Api::from_env()?);
    let dbs = Databases::from_env();
    let before = api.today().await.context("the bench needs the manual clock (CLOCK_MODE=manual, as deploy/up.sh)")?;
    let today = before + Days::new(1);
    api.set_clock(today).await?;
    let n = o.accounts.unwrap_or(if o.quick { 2_000 } else { 100_000 });
    let secs = Duration::from_secs(o.seconds.unwrap_or(if o.quick { 2 } else { 10 }));
    let mut r = Report::default();
    r.add(format!(
        "# bench {} — {}",
        if o.quick { "--quick" } else { "full" },
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    ));
    r.add(format!("machine: {}", machine(&dbs).await));
    r.add(format!(
        "accounts: {n} seeded; each measurement {} s; business date {today}; everything (services, PostgreSQL, Redis, broker, load) on this machine",
        secs.as_secs()
    ));
    r.add("");
    let seeded = seed::accounts(&dbs, &api, n, today).await?;
    r.add(format!(
        "seeded product {}: {} accounts, {} with a balance change every day",
        seeded.product,
        seeded.accounts.len(),
        seeded.daily.len()
    ));
    // Payouts draw from accounts nobody asked an estimate for (a first contact, nothing cached);
    // the "after its estimate" scenario warms its own.
    let estimated: std::collections::HashSet<Uuid> = estimate_set(&seeded).into_iter().collect();
    let unpaid = Draw::shuffled(seeded.accounts.iter().filter(|a| !estimated.contains(a)).copied().collect());
    for s in &o.scenarios {
        r.add("");
        match s.as_str() {
            "estimate" => estimates(&api, &seeded, secs, &mut r).await?,
            "payout" => payouts(&api, &dbs, &unpaid, secs, o.quick, &mut r).await?,
            "run" => payout_run(&api, &dbs, &seeded, today, &mut r).await?,
            "tax" => tax_pipeline(&api, &dbs, &seeded, o.quick, &mut r).await?,
            _ => {}
        }
    }
    r.print();
    Ok(())
}

async fn machine(dbs: &Databases) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok()))
        .map_or("?".into(), |kb| format!("{:.0} GiB", kb as f64 / 1_048_576.0));
    let pg = match dbs.connect("postgres").await {
        Ok(mut c) => sqlx::query_scalar::<_, String>("SHOW server_version").fetch_one(&mut c).await.unwrap_or_default(),
        Err(_) => "?".into(),
    };
    format!("{cores} cores ({cpu}), {mem} RAM, PostgreSQL {pg}")
}

/// The accounts the estimate scenarios use: up to 2,000, a quarter of the seeded ones at most, so
/// most accounts are left for payouts that start cold.
fn estimate_set(seeded: &Seeded) -> Vec<Uuid> {
    let n = (seeded.accounts.len() / 4).min(2_000);
    seeded.accounts.iter().filter(|a| !seeded.daily.contains(a)).copied().take(n).collect()
}

async fn estimates(api: &Arc<Api>, seeded: &Seeded, secs: Duration, r: &mut Report) -> anyhow::Result<()> {
    r.add(format!("## estimate (GET /v1/interest/accounts/{{id}}), {} s each", secs.as_secs()));
    let warm = estimate_set(seeded);
    // First of the day: the ledger read, the engine, and filling the cache.
    let cold_n = warm.len().min(500);
    let cold = load::each(&warm[..cold_n], |a| {
        let api = api.clone();
        async move { api.estimate(a).await.is_ok() }
    })
    .await;
    r.stats("cold estimate, 1–10 changes, c=1", &cold);
    let daily = load::each(&seeded.daily, |a| {
        let api = api.clone();
        async move { api.estimate(a).await.is_ok() }
    })
    .await;
    r.stats("cold estimate, a change every day, c=1", &daily);
    for chunk in warm[cold_n..].chunks(64) {
        futures::future::join_all(chunk.iter().map(|a| api.estimate(*a))).await;
    }
    let warm = Arc::new(warm);
    let mut c16 = 0.0;
    for c in [1, 16, 64] {
        let (api2, warm2) = (api.clone(), warm.clone());
        let cpu0 = counts::cpu_by_program();
        let s = load::closed(c, secs, move |_, _| {
            let (api, a) = (api2.clone(), warm2[rand::thread_rng().gen_range(0..warm2.len())]);
            async move { api.estimate(a).await.is_ok() }
        })
        .await;
        let cpu1 = counts::cpu_by_program();
        let api3 = api.clone();
        let base = load::closed(c, secs, move |_, _| {
            let api = api3.clone();
            async move { api.health().await.is_ok() }
        })
        .await;
        let cpu2 = counts::cpu_by_program();
        r.stats(&format!("warm estimate c={c}"), &s);
        r.add(counts::cpu_line("estimate", &cpu0, &cpu1, s.ok()));
        r.stats(&format!("  HTTP baseline GET /health/live c={c}"), &base);
        r.add(counts::cpu_line("health check", &cpu1, &cpu2, base.ok()));
        r.add(format!(
            "  ratio estimate/baseline req/s: {:.2} (goal ≥ 0.50; at c=16 ≥ 0.80)",
            s.per_second() / base.per_second()
        ));
        if c == 16 {
            c16 = s.per_second();
        }
    }
    // Open loop at 70% of the closed-loop c=16 throughput: latency a steady arrival rate sees.
    let rate = (c16 * 0.7).max(1.0) as u64;
    let api2 = api.clone();
    let s = load::open(rate, secs, move |_| {
        let (api, a) = (api2.clone(), warm[rand::thread_rng().gen_range(0..warm.len())]);
        async move { api.estimate(a).await.is_ok() }
    })
    .await;
    r.stats(&format!("warm estimate open loop {rate}/s"), &s);
    Ok(())
}

async fn payouts(
    api: &Arc<Api>,
    dbs: &Databases,
    unpaid: &Arc<Draw>,
    secs: Duration,
    quick: bool,
    r: &mut Report,
) -> anyhow::Result<()> {
    r.add(format!(
        "## payout (POST /v1/interest/accounts/{{id}}/payouts, a new random account each), {} s each",
        secs.as_secs()
    ));
    let base = baseline::Baseline::prepare(dbs, if quick { 10_000 } else { 100_000 }).await?;
    // Set aside before the cold scenarios can use them all up.
    let warm: Vec<Uuid> = (0..if quick { 300 } else { 3_000 }).map_while(|_| unpaid.next()).collect();
    let mut counter = counts::Counter::new(dbs).await?;
    for c in [1usize, 16, 64] {
        let b = tokio::task::block_in_place(|| base.run(dbs, c, secs))?;
        let before = counter.snapshot(api).await?;
        let (api2, draw) = (api.clone(), unpaid.clone());
        let s = load::closed(c, secs, move |_, _| pay_next(api2.clone(), draw.clone())).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = counter.snapshot(api).await?;
        r.stats(&format!("payout c={c}"), &s);
        r.stats(&format!("  pgbench baseline (payout SQL) c={c}"), &b);
        r.add(format!(
            "  ratio payout/baseline: p50 {:.2}× (goal at c=1 ≤ 1.25×), throughput {:.2} (goal at c=16 ≥ 1.0)",
            s.ms(0.5) / b.ms(0.5),
            s.per_second() / b.per_second()
        ));
        for line in counts::report(&before, &after, s.ok(), c == 1) {
            r.add(line);
        }
    }
    base.drop(dbs).await?;

    // The mobile flow: the customer looks at the estimate, then asks for the money. The payout
    // books the cached estimate's quote (verified by the ledger) instead of reading the ledger.
    futures::stream::iter(warm.iter().map(|a| api.estimate(*a))).buffer_unordered(16).collect::<Vec<_>>().await;
    let before = counter.snapshot(api).await?;
    let (api2, draw) = (api.clone(), Draw::shuffled(warm));
    let s = load::closed(1, secs, move |_, _| pay_next(api2.clone(), draw.clone())).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = counter.snapshot(api).await?;
    r.stats("payout after its estimate (cached quote) c=1", &s);
    for line in counts::report(&before, &after, s.ok(), true) {
        r.add(line);
    }

    // One account, many clients: exactly one payout, the rest refused quickly.
    let Some(hot) = unpaid.next() else {
        r.add("payout on one hot account: not measured, no unpaid account left".to_string());
        return Ok(());
    };
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let (api2, st) = (api.clone(), statuses.clone());
    let s = load::closed(16, secs, move |_, _| {
        let (api, st) = (api2.clone(), st.clone());
        async move {
            let status = api.pay_status(hot).await;
            let code = status.as_ref().map_or(0, |s| *s);
            if let Ok(mut m) = st.lock() {
                *m.entry(code).or_default() += 1;
            }
            matches!(code, 201 | 409)
        }
    })
    .await;
    r.stats("payout on one hot account c=16 (201 or 409)", &s);
    let statuses = statuses.lock().map(|m| m.clone()).unwrap_or_default();
    r.add(format!("  statuses: {statuses:?}"));
    if statuses.get(&201).copied().unwrap_or(0) != 1 {
        r.error(format!("hot account: expected exactly one 201, got {statuses:?}"));
    }
    Ok(())
}

/// The monthly batch: a run over every account, with customers asking for their own payout at a
/// steady rate meanwhile (on the accounts the run reaches last).
async fn payout_run(
    api: &Arc<Api>,
    dbs: &Databases,
    seeded: &Seeded,
    today: NaiveDate,
    r: &mut Report,
) -> anyhow::Result<()> {
    let mut sorted = seeded.accounts.clone();
    sorted.sort_unstable();
    let on_demand: Arc<Vec<Uuid>> = Arc::new(sorted[sorted.len().saturating_sub(2_000)..].to_vec());
    r.add(format!("## payout run over every account (business date {today})"));
    let mut counter = counts::Counter::new(dbs).await?;
    let before = counter.snapshot(api).await?;
    let t = Instant::now();
    let started = chrono::Utc::now();
    let run = api.start_run().await?;
    let rate = 20;
    let stop = Arc::new(AtomicBool::new(false));
    let customers = tokio::spawn(load::open_until(rate, stop.clone(), {
        let (api, od) = (api.clone(), on_demand.clone());
        move |i| {
            let (api, a) = (api.clone(), od[i as usize % od.len()]);
            async move { api.pay(a).await.is_ok() }
        }
    }));
    let mut bar: Option<indicatif::ProgressBar> = None;
    let report = loop {
        let v = api.run(run).await?;
        let accounts = v["accounts"].as_u64().unwrap_or(0);
        let done = accounts.saturating_sub(v["pending"].as_u64().unwrap_or(0));
        let b = bar.get_or_insert_with(|| seed::bar(accounts, "payout run"));
        b.set_length(accounts);
        b.set_position(done);
        if v["state"] != "RUNNING" {
            b.finish_and_clear();
            break v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let on_demand_stats = customers.await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = counter.snapshot(api).await?;
    let accounts = report["accounts"].as_i64().unwrap_or(0);
    let paid = report["paid"].as_i64().unwrap_or(0);
    r.add(format!(
        "run {}: accounts {accounts}, paid {paid}, skipped {}, failed {}",
        report["state"], report["skipped"], report["failed"]
    ));
    r.add(format!(
        "run took {:.1} s: {:.0} accounts/s, {:.0} payouts/s (goal ≥ 2,000 payouts/s)",
        took.as_secs_f64(),
        accounts as f64 / took.as_secs_f64(),
        paid as f64 / took.as_secs_f64()
    ));
    if report["state"] != "COMPLETED" || report["failed"].as_i64().unwrap_or(0) > 0 {
        r.error(format!("payout run ended {} with {} failed", report["state"], report["failed"]));
    }
    r.stats(&format!("on-demand payout during the run, {rate}/s open loop"), &on_demand_stats);
    for line in counts::report(&before, &after, paid.max(0) as u64, false) {
        r.add(line);
    }
    // The tax pipeline at the run's rate: every payout of the run (and of the customers meanwhile)
    // from its commit to its withholding record (waits up to 3 minutes after the run for the rest).
    let lag = api.tax_lag(today, started).await?;
    r.stats("payout commit → withholding record, payouts of the run (goal: lag p99 ≤ 2 s)", &lag);
    Ok(())
}

/// Payout commit → withholding record lag at steady payout rates (on the next business date, so
/// every account is payable again), and the consumer's own maximum.
async fn tax_pipeline(
    api: &Arc<Api>,
    dbs: &Databases,
    seeded: &Seeded,
    quick: bool,
    r: &mut Report,
) -> anyhow::Result<()> {
    let secs = if quick { 3 } else { 20 };
    let rates: &[u64] = if quick { &[50] } else { &[100, 500] };
    r.add("## tax pipeline");
    let mut day = api.today().await?;
    for &rate in rates {
        day = day + Days::new(1);
        api.set_clock(day).await?;
        let draw = Draw::shuffled(seeded.accounts.clone());
        let since = chrono::Utc::now() - chrono::Duration::seconds(1);
        let api2 = api.clone();
        let s = load::open(rate, Duration::from_secs(secs), move |_| pay_next(api2.clone(), draw.clone())).await;
        r.stats(&format!("payouts offered at {rate}/s (open loop)"), &s);
        let lag = api.tax_lag(day, since).await?;
        r.latencies(&format!("  payout commit → withholding record, {rate}/s offered"), &lag);
    }
    // The consumer alone: events written straight to the topic (dated in a month of their own)
    // while the tax database refuses connections, so a backlog builds; then its drain rate.
    let n = if quick { 2_000 } else { 20_000 };
    let first_day = format!("{}-01-01", 2200 + rand::thread_rng().gen_range(0..700));
    let tax_db = dbs.name("tax");
    let mut admin = dbs.connect("postgres").await?;
    sqlx::query(&format!("ALTER DATABASE {tax_db} ALLOW_CONNECTIONS false")).execute(&mut admin).await?;
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
        .bind(&tax_db)
        .execute(&mut admin)
        .await?;
    let produced = api.produce_tax_events(n, &first_day).await;
    sqlx::query(&format!("ALTER DATABASE {tax_db} ALLOW_CONNECTIONS true")).execute(&mut admin).await?;
    // A broker that cannot be reached is reported, not fatal: the report above it still prints.
    let produced = match produced {
        Ok(t) => t.elapsed(),
        Err(e) => {
            r.error(format!("consumer maximum not measured: producing to {} failed: {e:#}", api.kafka()));
            return Ok(());
        }
    };
    let b = seed::bar(n as u64, "consumer backlog");
    let t = Instant::now();
    let mut first: Option<(Instant, i64)> = None;
    loop {
        let got = api.monthly_payouts(&first_day).await.unwrap_or(0);
        b.set_position(got.max(0) as u64);
        if got > 0 && first.is_none() {
            first = Some((Instant::now(), got));
        }
        if got >= n as i64 {
            break;
        }
        if t.elapsed() > Duration::from_secs(600) {
            b.finish_and_clear();
            r.error(format!("the consumer recorded only {got} of {n} backlogged events in 10 minutes"));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.finish_and_clear();
    let (since, at_first) = first.unwrap_or((t, 0));
    let drain = since.elapsed().as_secs_f64().max(1e-3);
    r.add(format!(
        "consumer maximum: backlog of {n} events (produced in {:.1} s with the tax database closed), \
         drained in {drain:.1} s after the first record: {:.0} records/s",
        produced.as_secs_f64(),
        (n as i64 - at_first) as f64 / drain
    ));
    Ok(())
}
