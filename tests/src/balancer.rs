//! The load balancer of the replicated topology: one HAProxy process per stack (Debian's package,
//! installed by deploy/infra.sh), with a frontend on each service's usual address and its replicas
//! behind it — round robin, health-checked on `/health/ready` as a Kubernetes Service's endpoints
//! are. Its configuration is written in the stack's log folder; its statistics (which replicas it
//! counts as up) are read over HTTP on a port of its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One balanced service: the frontend's port and its replicas (server name, port).
pub struct Pool {
    pub name: &'static str,
    pub port: u16,
    pub servers: Vec<(String, u16)>,
}

pub struct Balancer {
    stats_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    http: reqwest::Client,
}

/// HAProxy's configuration for the pools. Health checks every second while a replica is up, every
/// 250 ms while it changes state, every 500 ms while it is down; one success brings it in, two
/// failures take it out (a refused connection is retried on the other replica at once). When no
/// replica of a service is ready, requests go to all of them anyway (`<name>-all`, fail-open, as
/// Envoy's panic threshold and cloud load balancers do): callers then get the service's own answer
/// (a 503 problem with `Retry-After`) rather than the balancer's.
pub fn config(stats_port: u16, pools: &[Pool]) -> String {
    let mut c = format!(
        "# Written by the end-to-end harness (tests/src/balancer.rs) for one stack.\n\
         global\n    maxconn 4000\n\n\
         defaults\n    mode http\n    timeout connect 1s\n    timeout client 300s\n    timeout server 120s\n\
         \x20   timeout http-keep-alive 300s\n    timeout check 1500ms\n    retries 3\n    option redispatch 1\n\
         \x20   default-server inter 1s fastinter 250ms downinter 500ms rise 1 fall 2\n\n\
         listen stats\n    bind 127.0.0.1:{stats_port}\n    stats enable\n    stats uri /stats\n"
    );
    for pool in pools {
        let name = pool.name;
        c.push_str(&format!(
            "\nfrontend {name}\n    bind 127.0.0.1:{}\n    use_backend {name}-all if {{ nbsrv({name}) eq 0 }}\n    default_backend {name}\n",
            pool.port
        ));
        c.push_str(&format!(
            "\nbackend {name}\n    balance roundrobin\n    option httpchk GET /health/ready\n    http-check expect status 200\n"
        ));
        for (server, port) in &pool.servers {
            c.push_str(&format!("    server {server} 127.0.0.1:{port} check\n"));
        }
        c.push_str(&format!("\nbackend {name}-all\n    balance roundrobin\n"));
        for (server, port) in &pool.servers {
            c.push_str(&format!("    server {server} 127.0.0.1:{port}\n"));
        }
    }
    c
}

/// The HAProxy binary: on PATH, or where Debian's package puts it.
fn haproxy() -> PathBuf {
    let sbin = PathBuf::from("/usr/sbin/haproxy");
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from("haproxy")
    }
}

impl Balancer {
    /// Writes the configuration into `dir` and starts HAProxy in the foreground, its output in
    /// `dir/haproxy.log`; returns once its statistics answer.
    pub async fn start(dir: &Path, stats_port: u16, pools: &[Pool]) -> Balancer {
        let config = dir.join("haproxy.cfg");
        std::fs::write(&config, self::config(stats_port, pools)).unwrap();
        let log = dir.join("haproxy.log");
        let mut b = Balancer {
            stats_port,
            config,
            log,
            child: None,
            http: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap(),
        };
        b.spawn();
        for _ in 0..200 {
            if b.stats().await.is_ok() {
                return b;
            }
            if let Some(status) = b.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("haproxy exited ({status}); see {}", b.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("haproxy did not answer on its statistics port {stats_port}; see {}", b.log.display());
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(haproxy())
            .arg("-db")
            .arg("-f")
            .arg(&self.config)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("haproxy installed (deploy/infra.sh installs Debian's package)");
        self.child = Some(child);
    }

    /// `(backend, server, status)` of every server, as HAProxy's statistics report them
    /// (`UP`, `DOWN`, `UP 1/2` while going down, ...).
    async fn stats(&self) -> Result<Vec<(String, String, String)>, String> {
        let url = format!("http://127.0.0.1:{}/stats;csv", self.stats_port);
        let text =
            self.http.get(url).send().await.map_err(|e| e.to_string())?.text().await.map_err(|e| e.to_string())?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().trim_start_matches("# ").split(',').collect();
        let col = |name: &str| header.iter().position(|h| *h == name).ok_or(format!("no {name} column"));
        let (px, sv, status) = (col("pxname")?, col("svname")?, col("status")?);
        Ok(lines
            .map(|l| l.split(',').collect::<Vec<&str>>())
            .filter(|f| f.len() > status)
            .map(|f| (f[px].to_string(), f[sv].to_string(), f[status].to_string()))
            .collect())
    }

    /// Waits until HAProxy counts each of `servers` of the backend `pool` as up (health-checked
    /// and ready), as a Kubernetes Service waits for an endpoint's readiness.
    pub async fn wait_up(&self, pool: &str, servers: &[String]) {
        let mut last = Vec::new();
        for _ in 0..240 {
            if let Ok(all) = self.stats().await {
                last = all.into_iter().filter(|(p, s, _)| p == pool && servers.contains(s)).collect();
                if last.len() == servers.len() && last.iter().all(|(_, _, status)| status == "UP") {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("HAProxy does not count {servers:?} of {pool} as up: {last:?}; see {}", self.log.display());
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pool_gets_a_frontend_a_checked_backend_and_a_fail_open_one() {
        let c = config(9000, &[Pool { name: "interest", port: 9001, servers: vec![("interest.0".into(), 9002)] }]);
        assert!(c.contains("frontend interest\n    bind 127.0.0.1:9001\n"));
        assert!(c.contains("use_backend interest-all if { nbsrv(interest) eq 0 }"));
        assert!(c.contains("option httpchk GET /health/ready"));
        assert!(c.contains("    server interest.0 127.0.0.1:9002 check\n"));
        assert!(c.contains("backend interest-all\n    balance roundrobin\n    server interest.0 127.0.0.1:9002\n"));
    }
}
