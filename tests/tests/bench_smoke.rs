//! Issue 7: the bench's `--quick` mode runs every scenario against a fresh stack — seeding straight
//! into its databases, pgbench baseline, statement counts, payout run, tax pipeline — as a smoke
//! check. No figure is asserted (CI machines differ); the bench must finish, report every section
//! and count no errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use e2e::{binary, database_base, kafka_brokers, Stack};

#[tokio::test(flavor = "multi_thread")]
async fn bench_quick_runs_every_scenario() {
    let stack = Stack::start().await;
    stack.set_today("2024-06-01").await;
    let out = tokio::task::spawn_blocking({
        let urls = stack.urls.clone();
        let (prefix, topics) = (format!("{}_", stack.run), stack.topic_prefix.clone());
        let ops = stack.ops_env();
        move || {
            Command::new(binary("bench"))
                .arg("--quick")
                .env("CUSTOMER_URL", &urls["customer"])
                .env("ACCOUNT_INFO_URL", &urls["account-info"])
                .env("ACCOUNTING_URL", &urls["accounting"])
                .env("INTEREST_URL", &urls["interest"])
                .env("TAX_URL", &urls["tax-consumer"])
                .env("KAFKA_BROKERS", kafka_brokers())
                .env("KAFKA_TOPIC_PREFIX", topics)
                .env("DATABASE_URL_BASE", database_base())
                .env("DATABASE_NAME_PREFIX", prefix)
                .envs(ops)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    let progress = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "bench --quick failed:\n{progress}");
    println!("{report}");
    for section in ["## estimate", "## payout", "pgbench baseline", "per payout:", "## payout run", "## tax pipeline"] {
        assert!(report.contains(section), "no {section:?} in the report:\n{report}");
    }
    assert!(report.contains("# bench report — no errors"), "the bench counted errors:\n{report}");
    // The run paid through the public path: the ledger agrees with the interest service.
    stack.assert_ledger_consistent().await;
    stack.shutdown().await;
}
