//! The Kubernetes manifests (deploy/k8s), checked offline: each overlay renders (`$KUSTOMIZE
//! build`, else `kubectl kustomize`), every rendered object passes a strict schema validation for Kubernetes 1.31
//! (`kubernetes-validate`, PyPI; deploy/test.sh installs it), every Deployment has its probes,
//! limits, hardened security context, disruption budget and migration Job, the network policies let
//! only the gateway be reached from outside, the Ingress serves HTTPS only, no production secret
//! value is committed, no key comes from the repository (the local overlay's are made by its
//! generate.sh, here into a copy of the tree), every Deployment signs with its own key and reads
//! Redis's URL from a Secret, and each Deployment runs with the same variables and port as its
//! docker-compose service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine;

use serde::Deserialize;
use serde_yaml::Value;

const K8S_VERSION: &str = "1.31";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

const DEPLOYMENTS: [&str; 6] = ["gateway", "customer", "account-info", "accounting", "interest", "tax-consumer"];

/// The local overlay, ready to render: deploy/k8s copied (without any `generated/` of the working
/// tree's) into a scratch folder, where the overlay's generate.sh makes its keys, as an operator
/// runs it before `kubectl apply -k`. Once per test process.
fn local_overlay() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let copy = std::env::temp_dir().join(format!("k8s-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&copy);
        // deploy/k8s and the key-making functions its script sources (deploy/keys.sh).
        copy_tree(&root().join("deploy/k8s"), &copy.join("k8s"));
        std::fs::copy(root().join("deploy/keys.sh"), copy.join("keys.sh")).unwrap();
        let overlay = copy.join("k8s/overlays/local");
        let generate = || {
            // bankctl as built for this workspace (deploy/test.sh builds the binaries first), unless
            // BANKCTL names another.
            let bankctl = std::env::var("BANKCTL").unwrap_or_else(|_| e2e::binary("bankctl").display().to_string());
            let out = Command::new("bash")
                .arg(overlay.join("generate.sh"))
                .env("BANKCTL", &bankctl)
                .output()
                .expect("bash runs generate.sh");
            assert!(
                out.status.success(),
                "the local overlay's generate.sh failed (BANKCTL={bankctl}; build it with `cargo build -p bankctl`):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        generate();
        let keys = generated_files(&overlay.join("generated"));
        generate();
        assert_eq!(generated_files(&overlay.join("generated")), keys, "generate.sh run again changed the keys");
        overlay
    })
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (name, path) = (entry.file_name(), entry.path());
        if path.is_dir() {
            if name != "generated" {
                copy_tree(&path, &to.join(&name));
            }
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

/// Every file under `dir` (relative name → contents).
fn generated_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// Renders an overlay with `$KUSTOMIZE build` (deploy/test.sh builds a pinned kustomize and sets
/// it), else with `kubectl kustomize` (`$KUBECTL`, default `kubectl`); never skipped.
fn render(overlay: &str) -> (PathBuf, Vec<Value>) {
    let dir = match overlay {
        "local" => local_overlay().to_path_buf(),
        _ => root().join("deploy/k8s/overlays").join(overlay),
    };
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
        check_ingress(overlay, &docs);
        check_credentials(overlay, &docs);
        check_no_key_from_the_repository(overlay, &docs);
        let secrets = of_kind(&docs, "Secret");
        if overlay == "production" {
            assert!(
                secrets.is_empty(),
                "production commits secret values: {:?}",
                secrets.iter().map(|s| name(s)).collect::<Vec<_>>()
            );
        } else {
            assert_eq!(secrets.len(), 4, "local makes its development secrets");
            check_local_keys(&docs);
        }
    }
}

/// HTTPS only, for ingress-nginx: a certificate from cert-manager for every host served, and plain
/// HTTP redirected. (HSTS is the controller's setting, docs/operations.md: no annotation sets it,
/// and the snippet annotations that could are off by default and rejected as Critical.)
fn check_ingress(overlay: &str, docs: &[Value]) {
    let ingresses = of_kind(docs, "Ingress");
    assert_eq!(ingresses.len(), 1, "{overlay}: one Ingress, the gateway's");
    let ing = ingresses[0];
    let annotations = ing["metadata"]["annotations"].as_mapping().expect("the Ingress has annotations");
    let annotation = |k: &str| annotations.get(k).and_then(Value::as_str);
    assert_eq!(annotation("nginx.ingress.kubernetes.io/force-ssl-redirect"), Some("true"), "{overlay}");
    assert!(annotation("cert-manager.io/cluster-issuer").is_some_and(|i| !i.is_empty()), "{overlay}: no issuer");
    for key in annotations.keys().map(|k| k.as_str().unwrap()) {
        assert!(!key.ends_with("-snippet"), "{overlay}: {key} (snippets are off or rejected in ingress-nginx)");
    }
    assert_eq!(ing["spec"]["ingressClassName"], "nginx", "{overlay}: the annotations are ingress-nginx's");
    let tls = ing["spec"]["tls"].as_sequence().unwrap_or_else(|| panic!("{overlay}: the Ingress has no tls"));
    let mut covered = BTreeSet::new();
    for t in tls {
        assert!(t["secretName"].as_str().is_some_and(|s| !s.is_empty()), "{overlay}: tls without secretName");
        covered.extend(t["hosts"].as_sequence().unwrap().iter().map(|h| h.as_str().unwrap()));
    }
    for rule in ing["spec"]["rules"].as_sequence().unwrap() {
        let host = rule["host"].as_str().unwrap();
        assert!(covered.contains(host), "{overlay}: {host} is served without TLS");
    }
    if overlay == "production" {
        assert!(covered.contains("api.interest-bank.example"), "{overlay}: {covered:?}");
    }
}

/// The env entry `var` of a Deployment's container.
fn env<'a>(d: &'a Value, var: &str) -> Option<&'a Value> {
    d["spec"]["template"]["spec"]["containers"][0]["env"].as_sequence().unwrap().iter().find(|e| e["name"] == var)
}

/// A generated object's name is the base name and a hash (`interest-bank-redis-df24g76h24`).
fn named(reference: &Value, base: &str) -> bool {
    reference["name"].as_str().is_some_and(|n| n == base || n.strip_prefix(base).is_some_and(|h| h.starts_with('-')))
}

/// Every Deployment signs its calls with its own key and trusts the services' keys (no shared
/// token), and reads Redis's URL, which may hold its password, from a Secret.
fn check_credentials(overlay: &str, docs: &[Value]) {
    for d in of_kind(docs, "Deployment") {
        let n = name(d);
        assert!(env(d, "SERVICE_TOKEN").is_none(), "{overlay}/{n}: still has the shared SERVICE_TOKEN");
        let key = &env(d, "SERVICE_KEY").unwrap_or_else(|| panic!("{overlay}/{n}: no SERVICE_KEY"))["valueFrom"]
            ["secretKeyRef"];
        assert!(named(key, "interest-bank-service-keys"), "{overlay}/{n}: SERVICE_KEY from {key:?}");
        assert_eq!(key["key"].as_str(), Some(format!("{n}.key.pem").as_str()), "{overlay}/{n}: another's key");
        let trust = &env(d, "SERVICE_TRUST").unwrap_or_else(|| panic!("{overlay}/{n}: no SERVICE_TRUST"))["valueFrom"]
            ["configMapKeyRef"];
        assert!(named(trust, "interest-bank-service-trust"), "{overlay}/{n}: SERVICE_TRUST from {trust:?}");
        assert_eq!(trust["key"], "trust.jwks.json", "{overlay}/{n}");
        let redis =
            &env(d, "REDIS_URL").unwrap_or_else(|| panic!("{overlay}/{n}: no REDIS_URL"))["valueFrom"]["secretKeyRef"];
        assert!(
            named(redis, "interest-bank-redis") && redis["key"] == "url",
            "{overlay}/{n}: REDIS_URL from {redis:?}"
        );
    }
    for c in of_kind(docs, "ConfigMap") {
        assert!(c["data"]["REDIS_URL"].is_null(), "{overlay}: ConfigMap {} holds REDIS_URL", name(c));
    }
}

/// Every value of every Secret and ConfigMap, decoded: (object's name, key, value).
fn values(docs: &[Value]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| d["kind"] == "Secret" || d["kind"] == "ConfigMap") {
        for field in ["data", "stringData", "binaryData"] {
            for (k, v) in d[field].as_mapping().into_iter().flatten() {
                let v = v.as_str().unwrap();
                let encoded = (d["kind"] == "Secret" && field == "data") || field == "binaryData";
                let text = if encoded {
                    // Long values come wrapped over several lines.
                    let v: String = v.split_whitespace().collect();
                    let bytes = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
                    String::from_utf8_lossy(&bytes).into_owned()
                } else {
                    v.to_string()
                };
                out.push((name(d).to_string(), k.as_str().unwrap().to_string(), text));
            }
        }
    }
    out
}

/// A PEM's body without line breaks, to find it however it is wrapped.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()
}

/// The gateway's test issuer key is in the repository (services/gateway/tests/fixtures): a cluster
/// trusting it would take tokens anyone can mint. Nor the old literal service token.
fn check_no_key_from_the_repository(overlay: &str, docs: &[Value]) {
    let fixture = std::fs::read_to_string(root().join("services/gateway/tests/fixtures/test-issuer.pub.pem")).unwrap();
    let test_key = pem_body(&fixture);
    for (object, key, value) in values(docs) {
        let flat: String = value.split_whitespace().collect();
        assert!(!flat.contains(&test_key), "{overlay}: {object}/{key} holds the repository's test issuer key");
        assert!(!value.contains("local-development-service-token"), "{overlay}: {object}/{key} holds the old token");
    }
}

/// The local overlay's keys are the ones generate.sh made: the issuer's public half (its private
/// half stays out of the cluster), and exactly the six Deployments' signing keys with their trust
/// document (not legacy-core's nor the operator's).
fn check_local_keys(docs: &[Value]) {
    let generated = local_overlay().join("generated");
    let read = |p: &str| std::fs::read_to_string(generated.join(p)).unwrap();
    let all = values(docs);
    let of = |base: &str| -> BTreeMap<String, String> {
        let is = |object: &str| object == base || object.strip_prefix(base).is_some_and(|h| h.starts_with('-'));
        all.iter().filter(|(o, _, _)| is(o)).map(|(_, k, v)| (k.clone(), v.clone())).collect()
    };
    let auth = of("interest-bank-auth");
    assert_eq!(auth.keys().collect::<Vec<_>>(), ["issuer.pub.pem"]);
    assert_eq!(auth["issuer.pub.pem"], read("issuer.pub.pem"), "the cluster trusts the generated issuer");
    let keys = of("interest-bank-service-keys");
    let want: BTreeSet<String> = DEPLOYMENTS.iter().map(|d| format!("{d}.key.pem")).collect();
    assert_eq!(keys.keys().cloned().collect::<BTreeSet<_>>(), want, "the six Deployments' keys, no other");
    for (k, v) in &keys {
        assert_eq!(v, &read(&format!("service-keys/{k}")), "{k}");
    }
    let trust = of("interest-bank-service-trust");
    assert_eq!(trust.get("trust.jwks.json"), Some(&read("service-keys/trust.jwks.json")));
    for (object, key, value) in &all {
        assert!(!value.contains("PRIVATE KEY") || object.starts_with("interest-bank-service-keys"), "{object}/{key}");
    }
}

fn check_workloads(overlay: &str, docs: &[Value]) {
    let deployments = of_kind(docs, "Deployment");
    let names: BTreeSet<&str> = deployments.iter().map(|d| name(d)).collect();
    let expected: BTreeSet<&str> = DEPLOYMENTS.into();
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
    // No rule without `from` (anyone); only the gateway is reached from outside the slice, and
    // only from the ingress controller's namespace (which sets the X-Forwarded-For it trusts).
    for svc in ["gateway", "customer", "account-info", "accounting", "interest", "tax-consumer"] {
        let rules: Vec<Value> = selecting(svc)
            .iter()
            .flat_map(|p| p["spec"]["ingress"].as_sequence().cloned().unwrap_or_default())
            .collect();
        assert!(rules.iter().all(|rule| !rule["from"].is_null()), "{overlay}: {svc} reachable from anywhere");
        let from_outside = rules
            .iter()
            .flat_map(|r| r["from"].as_sequence().cloned().unwrap_or_default())
            .any(|f| f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == "ingress-nginx");
        assert_eq!(from_outside, svc == "gateway", "{overlay}: {svc} reachable from the ingress: {from_outside}");
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
        // Behind the Ingress the gateway reads the client's address from X-Forwarded-For; compose
        // publishes it directly (the TCP peer is the client).
        if n == "gateway" {
            want.insert("CLIENT_ADDRESS_FROM".into());
        }
        // The keys come from the service's generated env_file (deploy/docker/generate.sh writes
        // these two), as from a Secret and a ConfigMap here.
        if svc["env_file"].as_str() == Some(format!("./deploy/docker/generated/{n}.env").as_str()) {
            want.extend(["SERVICE_KEY".to_string(), "SERVICE_TRUST".to_string()]);
        }
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
