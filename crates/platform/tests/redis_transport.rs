//! Redis AUTH and TLS through `platform::redis`, against redis-server processes each test starts on
//! free ports (and kills at the end): a password or an ACL user in the URL, `rediss://` with a
//! private CA (made here with the openssl CLI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use platform::redis::{client, Lock, Redis};

/// A redis-server of this test's own; killed (and its folder removed) when dropped.
struct Server {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Server {
    /// Starts `redis-server` with `args` on a free port (`--port`, or `--tls-port` when `tls`);
    /// `Err` with its output when it exits instead of listening.
    async fn start(tls: bool, args: &[&str]) -> Result<Server, String> {
        let port = free_port();
        let dir = scratch();
        let log = dir.join("redis.log");
        let ports: Vec<String> = if tls {
            vec!["--port".into(), "0".into(), "--tls-port".into(), port.to_string()]
        } else {
            vec!["--port".into(), port.to_string()]
        };
        let child = Command::new("redis-server")
            .args(&ports)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile"])
            .arg(&log)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (deploy/infra.sh installs it)");
        let mut server = Server { port, child, dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let out = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("redis-server exited ({status}):\n{out}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not listen on {port} within 10 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("platform-redis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A SET then a GET through `platform::redis::Redis`: the whole path a service uses.
async fn round_trip(redis: Result<Redis, platform::redis::ConnectError>) -> Result<(), String> {
    let redis = redis.map_err(|e| e.to_string())?;
    let value = uuid::Uuid::new_v4().to_string();
    redis.set("probe", &value).await.map_err(|e| e.to_string())?;
    let read = redis.get("probe").await.map_err(|e| e.to_string())?;
    assert_eq!(read.as_deref(), Some(value.as_str()));
    // The mirror's tracking connection is made from the same settings (credentials, TLS).
    let mirrored = redis.mirrored();
    let start = std::time::Instant::now();
    while !mirrored.mirror().is_some_and(|m| m.is_tracking()) {
        if start.elapsed() > std::time::Duration::from_secs(5) {
            return Err("the mirror does not track".into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let read = mirrored.read_many(&["probe".to_string()]).await.map_err(|e| e.to_string())?;
    assert_eq!(read, vec![Some(value)]);
    assert_eq!(mirrored.mirror().map(|m| m.round_trips()), Some(1), "read through the tracking connection");
    Ok(())
}

async fn through(url: &str) -> Result<(), String> {
    round_trip(Redis::connect_client(client(url, None).map_err(|e| e.to_string())?, "transport-test").await).await
}

#[tokio::test]
async fn a_password_and_an_acl_user_are_required_and_checked() {
    let server = Server::start(
        false,
        &[
            "--requirepass",
            "default-s3cret",
            "--user",
            "bank",
            "on",
            ">bank-s3cret",
            "~transport-test:*",
            "+@all",
            "-@admin",
            "-@dangerous",
        ],
    )
    .await
    .unwrap();
    let p = server.port;

    through(&format!("redis://:default-s3cret@127.0.0.1:{p}")).await.expect("the default user's password");
    through(&format!("redis://default:default-s3cret@127.0.0.1:{p}")).await.expect("the default user by name");
    through(&format!("redis://bank:bank-s3cret@127.0.0.1:{p}")).await.expect("the ACL user");

    for url in [
        format!("redis://127.0.0.1:{p}"),
        format!("redis://:wrong@127.0.0.1:{p}"),
        format!("redis://bank:default-s3cret@127.0.0.1:{p}"),
        format!("redis://nobody:bank-s3cret@127.0.0.1:{p}"),
    ] {
        let err = through(&url).await.expect_err(&url);
        assert!(!err.contains("s3cret"), "the error shows a password: {err}");
    }
    // What the services do besides GET and SET works for an ACL user without admin or dangerous
    // commands (as docs/operations.md suggests): the payout lock's scripts.
    let bank = client(&format!("redis://bank:bank-s3cret@127.0.0.1:{p}"), None).unwrap();
    let redis = Redis::connect_client(bank.clone(), "transport-test").await.unwrap();
    match redis.lock_unless("account", "paid", Duration::from_secs(5), Duration::from_millis(100)).await.unwrap() {
        Lock::Held(guard) => guard.release().await.unwrap(),
        _ => panic!("a free lock was not taken"),
    }
    match redis.lock_unless("account", "paid", Duration::from_secs(5), Duration::from_millis(100)).await.unwrap() {
        Lock::Held(guard) => guard.release_done("key", Duration::from_secs(5)).await.unwrap(),
        _ => panic!("a lock given back was not taken again"),
    }
    let done = redis.lock_unless("account", "paid", Duration::from_secs(5), Duration::from_millis(100)).await.unwrap();
    assert!(matches!(done, Lock::Done(key) if key == "key"), "the work was not marked done");
    // The ACL user is held to its keys: only what carries the prefix it was granted.
    let outside = Redis::connect_client(bank, "elsewhere").await.unwrap();
    let err = outside.set("probe", "x").await.expect_err("a key outside the ACL user's pattern");
    assert!(err.to_string().contains("NOPERM"), "{err}");
}

/// The openssl CLI makes a CA and a server certificate it signs (for 127.0.0.1 and localhost).
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl on PATH");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    run(&[&["req", "-x509"][..], &ec, &["-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=test CA"]]
        .concat());
    run(&[&["req", "-new"][..], &ec, &["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"]]
        .concat());
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "server.ext",
    ]);
    // A second CA, which signed nothing the server shows.
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", "other.key", "-out", "other.crt", "-days", "1", "-subj", "/CN=other"],
    ]
    .concat());
}

#[tokio::test]
async fn tls_with_a_private_ca_and_a_password() {
    let certs = scratch();
    certificates(&certs);
    let file = |name: &str| certs.join(name).to_str().unwrap().to_string();
    let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
    let started = Server::start(
        true,
        &[
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "tls-s3cret",
        ],
    )
    .await;
    let server = match started {
        Ok(server) => server,
        // Debian's redis-server is built with TLS; one built without it cannot serve this test.
        Err(out) if out.contains("TLS") && (out.contains("not supported") || out.contains("support")) => {
            eprintln!("SKIPPED: this redis-server has no TLS support:\n{out}");
            let _ = std::fs::remove_dir_all(&certs);
            return;
        }
        Err(out) => panic!("{out}"),
    };
    let p = server.port;
    let ca_file = certs.join("ca.crt");
    let tls = |url: String, ca: Option<PathBuf>| async move {
        let client = client(&url, ca.as_deref()).map_err(|e| e.to_string())?;
        round_trip(Redis::connect_client(client, "transport-test").await).await
    };

    tls(format!("rediss://:tls-s3cret@127.0.0.1:{p}"), Some(ca_file.clone())).await.expect("TLS by IP address");
    tls(format!("rediss://:tls-s3cret@localhost:{p}"), Some(ca_file.clone())).await.expect("TLS by name");

    // The private CA is not among the system's roots; another CA signed nothing here.
    let err = tls(format!("rediss://:tls-s3cret@127.0.0.1:{p}"), None).await.expect_err("system roots");
    assert!(!err.contains("s3cret"), "{err}");
    tls(format!("rediss://:tls-s3cret@127.0.0.1:{p}"), Some(certs.join("other.crt"))).await.expect_err("another CA");
    // Still AUTH over TLS, and plain text to a TLS port is no answer.
    tls(format!("rediss://:wrong@127.0.0.1:{p}"), Some(ca_file.clone())).await.expect_err("a wrong password");
    tls(format!("redis://:tls-s3cret@127.0.0.1:{p}"), None).await.expect_err("plain text to the TLS port");
    // A CA file with a plain URL is a mistake worth stopping on, not ignoring.
    let err = client(&format!("redis://127.0.0.1:{p}"), Some(&ca_file)).expect_err("CA file without TLS");
    assert!(err.to_string().contains("REDIS_CA_FILE"), "{err}");
    let err = client(&format!("rediss://127.0.0.1:{p}"), Some(&certs.join("missing.pem"))).expect_err("no CA file");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    drop(server);
    let _ = std::fs::remove_dir_all(&certs);
}
