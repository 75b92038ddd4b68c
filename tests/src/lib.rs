//! Test harness: starts the five services as real processes — five binaries; with
//! `TOPOLOGY=monolith` the one `bank` binary running all five; with `TOPOLOGY=replicated` two
//! processes of each service (and of the gateway) behind HAProxy, which callers and peers reach
//! — each service with a fresh database, on free loopback ports, sharing the machine's PostgreSQL,
//! Redis and Kafka-protocol broker (started by deploy/infra.sh) but isolated by database names,
//! Redis key prefix, topic prefix and consumer group. Addresses come from TEST_DATABASE_URL,
//! REDIS_URL and KAFKA_BROKERS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::NaiveDate;
use platform::credential::{Credentials, SignedClient};
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

mod balancer;
pub mod chaos;
pub mod otlp;

pub const SERVICES: [(&str, &str); 5] = [
    ("customer", "customer"),
    ("account-info", "account_info"),
    ("accounting", "accounting"),
    ("interest", "interest"),
    ("tax-consumer", "tax"),
];

/// The legacy-core simulator (started by [`Stack::start_with_legacy`]) and its database.
pub const LEGACY: &str = "legacy-core";
const LEGACY_DB: &str = "legacy_core";

pub fn database_base() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432".into())
}

/// How a stack runs the five services (`TOPOLOGY`): five processes (the default), one (`monolith`,
/// the `bank` binary), or `replicated`: [`REPLICAS`] processes of each service and of the gateway,
/// each on its own port, behind HAProxy on the service's usual address (callers, peers included,
/// reach a service through it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    Services,
    Monolith,
    Replicated,
}

impl Topology {
    /// From `TOPOLOGY` (`services` when unset).
    pub fn from_env() -> Topology {
        std::env::var("TOPOLOGY").ok().and_then(|t| Topology::parse(&t)).unwrap_or(Topology::Services)
    }

    pub fn parse(name: &str) -> Option<Topology> {
        match name {
            "services" | "" => Some(Topology::Services),
            "monolith" => Some(Topology::Monolith),
            "replicated" => Some(Topology::Replicated),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Topology::Services => "services",
            Topology::Monolith => "monolith",
            Topology::Replicated => "replicated",
        }
    }
}

/// Processes of each service, and of the gateway, in the replicated topology.
pub const REPLICAS: usize = 2;

/// Whether the services run as one process (`TOPOLOGY=monolith`, the `bank` binary) rather than
/// five. In one process a service cannot die alone: killing or restarting any of them is the
/// whole process's crash or restart.
pub fn monolith() -> bool {
    Topology::from_env() == Topology::Monolith
}

/// Whether each service runs as [`REPLICAS`] processes behind HAProxy (`TOPOLOGY=replicated`).
pub fn replicated() -> bool {
    Topology::from_env() == Topology::Replicated
}

/// The env-var prefix of a service's own settings in the one-process topology.
fn prefix(svc: &str) -> String {
    svc.to_ascii_uppercase().replace('-', "_")
}

/// The gateway's test keys.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../services/gateway/tests/fixtures")
}

/// A bearer token signed with one of the fixture keys, for the default issuer and `audience`.
pub fn token_from(key_file: &str, subject: &str, scope: &str, audience: &str) -> String {
    let pem = std::fs::read(fixtures().join(key_file)).unwrap();
    // The gateway requires `iat` and refuses tokens living longer than an hour by default.
    let iat = chrono::Utc::now().timestamp();
    let claims = serde_json::json!(
        {"sub": subject, "scope": scope, "iss": "interest-bank", "aud": audience, "iat": iat, "exp": iat + 300}
    );
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key).unwrap()
}

/// A caller's credentials from a directory [`write_credentials`] filled.
fn credentials_of(dir: &std::path::Path, caller: &str) -> Credentials {
    let key = std::fs::read_to_string(dir.join(format!("{caller}.key.pem"))).unwrap();
    Credentials::new(&key, &std::fs::read_to_string(dir.join("trust.jwks.json")).unwrap()).unwrap()
}

/// A service credential for `audience` signed by `caller`'s key in a stack's credentials, living
/// the longest a service accepts (for a tool's long run).
pub fn mint_credential(dir: &std::path::Path, caller: &str, audience: &str) -> String {
    credentials_of(dir, caller).signer.mint(audience, platform::credential::MAX_LIFETIME).unwrap()
}

/// Writes a fresh set of service credentials (a key per caller, the trust set) into `dir`.
fn write_credentials(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (keys, trust) = platform::credential::generate(&platform::credential::CALLERS).unwrap();
    for (caller, pem) in keys {
        std::fs::write(dir.join(format!("{caller}.key.pem")), pem).unwrap();
    }
    std::fs::write(dir.join("trust.jwks.json"), trust).unwrap();
}

pub fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A workspace binary built next to the services (`cargo build --bins`), e.g. `bankctl`.
pub fn binary(name: &str) -> PathBuf {
    bin_dir().join(name)
}

fn bin_dir() -> PathBuf {
    // target/<profile>/deps/<test-binary> or target/<profile>/<tool> → target/<profile>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir.parent().unwrap().to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// A port for a server of a test's own, never handed out twice by this process. Chosen below the
/// kernel's ephemeral range (32768+), so neither the kernel's port-0 picks nor outgoing connections
/// can take it while its server is down for a restart (bind-then-release on port 0 raced exactly
/// there: a restarted service found its port taken by another stack's).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..1000 {
        let port = 20_000 + (rand::random::<u16>() % 12_000);
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

pub struct Stack {
    pub run: String,
    /// Where callers reach each service: its process's port, or in the replicated topology
    /// HAProxy's frontend before its replicas (each replica's own: [`Stack::replica_url`]).
    pub urls: HashMap<&'static str, String>,
    pub ports: HashMap<&'static str, u16>,
    pub dbs: HashMap<&'static str, PgPool>,
    pub topic_prefix: String,
    /// Signs each request to a service as ops (a URL of no service, e.g. the gateway's, unsigned).
    pub http: SignedClient,
    /// The stack's service credentials: `<caller>.key.pem` and `trust.jwks.json`.
    pub credentials: PathBuf,
    pub topology: Topology,
    /// Every process of the stack by name (its log file's stem): `interest`, `bank`,
    /// `interest.1` (a replica), `tax-consumer-2` (started by [`Stack::add_replica`]).
    processes: HashMap<String, Process>,
    /// The processes that serve each service name, in replica order (`bank` for all five in
    /// one process).
    members: HashMap<&'static str, Vec<String>>,
    balancer: Option<balancer::Balancer>,
    /// The gateway's frontend and replica ports, set aside when a replicated stack starts (its
    /// pool is in HAProxy's configuration from the start; [`Stack::start_gateway`] fills it).
    gateway_ports: Option<(u16, Vec<u16>)>,
    env: Vec<(String, String)>,
    log_dir: PathBuf,
}

/// One process of a stack.
struct Process {
    binary: &'static str,
    /// The service whose database and settings it has (`None` for `bank`: all five by prefix).
    service: Option<&'static str>,
    port: u16,
    /// Settings of its own, after the stack's (the gateway's keys and `start_gateway`'s).
    env: Vec<(String, String)>,
    child: Option<Child>,
}

pub struct Response {
    pub status: StatusCode,
    pub body: Value,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(&[]).await
    }

    /// Starts all five services with extra env vars for every one of them.
    pub async fn start_with(extra_env: &[(&str, &str)]) -> Stack {
        Self::start_in(Topology::from_env(), extra_env, false).await
    }

    /// Starts the legacy-core simulator (its own process and database, `urls["legacy-core"]`)
    /// and the five services with `LEGACY_CORE_URL` pointing at it.
    pub async fn start_with_legacy(extra_env: &[(&str, &str)]) -> Stack {
        Self::start_in(Topology::from_env(), extra_env, true).await
    }

    /// Starts a stack in the given topology, whatever `TOPOLOGY` says (with the legacy-core
    /// simulator when `legacy`; it always runs as one process, reached directly).
    pub async fn start_in(topology: Topology, extra_env: &[(&str, &str)], legacy: bool) -> Stack {
        let run = format!("e2e{}", &Uuid::new_v4().simple().to_string()[..10]);
        let base = database_base();
        let mut admin =
            PgConnection::connect(&format!("{base}/postgres")).await.expect("postgres reachable (run deploy/infra.sh)");
        let mut dbs = HashMap::new();
        for (svc, db) in SERVICES {
            let name = format!("{run}_{db}");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
            dbs.insert(svc, name);
        }
        let mut ports: HashMap<&'static str, u16> = SERVICES.iter().map(|(s, _)| (*s, free_port())).collect();
        if legacy {
            let name = format!("{run}_{LEGACY_DB}");
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
            dbs.insert(LEGACY, name);
            ports.insert(LEGACY, free_port());
        }
        let urls: HashMap<&'static str, String> =
            ports.iter().map(|(s, p)| (*s, format!("http://127.0.0.1:{p}"))).collect();
        let topic_prefix = format!("{run}-");
        let credentials = bin_dir().join("e2e-logs").join(&run).join("credentials");
        write_credentials(&credentials);
        let ops = credentials_of(&credentials, "ops");
        let mut env: Vec<(String, String)> = vec![
            ("CLOCK_MODE".into(), "manual".into()),
            ("REDIS_URL".into(), std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())),
            ("REDIS_PREFIX".into(), run.clone()),
            ("KAFKA_BROKERS".into(), kafka_brokers()),
            ("KAFKA_TOPIC_PREFIX".into(), topic_prefix.clone()),
            ("TAX_CONSUMER_GROUP".into(), format!("{run}-tax")),
            ("CUSTOMER_URL".into(), urls["customer"].clone()),
            ("ACCOUNT_INFO_URL".into(), urls["account-info"].clone()),
            ("ACCOUNTING_URL".into(), urls["accounting"].clone()),
            ("INTEREST_URL".into(), urls["interest"].clone()),
            ("DATABASE_MAX_CONNECTIONS".into(), "10".into()),
            ("RUST_LOG".into(), "info,sqlx=warn,rdkafka=warn".into()),
            // Every process signs its calls with its own key (set per process when spawned) and
            // trusts this set; the harness's client and tools sign as ops.
            ("SERVICE_TRUST_FILE".into(), credentials.join("trust.jwks.json").display().to_string()),
        ];
        if legacy {
            env.push(("LEGACY_CORE_URL".into(), urls[LEGACY].clone()));
        }
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let log_dir = bin_dir().join("e2e-logs").join(&run);
        std::fs::create_dir_all(&log_dir).unwrap();
        let http = SignedClient::new(Client::builder().timeout(Duration::from_secs(30)).build().unwrap(), ops.signer);
        for (svc, url) in &urls {
            http.serve(url, svc);
        }
        let mut stack = Stack {
            run,
            urls,
            ports,
            dbs: HashMap::new(),
            topic_prefix,
            http,
            credentials,
            topology,
            processes: HashMap::new(),
            members: HashMap::new(),
            balancer: None,
            gateway_ports: None,
            env,
            log_dir,
        };
        match topology {
            Topology::Monolith => {
                stack.add_process("bank", "bank", None, 0, vec![]);
                for (svc, _) in SERVICES {
                    stack.members.insert(svc, vec!["bank".into()]);
                }
            }
            Topology::Services => {
                for (svc, _) in SERVICES {
                    let port = stack.ports[svc];
                    stack.add_process(svc, svc, Some(svc), port, vec![]);
                    stack.members.insert(svc, vec![svc.into()]);
                }
            }
            Topology::Replicated => {
                let mut pools = Vec::new();
                for (svc, _) in SERVICES {
                    let names = stack.add_replicas(svc, vec![]);
                    pools.push(stack.pool(svc, stack.ports[svc], &names));
                }
                let gateway: (u16, Vec<u16>) = (free_port(), (0..REPLICAS).map(|_| free_port()).collect());
                let servers = (0..REPLICAS).map(|i| (format!("gateway.{i}"), gateway.1[i])).collect();
                pools.push(balancer::Pool { name: "gateway", port: gateway.0, servers });
                stack.gateway_ports = Some(gateway);
                stack.balancer = Some(balancer::Balancer::start(&stack.log_dir, free_port(), &pools).await);
            }
        }
        if legacy {
            let port = stack.ports[LEGACY];
            stack.add_process(LEGACY, LEGACY, Some(LEGACY), port, vec![]);
            stack.members.insert(LEGACY, vec![LEGACY.into()]);
        }
        let mut names: Vec<String> = stack.processes.keys().cloned().collect();
        names.sort();
        for name in names {
            stack.spawn(&name, &[]);
        }
        for (svc, _) in SERVICES {
            stack.wait_ready(svc).await;
        }
        if legacy {
            stack.wait_ready(LEGACY).await;
        }
        for (svc, name) in dbs {
            stack.dbs.insert(svc, PgPool::connect(&format!("{base}/{name}")).await.unwrap());
        }
        stack
    }

    fn add_process(
        &mut self,
        name: &str,
        binary: &'static str,
        service: Option<&'static str>,
        port: u16,
        env: Vec<(String, String)>,
    ) {
        // A replica reached on its own port is signed for as its service (the gateway's own
        // routes take callers' tokens instead: never signed).
        if let Some(svc) = service.filter(|s| *s != "gateway") {
            self.http.serve(&format!("http://127.0.0.1:{port}"), svc);
        }
        self.processes.insert(name.into(), Process { binary, service, port, env, child: None });
    }

    /// Registers the replicas of `svc` (`svc.0`, `svc.1`, ...) on free ports; returns their names.
    fn add_replicas(&mut self, svc: &'static str, env: Vec<(String, String)>) -> Vec<String> {
        let ports = match (svc, &self.gateway_ports) {
            ("gateway", Some((_, ports))) => ports.clone(),
            _ => (0..REPLICAS).map(|_| free_port()).collect(),
        };
        let names: Vec<String> = (0..REPLICAS).map(|i| format!("{svc}.{i}")).collect();
        for (name, port) in names.iter().zip(ports) {
            self.add_process(name, svc, Some(svc), port, env.clone());
        }
        self.members.insert(svc, names.clone());
        names
    }

    fn pool(&self, svc: &'static str, port: u16, names: &[String]) -> balancer::Pool {
        let servers = names.iter().map(|n| (n.clone(), self.processes[n].port)).collect();
        balancer::Pool { name: svc, port, servers }
    }

    /// Each service's database URL (for tools that read them, like the chaos checker).
    pub fn database_urls(&self) -> Vec<(&'static str, String)> {
        SERVICES.iter().map(|(svc, _)| (*svc, self.database_url(svc))).collect()
    }

    /// The processes serving a service name (none for a name the stack does not run).
    fn members_of(&self, svc: &str) -> Vec<String> {
        self.members.get(svc).cloned().unwrap_or_default()
    }

    /// The processes of a service name that run (not killed, not exited and reaped).
    fn running_members(&self, svc: &str) -> Vec<String> {
        self.members_of(svc).into_iter().filter(|n| self.processes[n].child.is_some()).collect()
    }

    /// Whether HAProxy is in front of the service (the replicated topology's services and gateway).
    fn balanced(&self, svc: &str) -> bool {
        self.balancer.is_some() && (svc == "gateway" || SERVICES.iter().any(|(s, _)| *s == svc))
    }

    /// A process's own address for `svc` (`bank` has one per service).
    fn address_of(&self, svc: &str, name: &str) -> String {
        let p = &self.processes[name];
        if p.binary == "bank" {
            self.urls[svc].clone()
        } else {
            format!("http://127.0.0.1:{}", p.port)
        }
    }

    /// How many processes serve the service: [`REPLICAS`] in the replicated topology, else one.
    pub fn replicas(&self, svc: &str) -> usize {
        self.members_of(svc).len()
    }

    /// Replica `i`'s own address, not the balancer's (the service's only process in the other
    /// topologies: `replica_url(svc, 0) == urls[svc]` there).
    pub fn replica_url(&self, svc: &str, i: usize) -> String {
        let members = self.members_of(svc);
        let name = members.get(i).unwrap_or_else(|| panic!("{svc} has no replica {i}"));
        self.address_of(svc, name)
    }

    /// Every replica's own address, in replica order.
    pub fn replica_urls(&self, svc: &str) -> Vec<String> {
        (0..self.replicas(svc)).map(|i| self.replica_url(svc, i)).collect()
    }

    fn replica_name(&self, svc: &str, i: usize) -> String {
        self.members_of(svc).get(i).cloned().unwrap_or_else(|| panic!("{svc} has no replica {i}"))
    }

    /// SIGTERM, as an orchestrator stops a pod: the service drains and exits by itself (see
    /// [`Stack::wait_exit`]). Every replica of it.
    pub fn terminate(&self, svc: &'static str) {
        self.signal(svc, "-TERM");
    }

    /// SIGSTOP of the service's processes: they hold their connections and locks but answer
    /// nothing until [`Stack::resume`] (a long GC pause or a frozen VM, as the other processes
    /// see it).
    pub fn pause(&self, svc: &'static str) {
        self.signal(svc, "-STOP");
    }

    pub fn resume(&self, svc: &'static str) {
        self.signal(svc, "-CONT");
    }

    /// SIGSTOP of one replica (see [`Stack::pause`]); HAProxy takes it out of rotation when its
    /// health checks time out.
    pub fn pause_replica(&self, svc: &str, i: usize) {
        self.signal_process(&self.replica_name(svc, i), "-STOP");
    }

    pub fn resume_replica(&self, svc: &str, i: usize) {
        self.signal_process(&self.replica_name(svc, i), "-CONT");
    }

    fn signal(&self, svc: &str, signal: &str) {
        for name in self.members_of(svc) {
            self.signal_process(&name, signal);
        }
    }

    fn signal_process(&self, name: &str, signal: &str) {
        if let Some(c) = self.processes.get(name).and_then(|p| p.child.as_ref()) {
            let _ = Command::new("kill").args([signal, &c.id().to_string()]).status();
        }
    }

    /// Drops every connection to the service's database, as a PostgreSQL restart does from the
    /// service's side (its pool must reconnect).
    pub async fn drop_database_connections(&self, svc: &str) {
        let name = self.database_url(svc).rsplit('/').next().unwrap_or_default().to_string();
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", database_base())).await {
            let _ = sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(name)
                .execute(&mut admin)
                .await;
        }
    }

    /// What the service's processes have logged so far (all five in one file with `bank`; each
    /// replica's log after the other's in the replicated topology).
    pub fn log_of(&self, svc: &'static str) -> String {
        self.members_of(svc)
            .iter()
            .map(|name| std::fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default())
            .collect()
    }

    /// Whether the service runs: every process of it (not killed and not yet restarted).
    pub fn is_running(&self, svc: &'static str) -> bool {
        let members = self.members_of(svc);
        !members.is_empty() && members.iter().all(|n| self.processes[n].child.is_some())
    }

    /// Whether replica `i` of the service runs.
    pub fn is_replica_running(&self, svc: &str, i: usize) -> bool {
        self.processes[&self.replica_name(svc, i)].child.is_some()
    }

    pub fn database_url(&self, svc: &str) -> String {
        let db = match svc {
            LEGACY => LEGACY_DB,
            "gateway" => "gateway",
            _ => SERVICES.iter().find(|(s, _)| *s == svc).unwrap().1,
        };
        format!("{}/{}_{}", database_base(), self.run, db)
    }

    /// Starts a process: one service's binary, or `bank` with each service's port and database
    /// under its prefix.
    fn spawn(&mut self, name: &str, overrides: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{name}.log")))
            .unwrap();
        let p = &self.processes[name];
        let own: Vec<(String, String)> = match p.service {
            None => SERVICES
                .iter()
                .flat_map(|(svc, _)| {
                    [
                        (format!("{}_PORT", prefix(svc)), self.ports[svc].to_string()),
                        (format!("{}_DATABASE_URL", prefix(svc)), self.database_url(svc)),
                    ]
                })
                .collect(),
            Some(svc) => vec![
                ("PORT".into(), p.port.to_string()),
                ("DATABASE_URL".into(), self.database_url(svc)),
                ("SERVICE_KEY_FILE".into(), self.key_file(svc)),
            ],
        };
        // The one-process topology: each service its own key, by its prefix.
        let keys: Vec<(String, String)> = match p.service {
            None => SERVICES
                .iter()
                .map(|(svc, _)| *svc)
                .chain(["gateway"])
                .map(|svc| (format!("{}_SERVICE_KEY_FILE", prefix(svc)), self.key_file(svc)))
                .collect(),
            Some(_) => vec![],
        };
        let child = Command::new(bin_dir().join(p.binary))
            .envs(self.env.iter().cloned())
            .envs(own)
            .envs(keys)
            .envs(p.env.iter().cloned())
            .envs(overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} (build the binaries first: cargo build --bins): {e}"));
        match self.processes.get_mut(name) {
            Some(p) => p.child = Some(child),
            None => {
                let mut child = child;
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Waits until the service answers ready. Behind HAProxy: until each of its running replicas
    /// does on its own port and HAProxy counts them up.
    pub async fn wait_ready(&self, svc: &str) {
        if self.balanced(svc) {
            let running = self.running_members(svc);
            for name in &running {
                self.wait_url_ready(&self.address_of(svc, name), name).await;
            }
            if let Some(b) = &self.balancer {
                b.wait_up(svc, &running).await;
            }
        } else {
            self.wait_url_ready(&self.urls[svc], svc).await;
        }
    }

    async fn wait_url_ready(&self, url: &str, what: &str) {
        for _ in 0..240 {
            if let Ok(r) = self.http.get(format!("{url}/health/ready")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{what} did not become ready; logs in {}", self.log_dir.display());
    }

    /// kill -9 of the service's processes, as a crash would (all five services, in one process;
    /// every replica, in the replicated topology).
    pub fn kill(&mut self, svc: &'static str) {
        for name in self.members_of(svc) {
            self.kill_process(&name);
        }
    }

    /// kill -9 of one replica of the service (`bank` in one process).
    pub fn kill_replica(&mut self, svc: &str, i: usize) {
        let name = self.replica_name(svc, i);
        self.kill_process(&name);
    }

    fn kill_process(&mut self, name: &str) {
        if let Some(mut c) = self.processes.get_mut(name).and_then(|p| p.child.take()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restarts a service — every process of it, killing those that still run — with some env
    /// vars overridden.
    pub async fn restart_with(&mut self, svc: &'static str, overrides: &[(&str, &str)]) {
        self.kill(svc);
        for name in self.members_of(svc) {
            self.spawn(&name, overrides);
        }
        self.wait_after_start(svc).await;
    }

    /// Restarts one replica of the service (killing it first if it still runs) with some env vars
    /// overridden, and waits until it is ready and HAProxy counts it up again.
    pub async fn restart_replica(&mut self, svc: &'static str, i: usize, overrides: &[(&str, &str)]) {
        let name = self.replica_name(svc, i);
        self.kill_process(&name);
        self.spawn(&name, overrides);
        if self.balanced(svc) {
            self.wait_url_ready(&self.address_of(svc, &name), &name).await;
            if let Some(b) = &self.balancer {
                b.wait_up(svc, &[name]).await;
            }
        } else {
            self.wait_after_start(svc).await;
        }
    }

    async fn wait_after_start(&self, svc: &'static str) {
        if self.members_of(svc) == ["bank"] {
            for (svc, _) in SERVICES {
                self.wait_ready(svc).await;
            }
        } else {
            self.wait_ready(svc).await;
        }
    }

    /// Starts another replica of a service as its own process (its own binary, even when the stack
    /// runs as one process): the same database, Redis, broker and settings, its own port, reached
    /// as `urls[replica]` (not through HAProxy) and killed or restarted by that name.
    pub async fn add_replica(&mut self, svc: &'static str, replica: &'static str) {
        let port = free_port();
        self.ports.insert(replica, port);
        self.urls.insert(replica, format!("http://127.0.0.1:{port}"));
        self.add_process(replica, svc, Some(svc), port, vec![]);
        self.members.insert(replica, vec![replica.into()]);
        self.spawn(replica, &[]);
        self.wait_ready(replica).await;
    }

    /// Waits for a process of the service to exit on its own (a crash injected with FAULT_POINT):
    /// true once one of its replicas has.
    pub async fn wait_exit(&mut self, svc: &'static str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            for name in self.members_of(svc) {
                let Some(p) = self.processes.get_mut(&name) else { continue };
                if p.child.as_mut().is_some_and(|c| c.try_wait().unwrap().is_some()) {
                    p.child = None;
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
    pub async fn call(
        &self,
        svc: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        self.call_at(&self.urls[svc], method, path, body, headers).await
    }

    /// A request to replica `i` of the service on its own port, past the balancer.
    pub async fn call_replica(
        &self,
        svc: &str,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        self.call_at(&self.replica_url(svc, i), method, path, body, headers).await
    }

    /// A request to a base URL with the service credential.
    pub async fn call_at(
        &self,
        base: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut req = self.http.request(method, format!("{base}{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        Response { status, body }
    }

    /// A payout request whose connection may die with the server.
    pub async fn try_pay(&self, account: Uuid, key: &str) -> Result<Response, reqwest::Error> {
        let resp = self
            .http
            .post(format!("{}/v1/interest/accounts/{account}/payouts", self.urls["interest"]))
            .header("Idempotency-Key", key)
            .send()
            .await?;
        let status = resp.status();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok(Response { status, body })
    }

    pub async fn get(&self, svc: &str, path: &str) -> Response {
        self.call(svc, Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, svc: &str, path: &str, body: Value) -> Response {
        self.call(svc, Method::POST, path, Some(body), &[]).await
    }

    /// Sets the manual clock to a Seoul date and time of day (`HH:MM:SS`).
    pub async fn set_clock(&self, day: &str, time: &str) {
        let body = serde_json::json!({ "today": day, "time": time });
        let r = self.call("interest", Method::PUT, "/v1/admin/clock", Some(body), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    /// Sum of a counter's series on a service's `/metrics` whose labels include `labels`: over
    /// every running replica (through HAProxy a counter would be one replica's, whichever answered).
    pub async fn metric(&self, svc: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
        let urls: Vec<String> = if self.members.contains_key(svc) {
            self.running_members(svc).iter().map(|n| self.address_of(svc, n)).collect()
        } else {
            vec![self.urls[svc].clone()]
        };
        let mut sum = 0.0;
        for url in urls {
            let mut req = self.http.get(format!("{url}/metrics"));
            if svc == "gateway" {
                // The gateway's metrics are not public: they need a service credential.
                req = req.bearer_auth(self.credential_of("ops", "gateway"));
            }
            let text = req.send().await.unwrap().text().await.unwrap();
            for line in text.lines().filter(|l| !l.starts_with('#')) {
                let Some((series, value)) = line.rsplit_once(' ') else { continue };
                let (metric, label_text) = series.split_once('{').unwrap_or((series, ""));
                if metric != name {
                    continue;
                }
                if labels.iter().all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\""))) {
                    sum += value.parse::<f64>().unwrap();
                }
            }
        }
        sum
    }

    /// Calls the interest service made to one other service so far, over HTTP or in-process.
    pub async fn calls_to(&self, target: &str) -> f64 {
        self.metric("interest", "peer_calls_total", &[("caller", "interest"), ("target", target)]).await
    }

    /// Requests the interest service put on the wire to one target so far (an open breaker's
    /// refusals are not sent).
    pub async fn wire_attempts_to(&self, target: &str) -> f64 {
        self.metric("interest", "http_client_requests_total", &[("target", target)]).await
    }

    pub async fn set_today(&self, day: &str) {
        let r =
            self.call("interest", Method::PUT, "/v1/admin/clock", Some(serde_json::json!({ "today": day })), &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    }

    pub async fn product(&self, code: &str, bands: Value, effective_from: &str) {
        let r = self.post("interest", "/v1/interest/products", serde_json::json!({"code": code, "name": code})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        let r = self
            .post(
                "interest",
                &format!("/v1/interest/products/{code}/rate-schedules"),
                serde_json::json!({"effective_from": effective_from, "bands": bands}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }

    pub async fn customer(&self, category: &str) -> Uuid {
        let r = self
            .post("customer", "/v1/customers", serde_json::json!({"name": "Test Customer", "tax_category": category}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["customer_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn account(&self, customer: Uuid, product: &str) -> Uuid {
        let r = self
            .post("account-info", "/v1/accounts", serde_json::json!({"customer_id": customer, "product_code": product}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        r.body["account_id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn deposit(&self, account: Uuid, amount: i64, value_date: Option<&str>) -> Response {
        self.move_money(account, "deposits", amount, value_date).await
    }

    pub async fn withdraw(&self, account: Uuid, amount: i64, value_date: Option<&str>) -> Response {
        self.move_money(account, "withdrawals", amount, value_date).await
    }

    /// A deposit or withdrawal under a fresh Idempotency-Key.
    async fn move_money(&self, account: Uuid, kind: &str, amount: i64, value_date: Option<&str>) -> Response {
        let mut body = serde_json::json!({"amount": amount});
        if let Some(v) = value_date {
            body["value_date"] = v.into();
        }
        let key = Uuid::new_v4().to_string();
        self.call(
            "accounting",
            Method::POST,
            &format!("/v1/ledger/accounts/{account}/{kind}"),
            Some(body),
            &[("Idempotency-Key", &key)],
        )
        .await
    }

    pub async fn pay(&self, account: Uuid, key: &str) -> Response {
        self.call(
            "interest",
            Method::POST,
            &format!("/v1/interest/accounts/{account}/payouts"),
            None,
            &[("Idempotency-Key", key)],
        )
        .await
    }

    pub async fn balance(&self, account: Uuid) -> i64 {
        let r = self.get("accounting", &format!("/v1/ledger/accounts/{account}/balance")).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        r.body["balance"].as_i64().unwrap()
    }

    /// Polls the tax service until the payout's withholding record exists.
    pub async fn wait_withholding(&self, account: Uuid, payout_id: &str) -> Value {
        for _ in 0..240 {
            let r = self.get("tax-consumer", &format!("/v1/tax/withholdings?account_id={account}")).await;
            if let Some(w) =
                r.body["withholdings"].as_array().and_then(|a| a.iter().find(|w| w["payout_id"] == payout_id))
            {
                return w.clone();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("no withholding record for payout {payout_id}");
    }

    /// The ledger's own invariants, read straight from its database: every entry balances, and
    /// every account's balance (and latest end-of-day balance) equals the sum of its postings.
    pub async fn assert_ledger_consistent(&self) {
        let db = &self.dbs["accounting"];
        let unbalanced: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT entry_id FROM journal_lines GROUP BY entry_id HAVING sum(debit) <> sum(credit)) x",
        )
        .fetch_one(db)
        .await
        .unwrap();
        assert_eq!(unbalanced, 0, "unbalanced journal entries");
        let (debits, credits): (i64, i64) =
            sqlx::query_as("SELECT COALESCE(sum(debit),0)::int8, COALESCE(sum(credit),0)::int8 FROM journal_lines")
                .fetch_one(db)
                .await
                .unwrap();
        assert_eq!(debits, credits, "ledger debits != credits");
        let mismatched: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM ledger_accounts a
             LEFT JOIN (SELECT account_id, sum(credit - debit) AS s FROM journal_lines WHERE account_id IS NOT NULL GROUP BY account_id) p
               ON p.account_id = a.account_id
             LEFT JOIN LATERAL (SELECT balance FROM daily_balances d WHERE d.account_id = a.account_id ORDER BY day DESC LIMIT 1) d ON true
             WHERE a.balance <> COALESCE(p.s, 0) OR a.balance <> COALESCE(d.balance, 0)",
        )
        .fetch_one(db)
        .await
        .unwrap();
        assert_eq!(mismatched, 0, "balances differ from the sum of postings");
    }

    /// A database outage for one service: no new connections, existing ones terminated.
    pub async fn block_database(&self, svc: &str, blocked: bool) {
        let db = SERVICES.iter().find(|(s, _)| *s == svc).map_or(svc, |(_, db)| *db);
        let name = format!("{}_{db}", self.run);
        let mut admin = PgConnection::connect(&format!("{}/postgres", database_base())).await.unwrap();
        sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {}", !blocked))
            .execute(&mut admin)
            .await
            .unwrap();
        if blocked {
            sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1")
                .bind(&name)
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }

    /// A caller's private key file in the stack's credentials.
    pub fn key_file(&self, caller: &str) -> String {
        self.credentials.join(format!("{caller}.key.pem")).display().to_string()
    }

    /// What an ops tool (bankctl, the bench) needs to call the stack's services: the ops key and
    /// the trust set.
    pub fn ops_env(&self) -> [(&'static str, String); 2] {
        [
            ("SERVICE_KEY_FILE", self.key_file("ops")),
            ("SERVICE_TRUST_FILE", self.credentials.join("trust.jwks.json").display().to_string()),
        ]
    }

    /// A service credential for `audience` signed by `caller`'s key (as that service would send).
    pub fn credential_of(&self, caller: &str, audience: &str) -> String {
        credentials_of(&self.credentials, caller).signer.mint(audience, platform::credential::LIFETIME).unwrap()
    }

    /// `bankctl reconcile --json` over the stack, for business dates in `[from, to]`.
    pub fn reconcile(&self, from: &str, to: &str) -> Value {
        let out = Command::new(binary("bankctl"))
            .args(["reconcile", "--from", from, "--to", to, "--json"])
            .envs(self.ops_env())
            .env("INTEREST_URL", &self.urls["interest"])
            .env("ACCOUNTING_URL", &self.urls["accounting"])
            .env("TAX_URL", &self.urls["tax-consumer"])
            .output()
            .unwrap();
        assert!(
            out.status.code().is_some_and(|c| c < 2),
            "bankctl reconcile: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Rows of a table of one service's database.
    pub async fn count(&self, svc: &str, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.dbs[svc]).await.unwrap()
    }

    /// Starts the gateway in front of the stack (its own process and database), trusting the test
    /// issuer's key (`services/gateway/tests/fixtures`); its URL is `urls["gateway"]`. In the
    /// replicated topology, [`REPLICAS`] gateways behind HAProxy.
    pub async fn start_gateway(&mut self, extra_env: &[(&str, &str)]) {
        let db = format!("{}_gateway", self.run);
        let mut admin = PgConnection::connect(&format!("{}/postgres", database_base())).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {db}")).execute(&mut admin).await.unwrap();
        let keys = fixtures().join("test-issuer.pub.pem");
        let mut env: Vec<(String, String)> = vec![
            ("TAX_URL".into(), self.urls["tax-consumer"].clone()),
            ("AUTH_PUBLIC_KEY_FILE".into(), keys.display().to_string()),
            // Every test reaches the gateway from one address, and ops tests ask a lot: tests of
            // these limits set their own.
            ("RATE_LIMIT_PER_ADDRESS_PER_MINUTE".into(), "1000000".into()),
            ("RATE_LIMIT_OPS_PER_MINUTE".into(), "1000000".into()),
        ];
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let port = match self.gateway_ports.clone() {
            Some((port, _)) => {
                self.add_replicas("gateway", env);
                port
            }
            None => {
                let port = free_port();
                self.add_process("gateway", "gateway", Some("gateway"), port, env);
                self.members.insert("gateway", vec!["gateway".into()]);
                port
            }
        };
        self.urls.insert("gateway", format!("http://127.0.0.1:{port}"));
        self.ports.insert("gateway", port);
        for name in self.members_of("gateway") {
            self.spawn(&name, &[]);
        }
        self.wait_ready("gateway").await;
        self.dbs.insert("gateway", PgPool::connect(&format!("{}/{db}", database_base())).await.unwrap());
    }
    /// A bearer token from the test issuer, valid for five minutes.
    pub fn token(&self, subject: &str, scope: &str) -> String {
        token_from("test-issuer.key.pem", subject, scope, "interest-bank-api")
    }

    /// A request to the gateway as `token`'s holder.
    pub async fn as_caller(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Response {
        let bearer = format!("Bearer {token}");
        let mut all = vec![("Authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        self.call("gateway", method, path, body, &all).await
    }

    pub async fn shutdown(mut self) {
        self.stop_processes();
        for (_, pool) in self.dbs.drain() {
            pool.close().await;
        }
        if let Ok(mut admin) = PgConnection::connect(&format!("{}/postgres", database_base())).await {
            for db in SERVICES.iter().map(|(_, db)| *db).chain(["gateway", LEGACY_DB]) {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {}_{db} WITH (FORCE)", self.run))
                    .execute(&mut admin)
                    .await;
            }
        }
    }

    /// kill -9 of every process of the stack, and of its HAProxy.
    fn stop_processes(&mut self) {
        for p in self.processes.values_mut() {
            if let Some(mut c) = p.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(b) = self.balancer.as_mut() {
            b.stop();
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_processes();
    }
}
/// Waits until something listens on a loopback port (a server the test started).
async fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not start on {port}");
}

/// A Redis server of a test's own (on a free port), for tests that stop it.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let mut r = RedisServer { port: free_port(), child: None };
        r.restart().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port, empty (no persistence).
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (deploy/infra.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, "redis-server", Duration::from_secs(5)).await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An Apache Kafka broker of a test's own (KRaft, one node that is broker and controller, in its own
/// folder on two free ports), for tests that kill it. Its data survives `kill -9` and a restart.
/// It runs from the jars deploy/infra.sh resolved from Maven Central: `KAFKA_LIBS` (deploy/test.sh
/// sets it) names their folder.
pub struct Broker {
    pub port: u16,
    controller_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    pub async fn start() -> Broker {
        let dir = bin_dir().join("e2e-logs").join(format!("broker-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let mut b = Broker { port: free_port(), controller_port: free_port(), dir, child: None };
        b.write_config();
        b.restart().await;
        b
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// kill -9.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it (again) on the same ports and data, formatting the storage the first time, and
    /// returns once it serves: it answers metadata and every partition it has has a leader.
    pub async fn restart(&mut self) {
        self.kill();
        let libs = kafka_libs();
        let classpath = format!("{}/*", libs.display());
        let config = self.dir.join("server.properties");
        if !self.dir.join("data/meta.properties").exists() {
            let out = Command::new("java")
                .args(["-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", &classpath, "kafka.tools.StorageTool", "format"])
                .args(["--cluster-id", &kafka_cluster_id(), "--config", config.to_str().unwrap()])
                .output()
                .expect("java on PATH (deploy/infra.sh installs it)");
            assert!(
                out.status.success(),
                "formatting the broker's storage in {} failed: {}{}",
                self.dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let out = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("kafka.out")).unwrap();
        let child = Command::new("java")
            .args(["-Xms128m", "-Xmx384m", "-XX:+UseG1GC", "-Djava.awt.headless=true"])
            .arg(format!("-Dlog4j2.configurationFile={}", self.dir.join("log4j2.properties").display()))
            .args(["-cp", &classpath, "kafka.Kafka", config.to_str().unwrap()])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("java on PATH (deploy/infra.sh installs it)");
        self.child = Some(child);
        self.wait_until_serving(Duration::from_secs(60)).await;
    }

    /// Polls the broker's metadata (librdkafka, as the services see it): an open port is not
    /// enough, the broker must have registered with its controller and led its partitions again.
    async fn wait_until_serving(&mut self, timeout: Duration) {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "500")
            .create()
            .unwrap();
        let client = std::sync::Arc::new(client);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("the test's Kafka broker exited ({status}); see {}", self.dir.join("kafka.log").display());
            }
            let metadata = tokio::task::spawn_blocking({
                let client = client.clone();
                move || client.fetch_metadata(None, Duration::from_secs(2))
            })
            .await
            .unwrap();
            match metadata {
                Ok(m) if m.brokers().is_empty() => last = "no broker in the metadata".into(),
                Ok(m) => {
                    let leaderless: Vec<String> = m
                        .topics()
                        .iter()
                        .flat_map(|t| {
                            t.partitions()
                                .iter()
                                .filter(|p| p.leader() < 0 || p.error().is_some())
                                .map(move |p| format!("{}-{}", t.name(), p.id()))
                        })
                        .collect();
                    if leaderless.is_empty() {
                        return;
                    }
                    last = format!("partitions without a leader: {leaderless:?}");
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "the test's Kafka broker on {} did not serve within {timeout:?} ({last}); see {}",
            self.port,
            self.dir.join("kafka.log").display()
        );
    }

    fn write_config(&self) {
        let (dir, port, controller) = (self.dir.display(), self.port, self.controller_port);
        let server = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n\
             inter.broker.listener.name=PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             log.dirs={dir}/data\n\
             num.partitions=1\n\
             auto.create.topics.enable=false\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             min.insync.replicas=1\n\
             default.replication.factor=1\n\
             group.initial.rebalance.delay.ms=0\n\
             broker.session.timeout.ms=4000\n\
             broker.heartbeat.interval.ms=1000\n"
        );
        std::fs::write(self.dir.join("server.properties"), server).unwrap();
        let log4j = format!(
            "status = warn\n\
             appender.file.type = File\n\
             appender.file.name = file\n\
             appender.file.fileName = {dir}/kafka.log\n\
             appender.file.layout.type = PatternLayout\n\
             appender.file.layout.pattern = [%d] %p %m (%c)%n\n\
             rootLogger.level = WARN\n\
             rootLogger.appenderRef.file.ref = file\n\
             logger.server.name = kafka.server\n\
             logger.server.level = INFO\n"
        );
        std::fs::write(self.dir.join("log4j2.properties"), log4j).unwrap();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The folder of the Apache Kafka jars (`KAFKA_LIBS`).
fn kafka_libs() -> PathBuf {
    let libs = std::env::var("KAFKA_LIBS").unwrap_or_else(|_| {
        panic!(
            "KAFKA_LIBS is not set: a test's own Kafka broker runs from the jars deploy/infra.sh resolves \
             (deploy/test.sh sets KAFKA_LIBS=/var/cache/interest-bank/kafka-<version>/libs)"
        )
    });
    let libs = PathBuf::from(libs);
    let has_kafka = std::fs::read_dir(&libs)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-")))
        .unwrap_or(false);
    assert!(has_kafka, "KAFKA_LIBS={} holds no Apache Kafka jars: run deploy/infra.sh", libs.display());
    libs
}

/// A random KRaft cluster id: 16 bytes in unpadded URL-safe base64, as Kafka's `Uuid` prints them.
fn kafka_cluster_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let (mut bits, mut held, mut out) = (0u32, 0u32, String::new());
    for byte in Uuid::new_v4().into_bytes() {
        bits = ((bits & 0x3f) << 8) | u32::from(byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            out.push(ALPHABET[((bits >> held) & 0x3f) as usize] as char);
        }
    }
    out.push(ALPHABET[((bits << (6 - held)) & 0x3f) as usize] as char);
    out
}

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}
