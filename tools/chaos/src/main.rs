//! `chaos [--seconds N] [--seed S|random] [--workers N] [--accounts N] [--history FILE]
//! [--topology services|monolith|replicated]`: the fault workload of `e2e::chaos` against a stack
//! of its own (scratch databases, its own Redis and broker; the topology `TOPOLOGY` names unless
//! given: `replicated` runs two processes of each service behind HAProxy and also kills and
//! pauses single replicas), then the independent checker. Needs what the end-to-end tests need: deploy/infra.sh's
//! PostgreSQL, the binaries built (`cargo build --bins`), Apache Kafka (`KAFKA_LIBS`: the jars
//! deploy/infra.sh resolves), redis-server and python3.
//! Prints the seed (to replay) and the checker's report; exits non-zero on any violation.

use std::process::ExitCode;
use std::time::Duration;

use e2e::chaos::{run, Options};
use e2e::Topology;

fn value(it: &mut impl Iterator<Item = String>, flag: &str) -> anyhow::Result<String> {
    it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options {
        seed: rand::random(),
        duration: Duration::from_secs(1800),
        workers: 6,
        customers: 12,
        accounts: 40,
        day_every: Duration::from_secs(10),
        fault_every: Duration::from_secs(8),
        history: "chaos-history.jsonl".into(),
        min_faults: 0,
        topology: Topology::from_env(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seconds" => o.duration = Duration::from_secs(value(&mut it, &flag)?.parse()?),
            "--seed" => {
                let v = value(&mut it, &flag)?;
                o.seed = if v == "random" { rand::random() } else { v.parse()? };
            }
            "--workers" => o.workers = value(&mut it, &flag)?.parse()?,
            "--accounts" => o.accounts = value(&mut it, &flag)?.parse()?,
            "--history" => o.history = value(&mut it, &flag)?.into(),
            "--topology" => {
                let v = value(&mut it, &flag)?;
                o.topology = Topology::parse(&v)
                    .ok_or_else(|| anyhow::anyhow!("--topology is services, monolith or replicated, not {v}"))?;
            }
            "--day-seconds" => o.day_every = Duration::from_secs(value(&mut it, &flag)?.parse()?),
            "--fault-seconds" => o.fault_every = Duration::from_secs(value(&mut it, &flag)?.parse()?),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("chaos: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "chaos: seed {} for {} s on the {} topology, history in {} (replay: --seed {} --topology {})",
        opts.seed,
        opts.duration.as_secs(),
        opts.topology.name(),
        opts.history.display(),
        opts.seed,
        opts.topology.name()
    );
    let outcome = run(opts).await;
    println!("{}", serde_json::to_string_pretty(&outcome.report).unwrap_or_default());
    if outcome.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
