//! The Kubernetes manifests (deploy/k8s), checked offline: each overlay renders (`$KUSTOMIZE
//! build`, else `kubectl kustomize`), every rendered object passes a strict schema validation for Kubernetes 1.31
//! (`kubernetes-validate`, PyPI; deploy/test.sh installs it), every Deployment has its probes,
//! limits, hardened security context, disruption budget and migration Job, the network policies let
//! only the gateway be reached from outside, no production secret value is committed, and each
//! Deployment runs with the same variables and port as its docker-compose service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_yaml::Value;

const K8S_VERSION: &str = "1.31";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Renders an overlay with `$KUSTOMIZE build` (deploy/test.sh builds a pinned kustomize and sets
/// it), else with `kubectl kustomize` (`$KUBECTL`, default `kubectl`); never skipped.
fn render(overlay: &str) -> (PathBuf, Vec<Value>) {
    let dir = root().join("deploy/k8s/overlays").join(overlay);
    let dir = dir.to_str().unwrap();
    let (program, args) = match std::env::var("KUSTOMIZE") {
        Ok(kustomize) if !kustomize.is_empty() => (kustomize, ["build", dir]),
        _ => (std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()), ["kustomize", dir]),
    };
    let out = Command::new(&program).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `{program} {}` to render the {overlay} overlay: {e}; set KUSTOMIZE to a kustomize \
             binary (deploy/test.sh builds one) or put kubectl on PATH",
            args[0]
        )
    });
    assert!(
        out.status.success(),
        "{overlay} does not render with `{program} {}`: {}",
        args[0],
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let file = std::env::temp_dir().join(format!("k8s-{overlay}-{}.yaml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    (file, serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect())
}

fn validate(file: &Path) -> (bool, String) {
    let validator = std::env::var("KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into());
    let out = Command::new(&validator)
        .args(["--strict", "--quiet", "-k", K8S_VERSION, file.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {validator} (deploy/test.sh installs it): {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn name(d: &Value) -> &str {
    d["metadata"]["name"].as_str().unwrap()
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let mut doc: Value = serde_yaml::from_str(&text).unwrap();
    doc.apply_merge().unwrap();
    doc
}

#[test]
fn the_validator_is_strict() {
    // A negative control: a misspelled field must fail, or passing proves nothing.
    let file = std::env::temp_dir().join(format!("k8s-bad-{}.yaml", std::process::id()));
    std::fs::write(&file, "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {prots: [{port: 80}]}\n").unwrap();
    assert!(!validate(&file).0, "kubernetes-validate accepted an unknown field");
}

#[test]
fn every_overlay_renders_and_validates() {
    for overlay in ["local", "production"] {
        let (file, docs) = render(overlay);
        let (ok, report) = validate(&file);
        assert!(ok, "{overlay} fails validation against Kubernetes {K8S_VERSION}:\n{report}");
        check_workloads(overlay, &docs);
        check_network_policies(overlay, &docs);
        let secrets = of_kind(&docs, "Secret");
        if overlay == "production" {
            assert!(
                secrets.is_empty(),
                "production commits secret values: {:?}",
                secrets.iter().map(|s| name(s)).collect::<Vec<_>>()
            );
        } else {
            assert_eq!(secrets.len(), 3, "local makes its development secrets");
        }
    }
}

fn check_workloads(overlay: &str, docs: &[Value]) {
    let deployments = of_kind(docs, "Deployment");
    let names: BTreeSet<&str> = deployments.iter().map(|d| name(d)).collect();
    let expected: BTreeSet<&str> =
        ["gateway", "customer", "account-info", "accounting", "interest", "tax-consumer"].into();
    assert_eq!(names, expected, "{overlay}");
    let pdbs = of_kind(docs, "PodDisruptionBudget");
    let hpas = of_kind(docs, "HorizontalPodAutoscaler");
    let jobs = of_kind(docs, "Job");
    for d in deployments {
        let n = name(d);
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(true), "{overlay}/{n}");
        let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
        assert!(grace >= 20, "{overlay}/{n}: {grace} s is too short to drain");
        let c = &pod["containers"][0];
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health/live", "{overlay}/{n}");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health/ready", "{overlay}/{n}");
        assert!(c["startupProbe"]["httpGet"]["path"].is_string(), "{overlay}/{n}: startup probe");
        for side in ["requests", "limits"] {
            for r in ["cpu", "memory"] {
                assert!(!c["resources"][side][r].is_null(), "{overlay}/{n}: resources.{side}.{r}");
            }
        }
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], Value::Bool(true), "{overlay}/{n}");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], Value::Bool(false), "{overlay}/{n}");
        let labels = &d["spec"]["template"]["metadata"]["labels"];
        let covers = |sel: &Value| {
            sel["matchLabels"].as_mapping().unwrap().iter().all(|(k, v)| &labels[k.as_str().unwrap()] == v)
        };
        assert!(pdbs.iter().any(|p| covers(&p["spec"]["selector"])), "{overlay}/{n}: no PodDisruptionBudget");
        if n != "tax-consumer" {
            assert!(hpas.iter().any(|h| h["spec"]["scaleTargetRef"]["name"] == n), "{overlay}/{n}: no autoscaler");
        }
        let migrate =
            jobs.iter().find(|j| name(j) == format!("{n}-migrate")).unwrap_or_else(|| panic!("{n}: no migration Job"));
        let command = &migrate["spec"]["template"]["spec"]["containers"][0]["command"];
        assert_eq!(command, &serde_yaml::to_value([format!("/usr/local/bin/{n}"), "migrate".into()]).unwrap());
    }
}

fn check_network_policies(overlay: &str, docs: &[Value]) {
    let policies = of_kind(docs, "NetworkPolicy");
    let deny = policies.iter().find(|p| p["spec"]["podSelector"].as_mapping().is_some_and(|m| m.is_empty()));
    let deny = deny.unwrap_or_else(|| panic!("{overlay}: no default-deny policy"));
    assert!(deny["spec"]["ingress"].is_null(), "{overlay}: the default policy must allow nothing");
    let selecting = |svc: &str| -> Vec<&Value> {
        policies
            .iter()
            .copied()
            .filter(|p| {
                let s = &p["spec"]["podSelector"];
                s["matchLabels"]["app.kubernetes.io/name"] == svc
                    || s["matchExpressions"]
                        .as_sequence()
                        .is_some_and(|e| e.iter().any(|x| x["values"].as_sequence().unwrap().iter().any(|v| v == svc)))
            })
            .collect()
    };
    // Only the gateway has a rule without `from` (anyone).
    for svc in ["gateway", "customer", "account-info", "accounting", "interest", "tax-consumer"] {
        let open = selecting(svc)
            .iter()
            .flat_map(|p| p["spec"]["ingress"].as_sequence().cloned().unwrap_or_default())
            .any(|rule| rule["from"].is_null());
        assert_eq!(open, svc == "gateway", "{overlay}: {svc} reachable from outside: {open}");
        assert!(!selecting(svc).is_empty(), "{overlay}: no policy lets anything reach {svc}");
    }
    for p in selecting("tax-consumer") {
        for rule in p["spec"]["ingress"].as_sequence().unwrap() {
            for from in rule["from"].as_sequence().unwrap() {
                assert_eq!(from["podSelector"]["matchLabels"]["app.kubernetes.io/name"], "gateway", "{overlay}");
            }
        }
    }
}

#[test]
fn deployments_run_as_docker_compose_does() {
    let (_, docs) = render("production");
    let compose = compose();
    for d in of_kind(&docs, "Deployment") {
        let n = name(d);
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let k8s: BTreeSet<String> =
            c["env"].as_sequence().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
        let svc = &compose["services"][n];
        let mut want: BTreeSet<String> =
            svc["environment"].as_mapping().unwrap().keys().map(|k| k.as_str().unwrap().to_string()).collect();
        // Traces go to the cluster's collector; compose runs without one.
        want.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into());
        assert_eq!(k8s, want, "{n}: the Deployment's variables differ from docker-compose's");
        let port = svc["environment"]["PORT"].as_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(port), "{n}");
        let service = of_kind(&docs, "Service").into_iter().find(|s| name(s) == n).unwrap();
        assert_eq!(service["spec"]["ports"][0]["port"].as_u64(), Some(port), "{n}");
    }
}

#[test]
fn the_topics_name_the_tax_pipeline() {
    let text = std::fs::read_to_string(root().join("deploy/k8s/strimzi/topics.yaml")).unwrap();
    let topics: Vec<Value> =
        serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect();
    let names: BTreeSet<&str> = topics.iter().map(name).collect();
    assert_eq!(names, [contracts::TAX_TOPIC, contracts::TAX_DLQ_TOPIC].into());
    for t in &topics {
        assert_eq!(t["kind"], "KafkaTopic");
        assert!(t["spec"]["config"]["retention.ms"].as_u64().unwrap() >= 7 * 24 * 3_600_000, "{}", name(t));
    }
}
