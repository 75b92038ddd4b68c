//! docker-compose.yml cannot run here (no Docker engine), so this checks what can be checked: it
//! parses, it runs the five services from one Dockerfile, and every variable it sets for a
//! service is one that service's code (or the shared platform and peers crates) actually reads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;

/// Upper-case string literals passed straight to a call: `var("KAFKA_BROKERS", …)`.
fn env_names_in(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            env_names_in(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for piece in text.split("(\"").skip(1) {
                if let Some(name) = piece.split('"').next() {
                    if name.len() > 2 && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    {
                        out.insert(name.to_string());
                    }
                }
            }
        }
    }
}

#[test]
fn compose_sets_only_variables_the_services_read() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("docker-compose.yml parses");
    doc.apply_merge().unwrap();
    let services = doc["services"].as_mapping().unwrap();
    for infra in ["postgres", "redis", "kafka"] {
        assert!(services.contains_key(infra), "{infra} missing");
    }
    assert!(doc["services"]["kafka"]["image"].as_str().unwrap().starts_with("apache/kafka"));
    let mut platform = BTreeSet::new();
    env_names_in(&root.join("crates/platform/src"), &mut platform);
    for svc in ["customer", "account-info", "accounting", "interest", "tax-consumer", "gateway", "legacy-core"] {
        let s = &doc["services"][svc];
        assert_eq!(
            s["build"]["dockerfile"].as_str(),
            Some("deploy/docker/Dockerfile"),
            "{svc} builds from the one Dockerfile"
        );
        assert_eq!(s["build"]["args"]["SERVICE"].as_str(), Some(svc));
        let mut read = platform.clone();
        env_names_in(&root.join("services").join(svc).join("src"), &mut read);
        if !["tax-consumer", "gateway", "legacy-core"].contains(&svc) {
            // The peers' addresses are read where the HTTP peers are built.
            env_names_in(&root.join("crates/peers/src"), &mut read);
        }
        let env = s["environment"].as_mapping().unwrap_or_else(|| panic!("{svc} has environment"));
        let set: BTreeSet<String> = env.keys().map(|k| k.as_str().unwrap().to_string()).collect();
        for name in &set {
            assert!(
                read.contains(name),
                "{svc}: compose sets {name}, which the service never reads (it reads {read:?})"
            );
        }
        for required in ["DATABASE_URL", "PORT"] {
            assert!(set.contains(required), "{svc}: {required} not set");
        }
        keys_from_the_generated_env_file(svc, s, &set);
        // Only the gateway is published; the services listen for the compose network alone.
        assert_eq!(s["ports"].is_null(), svc != "gateway", "{svc}: published ports {:?}", s["ports"]);
        let db = env.get("DATABASE_URL").unwrap().as_str().unwrap();
        assert!(db.contains("@postgres:5432/"), "{svc}: database on the compose postgres");
    }
    assert!(root.join("deploy/docker/Dockerfile").exists());
    bank_sets_each_service_its_own_variables(root, &doc, &platform);
}

/// The one-process service (`bank`, profile `monolith`) reads each service's settings under its
/// prefix first, then the shared name: everything it sets is one or the other, and each service
/// gets its own port and database.
fn bank_sets_each_service_its_own_variables(root: &Path, doc: &serde_yaml::Value, platform: &BTreeSet<String>) {
    let bank = &doc["services"]["bank"];
    assert_eq!(bank["build"]["args"]["SERVICE"].as_str(), Some("bank"));
    assert_eq!(bank["profiles"][0].as_str(), Some("monolith"), "bank runs only when asked for");
    assert!(bank["ports"].is_null(), "bank publishes {:?}", bank["ports"]);
    let env = bank["environment"].as_mapping().expect("bank has environment");
    let set: BTreeSet<String> = env.keys().map(|k| k.as_str().unwrap().to_string()).collect();
    keys_from_the_generated_env_file("bank", bank, &set);
    let mut shared = platform.clone();
    let mut own = Vec::new();
    for svc in ["customer", "account-info", "accounting", "interest", "tax-consumer"] {
        let prefix = format!("{}_", svc.to_ascii_uppercase().replace('-', "_"));
        let mut read = platform.clone();
        env_names_in(&root.join("services").join(svc).join("src"), &mut read);
        for required in ["PORT", "DATABASE_URL"] {
            assert!(set.contains(&format!("{prefix}{required}")), "bank: {prefix}{required} not set");
        }
        shared.extend(read.iter().cloned());
        own.push((prefix, read));
    }
    for name in &set {
        let prefixed = own.iter().any(|(p, read)| name.strip_prefix(p.as_str()).is_some_and(|n| read.contains(n)));
        assert!(prefixed || shared.contains(name), "bank: sets {name}, which no service reads");
    }
}

/// No key or shared token is written in the compose file: each service reads its signing key and
/// the services' public keys from its own env_file, which deploy/docker/generate.sh makes on the
/// machine (git-ignored).
fn keys_from_the_generated_env_file(svc: &str, s: &serde_yaml::Value, set: &BTreeSet<String>) {
    assert_eq!(
        s["env_file"].as_str(),
        Some(format!("./deploy/docker/generated/{svc}.env").as_str()),
        "{svc}: its keys come from its generated env_file"
    );
    for secret in ["SERVICE_TOKEN", "SERVICE_KEY", "SERVICE_TRUST"] {
        assert!(!set.contains(secret), "{svc}: {secret} written in docker-compose.yml");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let script = std::fs::read_to_string(root.join("deploy/docker/generate.sh")).unwrap();
    let ignored = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    assert!(script.contains("$OUT/$svc.env") && script.contains("$OUT/bank.env"), "generate.sh writes the env files");
    assert!(ignored.lines().any(|l| l == "/deploy/docker/generated/"), "the generated keys are git-ignored");
}
