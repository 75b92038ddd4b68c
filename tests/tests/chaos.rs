//! The fault workload's short form (issue 19): a fixed seed, about a minute and a half of clients
//! with faults of every kind several times, then the independent checker over the five databases
//! and the history. Zero violations, or the test fails with the checker's report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::chaos::{run, Options};

#[tokio::test(flavor = "multi_thread")]
async fn the_slice_keeps_its_promises_through_faults() {
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("chaos-short-20261123.jsonl");
    let topology = e2e::Topology::from_env();
    let outcome = run(Options {
        seed: 20261123,
        duration: Duration::from_secs(90),
        workers: 4,
        customers: 6,
        accounts: 16,
        day_every: Duration::from_secs(6),
        fault_every: Duration::from_secs(4),
        history: history.clone(),
        // Two rounds of the six-fault rotation: every kind at least twice.
        min_faults: 12,
        topology,
    })
    .await;
    let report = serde_json::to_string_pretty(&outcome.report).unwrap();
    println!("{report}");
    assert!(outcome.passed, "the checker found violations (history in {}):\n{report}", history.display());
    // The run did what it claims: every kind of fault, and payouts acknowledged through them. With
    // replicas, one round in four kills or pauses a single replica instead: every kind at least once.
    let faults = outcome.report["faults"].as_object().unwrap();
    let mut kinds = vec![
        "kill_service",
        "pause_past_lease",
        "database_connections_dropped",
        "broker_killed",
        "redis_restarted_empty",
    ];
    let mut at_least = 2;
    if topology == e2e::Topology::Replicated {
        kinds.extend(["kill_replica", "pause_replica"]);
        at_least = 1;
    }
    for kind in kinds {
        let n = faults.get(kind).and_then(|n| n.as_u64()).unwrap_or(0);
        assert!(n >= at_least, "{kind} injected too rarely: {faults:?}");
    }
    assert!(outcome.report["operations"]["pay"]["ok"].as_u64().unwrap_or(0) >= 10, "{report}");
    assert!(outcome.report["payouts"].as_u64().unwrap_or(0) >= 10, "{report}");
    // Holds, dormancy and restrictions raced withdrawals and transfers, and the checker judged
    // movements sent after such a change was answered.
    let judged = outcome.report["invariants_checked"]["no_movement_after_answered_change"].as_u64().unwrap_or(0);
    assert!(judged >= 5, "too few movements after an answered change to judge: {report}");
}
