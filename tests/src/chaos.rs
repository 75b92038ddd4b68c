//! A bounded Jepsen-style fault workload (issue 19): concurrent clients move money, back-date
//! deposits, ask for interest (retrying under the same `Idempotency-Key` after timeouts), start
//! payout runs, change rates, statuses and holds, while the business day moves on — and meanwhile
//! services are killed and restarted, paused past their lock lease, cut from their database, and
//! the broker and Redis die. Every request and answer (acknowledged, refused, unknown) and every
//! fault goes to a history file (JSON lines). Once everything has healed and drained, an
//! independent checker (`tools/checker/check.py`, sharing no code with the services) reads the
//! five databases and the history and judges the invariants.
//!
//! The same code runs the short form (`tests/tests/chaos.rs`, fixed seed, in CI) and the long one
//! (`cargo run -p chaos -- --seconds 1800`), in any topology; in the replicated one (two processes
//! of each service behind HAProxy) single replicas are also killed and paused.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::{Client, Method};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{Broker, RedisServer, Stack, Topology, SERVICES};
use platform::credential::SignedClient;

pub struct Options {
    pub seed: u64,
    /// How long clients send requests (faults included); healing and draining come after.
    pub duration: Duration,
    pub workers: usize,
    pub customers: usize,
    pub accounts: usize,
    /// The business day moves on this often.
    pub day_every: Duration,
    /// A fault starts this often (none when zero).
    pub fault_every: Duration,
    pub history: PathBuf,
    /// How the services run; `Replicated` adds single replicas killed and paused to the faults.
    pub topology: Topology,
    /// Faults of the rotation (kill, pause, database, broker, Redis, any) injected at the least,
    /// even past `duration` on a slow machine (the short form's promise of every kind twice).
    pub min_faults: usize,
}

pub struct Outcome {
    /// The checker's JSON report.
    pub report: Value,
    pub passed: bool,
}

/// Where a worker's requests go: the services' base URLs and a client whose timeout is short
/// enough that a paused service yields "unknown" answers, as a mobile client's would.
#[derive(Clone)]
struct Target {
    http: SignedClient,
    urls: std::collections::HashMap<&'static str, String>,
    history: Arc<History>,
    today: Arc<Mutex<NaiveDate>>,
    customers: Arc<Vec<Uuid>>,
    accounts: Arc<Vec<(Uuid, Uuid, &'static str)>>,
}

struct History {
    file: Mutex<std::fs::File>,
    start: Instant,
}

impl History {
    /// Seconds since the workload started, as the history's `t` and `sent` say.
    fn now(&self) -> f64 {
        (self.start.elapsed().as_millis() as f64) / 1000.0
    }

    /// The wall clock (seconds since the epoch), comparable with the databases' timestamps.
    fn wall() -> f64 {
        chrono::Utc::now().timestamp_micros() as f64 / 1e6
    }

    fn record(&self, mut entry: Value) {
        entry["t"] = json!((self.start.elapsed().as_millis() as f64) / 1000.0);
        entry["at"] = json!(Self::wall());
        if let Ok(mut f) = self.file.lock() {
            use std::io::Write;
            let _ = writeln!(f, "{entry}");
        }
    }
}

/// One request's final answer after retries under the same key.
struct Answer {
    outcome: &'static str,
    status: u16,
    body: Value,
}

impl Target {
    async fn send(&self, svc: &str, method: Method, path: &str, body: Option<&Value>, key: Option<&str>) -> Answer {
        let mut last = Answer { outcome: "unknown", status: 0, body: Value::Null };
        for attempt in 0..3 {
            let mut req = self.http.request(method.clone(), format!("{}{}", self.urls[svc], path));
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            req = match body {
                Some(b) => req.json(b),
                None if method == Method::POST => req.header("content-type", "application/json"),
                None => req,
            };
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body: Value = resp.json().await.unwrap_or(Value::Null);
                    let busy = body["code"] == "PAYOUT_IN_PROGRESS";
                    if status < 300 {
                        return Answer { outcome: "ok", status, body };
                    }
                    if status < 500 && !busy {
                        return Answer { outcome: "refused", status, body };
                    }
                    last = Answer { outcome: "unknown", status, body };
                }
                Err(e) => last = Answer { outcome: "unknown", status: 0, body: json!({ "error": e.to_string() }) },
            }
            if key.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
        }
        last
    }

    fn today(&self) -> NaiveDate {
        *self.today.lock().unwrap()
    }

    /// A money-moving or payout request with its key, recorded with its answer (`sent`: when it
    /// was first sent; `t`: when its answer came).
    async fn keyed(&self, op: &str, svc: &str, path: &str, body: Option<Value>, extra: Value) {
        let key = Uuid::new_v4().to_string();
        let (sent, sent_at) = (self.history.now(), History::wall());
        let a = self.send(svc, Method::POST, path, body.as_ref(), Some(&key)).await;
        self.history.record(json!({
            "op": op, "key": key, "path": path, "request": body, "extra": extra, "outcome": a.outcome,
            "status": a.status, "code": a.body["code"], "body": a.body, "business_date": self.today(), "sent": sent,
            "sent_at": sent_at,
        }));
    }

    async fn plain(&self, op: &str, svc: &str, method: Method, path: &str, body: Option<Value>) {
        let (sent, sent_at) = (self.history.now(), History::wall());
        let a = self.send(svc, method, path, body.as_ref(), None).await;
        self.history.record(json!({
            "op": op, "path": path, "request": body, "outcome": a.outcome, "status": a.status,
            "code": a.body["code"], "business_date": self.today(), "sent": sent, "sent_at": sent_at,
        }));
    }

    /// A withdrawal hold, dormancy or a customer's restriction racing withdrawals and transfers
    /// out: one sent as the change is, one after it was answered (the checker's
    /// `no_movement_after_answered_change`: this one must be refused), then the change lifted.
    async fn race_a_change(&self, rng: &mut StdRng, account: Uuid, customer: Uuid) {
        let (to, _, _) = self.accounts[rng.gen_range(0..self.accounts.len())];
        let (op, svc, path, on, off) = match rng.gen_range(0..3) {
            0 => (
                "holds",
                "account-info",
                format!("/v1/accounts/{account}/holds"),
                json!({"deposit_suspended": false, "withdrawal_suspended": true}),
                json!({"deposit_suspended": false, "withdrawal_suspended": false}),
            ),
            1 => (
                "account_status",
                "account-info",
                format!("/v1/accounts/{account}/status"),
                json!({"status": "DORMANT"}),
                json!({"status": "ACTIVE"}),
            ),
            _ => (
                "customer_status",
                "customer",
                format!("/v1/customers/{customer}/status"),
                json!({"status": "IDENTITY_THEFT", "reason": "chaos race"}),
                json!({"status": "ACTIVE"}),
            ),
        };
        let withdrawals = format!("/v1/ledger/accounts/{account}/withdrawals");
        let withdrawal = |amount: i64| {
            let body = Some(json!({ "amount": amount }));
            self.keyed("withdraw", "accounting", &withdrawals, body, json!({"account_id": account}))
        };
        let transfer = |amount: i64| {
            let body = json!({ "from_account_id": account, "to_account_id": to, "amount": amount });
            self.keyed("transfer", "accounting", "/v1/ledger/transfers", Some(body), json!({}))
        };
        // Movements queue on the account's row while the change is made and answered.
        let change = self.plain(op, svc, Method::PUT, &path, Some(on));
        let (w1, w2, w3, t1) =
            (rng.gen_range(1..50_000), rng.gen_range(1..50_000), rng.gen_range(1..50_000), rng.gen_range(1..50_000));
        tokio::join!(change, withdrawal(w1), withdrawal(w2), transfer(t1), withdrawal(w3));
        tokio::join!(withdrawal(rng.gen_range(1..50_000)), transfer(rng.gen_range(1..50_000)));
        self.plain(op, svc, Method::PUT, &path, Some(off)).await;
    }

    /// One randomly chosen client operation.
    async fn step(&self, rng: &mut StdRng) {
        let (account, customer, product) = self.accounts[rng.gen_range(0..self.accounts.len())];
        let roll = rng.gen_range(0..100);
        match roll {
            0..=29 => {
                self.keyed(
                    "pay",
                    "interest",
                    &format!("/v1/interest/accounts/{account}/payouts"),
                    None,
                    json!({"account_id": account}),
                )
                .await
            }
            30..=54 => {
                let amount = rng.gen_range(1..5_000_000i64);
                let back = rng.gen_bool(0.25).then(|| self.today() - chrono::Duration::days(rng.gen_range(1..6)));
                let body = json!({ "amount": amount, "value_date": back });
                self.keyed(
                    "deposit",
                    "accounting",
                    &format!("/v1/ledger/accounts/{account}/deposits"),
                    Some(body),
                    json!({"account_id": account}),
                )
                .await
            }
            55..=66 => {
                let body = json!({ "amount": rng.gen_range(1..3_000_000i64) });
                self.keyed(
                    "withdraw",
                    "accounting",
                    &format!("/v1/ledger/accounts/{account}/withdrawals"),
                    Some(body),
                    json!({"account_id": account}),
                )
                .await
            }
            67..=78 => {
                let (to, _, _) = self.accounts[rng.gen_range(0..self.accounts.len())];
                let body = json!({ "from_account_id": account, "to_account_id": to, "amount": rng.gen_range(1..2_000_000i64) });
                self.keyed("transfer", "accounting", "/v1/ledger/transfers", Some(body), json!({})).await
            }
            79..=83 => {
                let body =
                    json!({ "deposit_suspended": rng.gen_bool(0.15), "withdrawal_suspended": rng.gen_bool(0.15) });
                self.plain("holds", "account-info", Method::PUT, &format!("/v1/accounts/{account}/holds"), Some(body))
                    .await
            }
            84..=86 => {
                let status = if rng.gen_bool(0.2) { "DORMANT" } else { "ACTIVE" };
                self.plain(
                    "account_status",
                    "account-info",
                    Method::PUT,
                    &format!("/v1/accounts/{account}/status"),
                    Some(json!({"status": status})),
                )
                .await
            }
            87..=89 => {
                let customer = self.customers[rng.gen_range(0..self.customers.len())];
                let body = if rng.gen_bool(0.25) {
                    json!({"status": "HACKING_VICTIM", "reason": "chaos"})
                } else {
                    json!({"status": "ACTIVE"})
                };
                self.plain(
                    "customer_status",
                    "customer",
                    Method::PUT,
                    &format!("/v1/customers/{customer}/status"),
                    Some(body),
                )
                .await
            }
            90..=91 => {
                let from = self.today() + chrono::Duration::days(rng.gen_range(1..3));
                let rate = format!("{}.{}", rng.gen_range(1..5), rng.gen_range(0..100));
                let body = json!({ "effective_from": from, "bands": [{"from": 0, "to": 20_000_000, "rate": rate}, {"from": 20_000_000, "rate": "0.5"}] });
                self.plain(
                    "rate_schedule",
                    "interest",
                    Method::POST,
                    &format!("/v1/interest/products/{product}/rate-schedules"),
                    Some(body),
                )
                .await
            }
            92..=94 => self.race_a_change(rng, account, customer).await,
            _ => {
                self.plain("estimate", "interest", Method::GET, &format!("/v1/interest/accounts/{account}"), None).await
            }
        }
    }

    /// Sets the shared manual clock through whichever service answers.
    async fn set_day(&self, day: NaiveDate) -> bool {
        for svc in ["interest", "accounting", "customer", "account-info", "tax-consumer"] {
            let a = self.send(svc, Method::PUT, "/v1/admin/clock", Some(&json!({ "today": day })), None).await;
            if a.outcome == "ok" {
                *self.today.lock().unwrap() = day;
                return true;
            }
        }
        false
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Kill(&'static str),
    /// One replica of a service killed (-9) and restarted; the others keep serving.
    KillReplica(&'static str, usize),
    /// One replica of a service stopped (SIGSTOP) past the payout lock lease, then continued.
    PauseReplica(&'static str, usize),
    Pause,
    Database(&'static str),
    /// The whole PostgreSQL server restarted (`CHAOS_POSTGRES_RESTART`, a shell command).
    Postgres,
    Broker,
    Redis,
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Kill(s) => format!("kill -9 {s}"),
            Fault::KillReplica(s, i) => format!("kill -9 {s} replica {i}"),
            Fault::PauseReplica(s, i) => format!("SIGSTOP {s} replica {i} past the lock lease"),
            Fault::Pause => "SIGSTOP interest past its lock lease".into(),
            Fault::Database(s) => format!("database connections of {s} dropped"),
            Fault::Postgres => "PostgreSQL restarted".into(),
            Fault::Broker => "kill -9 broker".into(),
            Fault::Redis => "Redis stopped (restarts empty)".into(),
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill_service",
            Fault::KillReplica(..) => "kill_replica",
            Fault::PauseReplica(..) => "pause_replica",
            Fault::Pause => "pause_past_lease",
            Fault::Database(_) => "database_connections_dropped",
            Fault::Postgres => "postgres_restarted",
            Fault::Broker => "broker_killed",
            Fault::Redis => "redis_restarted_empty",
        }
    }
}

const LOCK_LEASE_MS: u64 = 2_000;

/// Runs the workload and the faults, heals, drains, and runs the checker.
pub async fn run(opts: Options) -> Outcome {
    let mut redis = RedisServer::start().await;
    let mut broker = Broker::start().await;
    let lease = LOCK_LEASE_MS.to_string();
    let mut stack = Stack::start_in(
        opts.topology,
        &[("REDIS_URL", &redis.url()), ("KAFKA_BROKERS", &broker.address()), ("PAYOUT_LOCK_LEASE_MS", &lease)],
        false,
    )
    .await;
    let history =
        Arc::new(History { file: Mutex::new(std::fs::File::create(&opts.history).unwrap()), start: Instant::now() });
    let mut rng = StdRng::seed_from_u64(opts.seed);
    history.record(json!({ "setup": { "seed": opts.seed, "run": stack.run, "topology": opts.topology.name() } }));

    // Products, customers, accounts and their opening deposits, before any fault.
    let start_day = crate::date("2024-01-01");
    stack.set_today("2024-01-01").await;
    stack
        .product(
            "CHAOS_TIERED",
            json!([{"from": 0, "to": 10_000_000, "rate": "2.0"}, {"from": 10_000_000, "rate": "3.5"}]),
            "2023-01-01",
        )
        .await;
    stack.product("CHAOS_FLAT", json!([{"from": 0, "rate": "1.5"}]), "2023-01-01").await;
    let categories = ["GENERAL", "PREFERENTIAL", "TAX_FREE"];
    let mut customers = Vec::new();
    for i in 0..opts.customers {
        customers.push(stack.customer(categories[i % categories.len()]).await);
    }
    let mut accounts = Vec::new();
    for i in 0..opts.accounts {
        let product = if i % 2 == 0 { "CHAOS_TIERED" } else { "CHAOS_FLAT" };
        let customer = customers[i % customers.len()];
        accounts.push((stack.account(customer, product).await, customer, product));
    }
    let target = Target {
        http: {
            let http = SignedClient::new(
                Client::builder().timeout(Duration::from_secs(4)).build().unwrap(),
                stack.http.signer().clone(),
            );
            for (svc, url) in &stack.urls {
                http.serve(url, svc);
            }
            http
        },
        urls: stack.urls.clone(),
        history: history.clone(),
        today: Arc::new(Mutex::new(start_day)),
        customers: Arc::new(customers),
        accounts: Arc::new(accounts.clone()),
    };
    for (account, _, _) in &accounts {
        let body = json!({ "amount": rng.gen_range(1_000_000..40_000_000i64) });
        target
            .keyed(
                "deposit",
                "accounting",
                &format!("/v1/ledger/accounts/{account}/deposits"),
                Some(body),
                json!({"account_id": account}),
            )
            .await;
    }
    target.set_day(start_day + chrono::Duration::days(3)).await;

    // Clients and the day keeper run until told to stop; faults run here, on the stack.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..opts.workers {
        let (t, stop) = (target.clone(), stop.clone());
        let mut rng = StdRng::seed_from_u64(opts.seed.wrapping_add(1 + w as u64));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                t.step(&mut rng).await;
            }
        }));
    }
    let day_keeper = {
        let (t, stop, every) = (target.clone(), stop.clone(), opts.day_every);
        tokio::spawn(async move {
            let mut next = Instant::now() + every;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if Instant::now() < next {
                    continue;
                }
                let day = t.today() + chrono::Duration::days(1);
                if t.set_day(day).await {
                    t.history.record(json!({ "day": day }));
                    t.plain("payout_run", "interest", Method::POST, "/v1/interest/payout-runs", Some(json!({}))).await;
                    next = Instant::now() + every;
                }
            }
        })
    };
    let faults = [
        Fault::Kill("interest"),
        Fault::Kill("accounting"),
        Fault::Kill("tax-consumer"),
        Fault::Kill("account-info"),
        Fault::Kill("customer"),
        Fault::Pause,
        Fault::Database("accounting"),
        Fault::Database("interest"),
        Fault::Broker,
        Fault::Redis,
    ];
    let restart_postgres = std::env::var("CHAOS_POSTGRES_RESTART").ok().filter(|c| !c.trim().is_empty());
    let deadline = Instant::now() + opts.duration;
    let mut round = 0usize;
    // Replicas add a fault every fourth round: one replica killed or (in turn) paused past the lock
    // lease — interest's half the time, its payout lock's holder frozen while the other pays. They
    // draw from a generator of their own, so the other faults come in the same order, with the
    // same targets and timings, as in the other topologies.
    let mut replica_rng = StdRng::seed_from_u64(opts.seed ^ 0x7265_706c_6963_6173);
    let (mut turn, mut replica_turn) = (0usize, 0usize);
    // The load runs until the deadline and, however slow the machine, until `min_faults` of the
    // rotation below have been injected (so a short run meets each kind as often as it promises).
    let more = |turn: usize| Instant::now() < deadline || (!opts.fault_every.is_zero() && turn < opts.min_faults);
    while more(turn) {
        if opts.fault_every.is_zero() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(if turn < opts.min_faults { opts.fault_every } else { opts.fault_every.min(left) }).await;
        if !more(turn) {
            break;
        }
        let (fault, hold) = if opts.topology == Topology::Replicated && round % 4 == 3 {
            let r = &mut replica_rng;
            let svc = if replica_turn % 2 == 1 && r.gen_bool(0.5) {
                "interest"
            } else {
                SERVICES[r.gen_range(0..SERVICES.len())].0
            };
            let i = r.gen_range(0..stack.replicas(svc));
            let fault = if replica_turn % 2 == 0 { Fault::KillReplica(svc, i) } else { Fault::PauseReplica(svc, i) };
            replica_turn += 1;
            (fault, Duration::from_millis(r.gen_range(500..2_500)))
        } else {
            // Every kind in turn (so a short run meets each), the service hit and the timing at random.
            let fault = match turn % 6 {
                0 => faults[rng.gen_range(0..5)],
                1 => Fault::Pause,
                // A real restart of the server when the environment says how (deploy/test.sh does),
                // else every connection of one service's database dropped, as a restart looks to it.
                2 if restart_postgres.is_some() && rng.gen_bool(0.5) => Fault::Postgres,
                2 => faults[rng.gen_range(6..8)],
                3 => Fault::Broker,
                4 => Fault::Redis,
                _ => faults[rng.gen_range(0..faults.len())],
            };
            turn += 1;
            (fault, Duration::from_millis(rng.gen_range(500..2_500)))
        };
        round += 1;
        history.record(json!({ "fault": fault.kind(), "what": fault.name(), "phase": "start" }));
        match fault {
            Fault::Kill(svc) => {
                stack.kill(svc);
                tokio::time::sleep(hold).await;
                stack.restart_with(svc, &[]).await;
            }
            Fault::KillReplica(svc, i) => {
                stack.kill_replica(svc, i);
                tokio::time::sleep(hold).await;
                stack.restart_replica(svc, i, &[]).await;
            }
            Fault::PauseReplica(svc, i) => {
                stack.pause_replica(svc, i);
                tokio::time::sleep(Duration::from_millis(LOCK_LEASE_MS + 1_000)).await;
                stack.resume_replica(svc, i);
            }
            Fault::Pause => {
                stack.pause("interest");
                tokio::time::sleep(Duration::from_millis(LOCK_LEASE_MS + 1_000)).await;
                stack.resume("interest");
            }
            Fault::Database(svc) => stack.drop_database_connections(svc).await,
            Fault::Postgres => {
                if let Some(cmd) = &restart_postgres {
                    let _ = std::process::Command::new("sh").args(["-c", cmd]).status();
                }
            }
            Fault::Broker => {
                broker.kill();
                tokio::time::sleep(hold).await;
                broker.restart().await;
            }
            Fault::Redis => {
                redis.stop();
                tokio::time::sleep(hold).await;
                redis.restart().await;
                // The manual clock lived in Redis: the day keeper's day is the truth.
                target.set_day(target.today()).await;
            }
        }
        history.record(json!({ "fault": fault.kind(), "what": fault.name(), "phase": "healed" }));
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let _ = day_keeper.await;

    // Heal: every process up; then resolve each unknown answer by asking again with its key.
    for (svc, _) in SERVICES {
        if !stack.is_running(svc) {
            stack.restart_with(svc, &[]).await;
        }
    }
    target.set_day(target.today()).await;
    resolve_unknowns(&target, &opts.history).await;
    drain(&stack).await;

    let mut args: Vec<String> = vec![
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/checker/check.py").into(),
        "--history".into(),
        opts.history.display().to_string(),
    ];
    for (svc, url) in stack.database_urls() {
        args.push("--db".into());
        args.push(format!("{svc}={url}"));
    }
    let out = std::process::Command::new("python3").args(&args).output().expect("python3 on PATH");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| json!({ "checker_failed": String::from_utf8_lossy(&out.stderr).to_string() }));
    let passed = out.status.success();
    stack.shutdown().await;
    drop(broker);
    drop(redis);
    Outcome { report, passed }
}

/// Sends each request whose answer was unknown again, with its key and body, until it has one.
async fn resolve_unknowns(target: &Target, history: &PathBuf) {
    let text = std::fs::read_to_string(history).unwrap_or_default();
    let unknown: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|h| h["outcome"] == "unknown" && h["key"].is_string())
        .collect();
    for h in unknown {
        let (svc, path) = match h["op"].as_str() {
            Some("pay") => ("interest", h["path"].as_str().unwrap_or_default()),
            _ => ("accounting", h["path"].as_str().unwrap_or_default()),
        };
        let body = (!h["request"].is_null()).then(|| h["request"].clone());
        let key = h["key"].as_str().unwrap_or_default();
        for _ in 0..20 {
            let a = target.send(svc, Method::POST, path, body.as_ref(), Some(key)).await;
            if a.outcome != "unknown" {
                target.history.record(json!({
                    "op": h["op"], "key": key, "path": path, "request": body, "outcome": a.outcome, "status": a.status,
                    "code": a.body["code"], "body": a.body, "business_date": target.today(), "resolves": true,
                    "sent": h["sent"],
                }));
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Waits until every payout's tax event is published and recorded, and no run is running.
async fn drain(stack: &Stack) {
    for _ in 0..240 {
        let unpublished =
            stack.count("interest", "SELECT count(*) FROM payouts WHERE tax_event_published_at IS NULL").await;
        let payouts = stack.count("interest", "SELECT count(*) FROM payouts").await;
        let recorded = stack.count("tax-consumer", "SELECT count(*) FROM withholdings").await;
        let running = stack.count("interest", "SELECT count(*) FROM payout_runs WHERE state = 'RUNNING'").await;
        if unpublished == 0 && recorded >= payouts && running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
