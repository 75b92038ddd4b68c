//! What a payout costs in SQL statements, commits, WAL flushes and HTTP calls: snapshots of
//! `pg_stat_statements` (statements per database and text), `pg_stat_database` (commits),
//! `pg_stat_wal` (WAL syncs) and every service's `peer_calls_total`, diffed around a
//! measurement and divided by the payouts made. Background work (the outbox relay, the tax
//! consumer, sweepers) lands in the same counters; it is part of a payout's cost.

use std::collections::HashMap;

use sqlx::{PgConnection, Row};

use crate::api::Api;
use crate::seed::Databases;

pub const SERVICE_DBS: [&str; 5] = ["customer", "account_info", "accounting", "interest", "tax"];

#[derive(Default, Clone)]
pub struct Snapshot {
    /// (database, statement text) → (calls, total execution ms).
    statements: HashMap<(String, String), (i64, f64)>,
    commits: HashMap<String, i64>,
    wal_syncs: i64,
    http: crate::api::HttpMetrics,
    /// False when pg_stat_statements is not loaded (shared_preload_libraries).
    has_statements: bool,
    /// CPU seconds (user + system) of this machine's processes, summed by program name.
    cpu: HashMap<String, f64>,
}

/// CPU seconds used so far by each program running now (`/proc/<pid>/stat`, utime + stime),
/// summed by name: PostgreSQL's backends under `postgres`, each service under its binary's name.
pub fn cpu_by_program() -> HashMap<String, f64> {
    // Clock ticks per second: 100 on every Linux this runs on (USER_HZ).
    const TICKS: f64 = 100.0;
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for entry in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (comm) state ppid …": comm may hold spaces, so split at its closing parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after "state".
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        *out.entry(name).or_insert(0.0) += (ticks(11) + ticks(12)) / TICKS;
    }
    out
}

pub struct Counter {
    admin: PgConnection,
    names: Vec<String>,
}

impl Counter {
    pub async fn new(dbs: &Databases) -> anyhow::Result<Self> {
        let mut admin = dbs.connect("postgres").await?;
        // Absent until infra.sh has loaded it; counts then fall back to commits only.
        let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").execute(&mut admin).await;
        Ok(Self { admin, names: SERVICE_DBS.iter().map(|d| dbs.name(d)).collect() })
    }

    /// Label of a database in the report: the service's database without the stack prefix.
    fn label(&self, db: &str) -> String {
        SERVICE_DBS.iter().zip(&self.names).find(|(_, n)| *n == db).map_or(db.to_string(), |(l, _)| l.to_string())
    }

    pub async fn snapshot(&mut self, api: &Api) -> anyhow::Result<Snapshot> {
        // Backends flush their transaction counts at most once a second.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let mut s = Snapshot::default();
        let rows = sqlx::query(
            "SELECT d.datname, s.query, sum(s.calls)::int8 AS calls, sum(s.total_exec_time)::float8 AS ms
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = ANY($1) GROUP BY 1, 2",
        )
        .bind(&self.names)
        .fetch_all(&mut self.admin)
        .await;
        if let Ok(rows) = rows {
            s.has_statements = true;
            for r in rows {
                let db: String = r.try_get("datname")?;
                let q: String = r.try_get("query")?;
                s.statements.insert((self.label(&db), q), (r.try_get("calls")?, r.try_get("ms")?));
            }
        }
        for r in sqlx::query("SELECT datname, xact_commit FROM pg_stat_database WHERE datname = ANY($1)")
            .bind(&self.names)
            .fetch_all(&mut self.admin)
            .await?
        {
            let db: String = r.try_get("datname")?;
            s.commits.insert(self.label(&db), r.try_get("xact_commit")?);
        }
        s.wal_syncs = sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal").fetch_one(&mut self.admin).await?;
        s.http = api.http_metrics().await?;
        s.cpu = cpu_by_program();
        Ok(s)
    }
}

fn verb(q: &str) -> &'static str {
    let first = q.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    match first.as_str() {
        "INSERT" | "UPDATE" | "DELETE" | "MERGE" => "DML",
        "SELECT" | "WITH" => "SELECT",
        _ => "other",
    }
}

/// Per-payout figures between two snapshots; `detail` lists each statement.
pub fn report(before: &Snapshot, after: &Snapshot, payouts: u64, detail: bool) -> Vec<String> {
    let p = payouts.max(1) as f64;
    let mut out = Vec::new();
    let mut per_db: Vec<(String, f64, f64, f64, f64)> = Vec::new();
    let mut lines: Vec<(String, f64, f64, String)> = Vec::new();
    for db in SERVICE_DBS {
        let (mut dml, mut sel, mut other) = (0.0, 0.0, 0.0);
        for ((d, q), (calls, ms)) in &after.statements {
            if d != db {
                continue;
            }
            let (c0, ms0) = before.statements.get(&(d.clone(), q.clone())).copied().unwrap_or((0, 0.0));
            let calls = (calls - c0) as f64 / p;
            if calls <= 0.0 {
                continue;
            }
            let kind = verb(q);
            match kind {
                "DML" => dml += calls,
                "SELECT" => sel += calls,
                _ => other += calls,
            }
            if calls >= 0.05 && kind != "other" {
                let mean_ms = (ms - ms0) / (calls * p);
                let text: String = q.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(90).collect();
                lines.push((db.to_string(), calls, mean_ms, text));
            }
        }
        let commits = (after.commits.get(db).unwrap_or(&0) - before.commits.get(db).unwrap_or(&0)) as f64 / p;
        per_db.push((db.to_string(), dml, sel, other, commits));
    }
    if !after.has_statements {
        out.push("  (pg_stat_statements not loaded: statement counts unavailable; run deploy/infra.sh)".into());
    }
    let total = per_db.iter().fold((0.0, 0.0, 0.0, 0.0), |t, d| (t.0 + d.1, t.1 + d.2, t.2 + d.3, t.3 + d.4));
    out.push(format!(
        "  per payout: {:.1} DML, {:.1} SELECT, {:.1} other statements (BEGIN/COMMIT/SET), {:.2} commits, \
         {:.2} WAL syncs (cluster), {:.2} calls between services",
        total.0,
        total.1,
        total.2,
        total.3,
        (after.wal_syncs - before.wal_syncs) as f64 / p,
        (after.http.peer_calls - before.http.peer_calls) / p
    ));
    for (db, dml, sel, other, commits) in &per_db {
        // Each statement is one round trip (sqlx sends no pipeline), BEGIN and COMMIT included.
        let trips = dml + sel + other;
        out.push(format!(
            "    {db:<13} {dml:>5.2} DML {sel:>5.2} SELECT {other:>5.2} other {commits:>5.2} commits {trips:>5.2} round trips"
        ));
    }
    out.push(cpu_line("payout", &before.cpu, &after.cpu, payouts));
    if detail {
        let mut routes: Vec<(String, f64, f64)> = after
            .http
            .server
            .iter()
            .filter_map(|(route, (secs, count))| {
                let (s0, c0) = before.http.server.get(route).copied().unwrap_or((0.0, 0.0));
                let n = count - c0;
                (n / p >= 0.05).then(|| (route.clone(), n / p, (secs - s0) / n * 1000.0))
            })
            .collect();
        routes.sort_by(|a, b| b.2.total_cmp(&a.2));
        out.push("    server time per request (requests/payout, mean ms, service route):".into());
        for (route, per, ms) in routes {
            out.push(format!("      {per:>5.2} {ms:>7.2} ms  {route}"));
        }
        let mut stages: Vec<(String, f64, f64)> = after
            .http
            .stages
            .iter()
            .filter_map(|(stage, (secs, count))| {
                let (s0, c0) = before.http.stages.get(stage).copied().unwrap_or((0.0, 0.0));
                let n = count - c0;
                (n > 0.0).then(|| (stage.clone(), n / p, (secs - s0) / n * 1000.0))
            })
            .collect();
        stages.sort_by(|a, b| b.2.total_cmp(&a.2));
        out.push("    interest's payout stages (times/payout, mean ms, stage):".into());
        for (stage, per, ms) in stages {
            out.push(format!("      {per:>5.2} {ms:>7.3} ms  {stage}"));
        }
        lines.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        out.push("    statements per payout (calls/payout, mean ms, text):".into());
        for (db, calls, ms, text) in lines {
            out.push(format!("      {db:<12} {calls:>5.2} {ms:>6.3} ms  {text}"));
        }
    }
    out
}

/// CPU per request between two [`cpu_by_program`] readings: the total and the busiest programs.
pub fn cpu_line(what: &str, before: &HashMap<String, f64>, after: &HashMap<String, f64>, requests: u64) -> String {
    let n = requests.max(1) as f64;
    let mut cpu: Vec<(String, f64)> = after
        .iter()
        .map(|(name, secs)| (name.clone(), (secs - before.get(name).copied().unwrap_or(0.0)) * 1000.0 / n))
        .filter(|(_, ms)| *ms >= 0.001)
        .collect();
    cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = cpu.iter().map(|c| c.1).sum();
    let by: Vec<String> = cpu.iter().take(8).map(|(name, ms)| format!("{name} {ms:.3}")).collect();
    format!("  CPU ms per {what}: {total:.3} in all; {}", by.join(", "))
}
