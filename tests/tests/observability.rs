//! The alert rules (deploy/prometheus/alerts.yml) and the dashboard
//! (deploy/grafana/interest-payouts.json), checked offline: every expression parses as PromQL,
//! every metric it reads is documented in docs/operations.md's metric table and emitted by the
//! code, and every alert has a severity, a summary and a runbook section that exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use promql_parser::parser::{self, Expr};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The metric names an expression selects (histogram series mapped to their family).
fn metrics_of(expr: &Expr, out: &mut BTreeSet<String>) {
    match expr {
        Expr::VectorSelector(v) => {
            let name = v.name.clone().expect("every selector names its metric");
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name);
            out.insert(family.to_string());
        }
        Expr::MatrixSelector(m) => metrics_of(&Expr::VectorSelector(m.vs.clone()), out),
        Expr::Aggregate(a) => {
            metrics_of(&a.expr, out);
            if let Some(p) = &a.param {
                metrics_of(p, out);
            }
        }
        Expr::Unary(u) => metrics_of(&u.expr, out),
        Expr::Binary(b) => {
            metrics_of(&b.lhs, out);
            metrics_of(&b.rhs, out);
        }
        Expr::Paren(p) => metrics_of(&p.expr, out),
        Expr::Subquery(s) => metrics_of(&s.expr, out),
        Expr::Call(c) => c.args.args.iter().for_each(|a| metrics_of(a, out)),
        _ => {}
    }
}

/// Every string literal in the services' and crates' code (where metric names are written).
fn code_literals() -> String {
    let mut text = String::new();
    fn walk(dir: &Path, text: &mut String) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, text);
            } else if p.extension().is_some_and(|x| x == "rs") {
                text.push_str(&std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    walk(&root().join("crates"), &mut text);
    walk(&root().join("services"), &mut text);
    text
}

fn check_metrics(what: &str, expr: &str, documented: &str, code: &str) {
    let parsed = parser::parse(expr).unwrap_or_else(|e| panic!("{what}: not PromQL: {e}\n{expr}"));
    let mut names = BTreeSet::new();
    metrics_of(&parsed, &mut names);
    assert!(!names.is_empty(), "{what}: reads no metric");
    for name in names {
        if name == "up" {
            continue; // Prometheus's own, per scrape target.
        }
        assert!(documented.contains(&format!("| `{name}` |")), "{what}: {name} is not in docs/operations.md's table");
        assert!(code.contains(&format!("\"{name}\"")), "{what}: no code emits {name}");
    }
}

#[test]
fn alert_rules_parse_and_read_documented_metrics() {
    let docs = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let code = code_literals();
    let text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let rules: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let mut alerts = BTreeSet::new();
    for group in rules["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"].as_str().unwrap();
            assert!(alerts.insert(name.to_string()), "{name} twice");
            check_metrics(name, rule["expr"].as_str().unwrap(), &docs, &code);
            assert!(
                ["page", "ticket"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
                "{name}: severity"
            );
            assert!(rule["annotations"]["summary"].is_string(), "{name}: summary");
            let runbook = rule["annotations"]["runbook"].as_str().unwrap();
            assert_eq!(runbook, format!("docs/operations.md#{}", name.to_lowercase()), "{name}");
            assert!(docs.contains(&format!("\n### {name}\n")), "{name}: no runbook section in docs/operations.md");
        }
    }
    // What an operator must watch (issue 18) has an alert.
    for must in [
        "PayoutErrorRatioHigh",
        "RequestLatencyP99High",
        "OutboxNotDraining",
        "TaxConsumerLagging",
        "DeadLettersPresent",
        "CircuitBreakerOpen",
        "PayoutRunStuck",
    ] {
        assert!(alerts.contains(must), "no {must} alert");
    }
}

#[test]
fn dashboard_panels_read_documented_metrics() {
    let docs = std::fs::read_to_string(root().join("docs/operations.md")).unwrap();
    let code = code_literals();
    let text = std::fs::read_to_string(root().join("deploy/grafana/interest-payouts.json")).unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.len() >= 8);
    let mut ids = BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "panel ids are unique");
        for t in p["targets"].as_array().unwrap() {
            check_metrics(p["title"].as_str().unwrap(), t["expr"].as_str().unwrap(), &docs, &code);
        }
    }
}
