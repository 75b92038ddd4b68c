//! The Redis mirror against a real Redis (`REDIS_URL`): a key read through it is answered from
//! memory until anyone changes it, a change reaches it by Redis's push, a value read while it
//! changes is never kept stale, and a lost tracking connection forgets everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use platform::redis::Redis;

fn url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A mirrored connection and a plain one, under a prefix of their own, once the mirror tracks.
async fn pair() -> (Redis, Redis) {
    let prefix = format!("mirror-test-{}", uuid::Uuid::new_v4());
    let mirrored = Redis::connect(&url(), &prefix).await.unwrap().mirrored();
    let plain = Redis::connect(&url(), &prefix).await.unwrap();
    until(|| async { mirrored.mirror().unwrap().is_tracking() }, "the mirror tracks").await;
    (mirrored, plain)
}

/// Waits up to 5 s for `check`.
async fn until<F, Fut>(check: F, what: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < Duration::from_secs(5), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn keys(names: &[&str]) -> Vec<String> {
    names.iter().map(|k| k.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_answered_from_memory_until_redis_says_it_changed() {
    let (mirrored, plain) = pair().await;
    let mirror = mirrored.mirror().unwrap().clone();
    plain.set("a", "1").await.unwrap();
    let ab = keys(&["a", "b"]);
    assert_eq!(mirrored.read_many(&ab).await.unwrap(), vec![Some("1".into()), None]);
    let trips = mirror.round_trips();
    for _ in 0..100 {
        assert_eq!(mirrored.read_many(&ab).await.unwrap(), vec![Some("1".into()), None]);
    }
    assert_eq!(mirror.round_trips(), trips, "answered from memory, an absent key included");
    assert!(mirror.is_tracking(), "and not because the mirror stopped tracking");

    plain.set("a", "2").await.unwrap();
    until(|| async { mirrored.read_many(&ab).await.unwrap()[0].as_deref() == Some("2") }, "a change arrives").await;
    plain.set("b", "x").await.unwrap();
    until(|| async { mirrored.read_many(&ab).await.unwrap()[1].as_deref() == Some("x") }, "a key appears").await;
    plain.set_px("c", "soon gone", Duration::from_millis(300)).await.unwrap();
    assert_eq!(mirrored.read_many(&keys(&["c"])).await.unwrap(), vec![Some("soon gone".into())]);
    until(|| async { mirrored.read_many(&keys(&["c"])).await.unwrap() == vec![None] }, "an expiry arrives").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_read_while_it_changes_is_never_kept_stale() {
    let (mirrored, plain) = pair().await;
    let key = keys(&["r"]);
    plain.set("r", "0").await.unwrap();
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (m, key) = (mirrored.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..400 {
                    m.read_many(&key).await.unwrap();
                }
            })
        })
        .collect();
    for i in 1..=300 {
        plain.set("r", &i.to_string()).await.unwrap();
    }
    for r in readers {
        r.await.unwrap();
    }
    // Every change after a read was pushed: whatever the mirror kept, it now answers the last.
    until(|| async { mirrored.read_many(&key).await.unwrap()[0].as_deref() == Some("300") }, "the last value").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(mirrored.read_many(&key).await.unwrap()[0].as_deref(), Some("300"));
}

/// The race itself, opened wide: a change lands (and its invalidation arrives) after Redis
/// answered a read but before the mirror kept the answer. The answer is not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_that_overtakes_an_answer_wins() {
    let (mirrored, plain) = pair().await;
    let mirror = mirrored.mirror().unwrap().clone();
    let key = keys(&["w"]);
    plain.set("w", "old").await.unwrap();
    mirror.pause_before_keeping(Duration::from_millis(500));
    let asked = mirror.round_trips();
    let reading = {
        let (m, key) = (mirrored.clone(), key.clone());
        tokio::spawn(async move { m.read_many(&key).await.unwrap() })
    };
    // Redis answers in well under a millisecond on loopback; the reader then pauses for 500.
    until(|| async { mirror.round_trips() > asked }, "the read is sent").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    plain.set("w", "new").await.unwrap();
    assert_eq!(reading.await.unwrap()[0].as_deref(), Some("old"), "the read answers what Redis said");
    mirror.pause_before_keeping(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(mirrored.read_many(&key).await.unwrap()[0].as_deref(), Some("new"), "the old answer was not kept");
    assert!(mirror.is_tracking());
}

/// The process's own write is seen by its next read at once, before Redis's push arrives.
#[tokio::test]
async fn a_write_through_the_same_connection_is_read_back_at_once() {
    let (mirrored, _plain) = pair().await;
    let key = keys(&["own"]);
    mirrored.set("own", "1").await.unwrap();
    assert_eq!(mirrored.read_many(&key).await.unwrap()[0].as_deref(), Some("1"));
    for i in 2..50 {
        mirrored.set_px("own", &i.to_string(), Duration::from_secs(60)).await.unwrap();
        assert_eq!(mirrored.read_many(&key).await.unwrap()[0], Some(i.to_string()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tracking_connection_forgets_everything() {
    let (mirrored, plain) = pair().await;
    let mirror = mirrored.mirror().unwrap().clone();
    let k = keys(&["k"]);
    plain.set("k", "before").await.unwrap();
    assert_eq!(mirrored.read_many(&k).await.unwrap()[0].as_deref(), Some("before"));
    let first = mirror.client_id();
    let mut admin = plain.conn();
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(first).query_async(&mut admin).await.unwrap();
    assert_eq!(killed, 1);
    // Changed while no connection tracks it: no invalidation will ever arrive for it.
    plain.set("k", "after").await.unwrap();
    until(|| async { mirror.client_id() != first && mirror.is_tracking() }, "a new tracking connection").await;
    assert_eq!(mirrored.read_many(&k).await.unwrap()[0].as_deref(), Some("after"), "nothing kept from before");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_given_back_as_its_work_is_done_marks_it_done_in_the_same_call() {
    use platform::redis::Lock;
    let (mirrored, plain) = pair().await;
    let (lease, wait) = (Duration::from_secs(5), Duration::from_millis(50));
    // The marker is read through the mirror first, so a stale memory of "absent" would show.
    assert_eq!(mirrored.read_many(&keys(&["paid"])).await.unwrap(), vec![None]);
    let Lock::Held(guard) = mirrored.lock_unless("account", "paid", lease, wait).await.unwrap() else {
        panic!("a free lock was not taken")
    };
    assert!(matches!(plain.lock_unless("account", "paid", lease, wait).await.unwrap(), Lock::Busy));
    guard.release_done("key-1", Duration::from_secs(60)).await.unwrap();
    assert_eq!(mirrored.read_many(&keys(&["paid"])).await.unwrap(), vec![Some("key-1".into())], "own write read back");
    match plain.lock_unless("account", "paid", lease, wait).await.unwrap() {
        Lock::Done(value) => assert_eq!(value, "key-1"),
        _ => panic!("the work is not marked done"),
    }
    assert_eq!(plain.get("lock:account").await.unwrap(), None, "the lock is given back");
    let ttl: i64 = redis::cmd("PTTL").arg(plain.key("paid")).query_async(&mut plain.conn()).await.unwrap();
    assert!((1..=60_000).contains(&ttl), "the marker expires: {ttl}");
}
