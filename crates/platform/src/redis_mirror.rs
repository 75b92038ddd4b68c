//! Redis keys kept in process, invalidated by Redis itself (server-assisted client-side caching:
//! `CLIENT TRACKING` on a RESP3 connection of their own). A key read through the mirror is
//! remembered with its value; Redis then pushes an invalidation when anyone changes, expires or
//! evicts it, and the mirror forgets it. A read whose keys are all remembered costs no round trip.
//!
//! Fail closed: the mirror answers from memory only while its tracking connection is up and
//! answered a ping within the last [`PING_EVERY`] + [`PING_TIMEOUT`] (a connection that fails on
//! writing ends without telling: its next ping notices, so that second is the most a lost
//! invalidation can be served stale). When the connection drops (or
//! a ping fails) everything remembered is forgotten and reads go to Redis until a new connection
//! tracks again. A read racing an invalidation never leaves a stale value behind: before asking
//! Redis, a reader marks each key with a token of its own; an invalidation removes the mark, and the
//! reader keeps the value only if its mark is still there (the pattern Redis's own documentation
//! gives for this race).
//!
//! Why not the `redis` crate's own client-side cache (`cache-aio`): it is marked experimental, and
//! it stores a reply after the push that invalidated it may already have been applied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, PushInfo, PushKind, Value};
use tokio::sync::Notify;

/// How often the tracking connection is pinged, and how long a ping may take.
pub const PING_EVERY: Duration = Duration::from_millis(500);
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);
/// The most memory (keys and values, in bytes) remembered; past it everything is forgotten at once
/// (a crude bound: with an estimate entry of ~1 KB per account, about 200,000 accounts' worth).
const MAX_BYTES: usize = 256 * 1024 * 1024;

enum Slot {
    /// A reader asked Redis for the key; kept only if this mark is still here when it answers.
    Asked(u64),
    /// The value, good until the key's time to live ends (Redis may push that late: it deletes an
    /// expired key when it samples or touches it, and a key read from memory is never touched).
    Known(Option<String>, Option<Instant>),
}

/// The keys remembered, and about how many bytes they take.
#[derive(Default)]
struct Slots {
    map: HashMap<String, Slot>,
    bytes: usize,
}

fn size(key: &str, slot: &Slot) -> usize {
    key.len() + if let Slot::Known(Some(v), _) = slot { v.len() } else { 0 }
}

impl Slots {
    fn insert(&mut self, key: String, slot: Slot) {
        self.bytes += size(&key, &slot);
        if let Some(old) = self.map.insert(key.clone(), slot) {
            self.bytes = self.bytes.saturating_sub(size(&key, &old));
        }
        if self.bytes > MAX_BYTES {
            self.clear();
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes = self.bytes.saturating_sub(size(key, &old));
        }
    }

    fn get(&self, key: &str) -> Option<&Slot> {
        self.map.get(key)
    }

    fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }
}

#[derive(Default)]
struct Shared {
    slots: Mutex<Slots>,
    /// True while a tracking connection is up and answering.
    tracking: AtomicBool,
    next_mark: AtomicU64,
    /// Bumped whenever everything is forgotten: a reader that started before keeps nothing.
    generation: AtomicU64,
    /// The tracking connection whose pushes count (0: none); an older one's disconnection is news
    /// of nothing.
    current: AtomicU64,
    next_connection: AtomicU64,
    /// Reads that went to Redis (the rest were answered from memory, or not tracking).
    round_trips: AtomicU64,
    /// The tracking connection's `CLIENT ID` (0: none yet).
    client_id: AtomicI64,
    /// A pause between Redis's answer and keeping it, in ms (tests: the window an invalidation can
    /// arrive in).
    pause_before_keeping_ms: AtomicU64,
}

impl Shared {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops answering from memory and forgets everything (until a new connection tracks).
    fn forget_all(&self) {
        self.tracking.store(false, Ordering::SeqCst);
        self.forget_values();
    }

    /// Forgets every value; what readers in flight asked for is not kept.
    fn forget_values(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.slots().clear();
    }

    /// Applies a push from tracking connection `from`, in the order Redis sent it.
    fn pushed(&self, from: u64, lost: &Notify, push: PushInfo) {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    let mut slots = self.slots();
                    for key in keys {
                        if let Ok(key) = redis::from_redis_value::<String>(key) {
                            slots.remove(&key);
                        }
                    }
                }
                // A null list: the whole database was flushed.
                _ => self.forget_values(),
            },
            PushKind::Disconnection => {
                if self.current.load(Ordering::SeqCst) == from {
                    self.forget_all();
                }
                lost.notify_one();
            }
            _ => {}
        }
    }
}

/// The keys read through it, as Redis holds them (see the module's documentation).
#[derive(Clone)]
pub struct Mirror {
    shared: Arc<Shared>,
    /// The tracking connection and its id: an answer it gives is kept only while it is still the
    /// current one (a slow answer on a connection given up on is not).
    conn: Arc<tokio::sync::RwLock<Option<(u64, MultiplexedConnection)>>>,
}

impl Mirror {
    /// Starts tracking through connections made by `client` (its URL, credentials and TLS, switched
    /// to RESP3); keeps reconnecting in the background for the life of the process.
    pub fn start(client: redis::Client) -> Self {
        let mirror = Self { shared: Arc::new(Shared::default()), conn: Arc::default() };
        tokio::spawn(mirror.clone().keep_tracking(client));
        mirror
    }

    /// Whether reads may be answered from memory now.
    pub fn is_tracking(&self) -> bool {
        self.shared.tracking.load(Ordering::SeqCst)
    }

    /// Pauses every read that went to Redis between its answer and keeping it (tests only: opens
    /// the window in which an invalidation can overtake the answer).
    #[doc(hidden)]
    pub fn pause_before_keeping(&self, pause: Duration) {
        self.shared.pause_before_keeping_ms.store(pause.as_millis() as u64, Ordering::SeqCst);
    }

    /// Forgets `keys` (full names) now, a mark of a read in flight included, so the next read of
    /// each goes to Redis (this process has just written them).
    pub fn forget(&self, keys: &[String]) {
        let mut slots = self.shared.slots();
        for k in keys {
            slots.remove(k);
        }
    }

    /// How many reads went to Redis through the tracking connection so far.
    pub fn round_trips(&self) -> u64 {
        self.shared.round_trips.load(Ordering::SeqCst)
    }

    /// The latest tracking connection's `CLIENT ID` (0 before the first), for operators and tests.
    pub fn client_id(&self) -> i64 {
        self.shared.client_id.load(Ordering::SeqCst)
    }

    /// The values of `keys` (full names), from memory when every one is remembered, else from
    /// Redis through the tracking connection (then remembered). `None` when not tracking: the
    /// caller reads Redis the ordinary way.
    pub async fn read(&self, keys: &[String]) -> Option<Vec<Option<String>>> {
        if !self.is_tracking() {
            count("off");
            return None;
        }
        {
            let slots = self.shared.slots();
            let now = Instant::now();
            let known: Option<Vec<Option<String>>> = keys
                .iter()
                .map(|k| match slots.get(k) {
                    Some(Slot::Known(v, until)) if until.is_none_or(|t| now < t) => Some(v.clone()),
                    _ => None,
                })
                .collect();
            if known.is_some() {
                count("hit");
                return known;
            }
        }
        count("miss");
        let generation = self.shared.generation.load(Ordering::SeqCst);
        let (connection, mut conn) = self.conn.read().await.clone()?;
        let mark = self.shared.next_mark.fetch_add(1, Ordering::SeqCst);
        {
            let mut slots = self.shared.slots();
            for k in keys {
                slots.insert(k.clone(), Slot::Asked(mark));
            }
        }
        // The values and their times to live, in one round trip.
        let mut ask = redis::pipe();
        ask.cmd("MGET").arg(keys);
        for k in keys {
            ask.cmd("PTTL").arg(k);
        }
        self.shared.round_trips.fetch_add(1, Ordering::SeqCst);
        let asked_at = Instant::now();
        let answers: Vec<Value> = ask.query_async(&mut conn).await.ok()?;
        let mut answers = answers.into_iter();
        let values: Vec<Option<String>> = redis::from_redis_value(&answers.next()?).ok()?;
        let ttls: Vec<i64> = answers.map(|v| redis::from_redis_value(&v).unwrap_or(0)).collect();
        let pause = self.shared.pause_before_keeping_ms.load(Ordering::SeqCst);
        if pause > 0 {
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
        let still = self.shared.generation.load(Ordering::SeqCst) == generation
            && self.shared.current.load(Ordering::SeqCst) == connection;
        if still && values.len() == keys.len() {
            let mut slots = self.shared.slots();
            for ((k, v), ttl) in keys.iter().zip(&values).zip(ttls) {
                // -1: no time to live; -2: no key (a value of None — or one that expired between the
                // two reads, not kept); 0..: counted from the ask.
                let until = (ttl >= 0).then(|| asked_at + Duration::from_millis(ttl as u64));
                if matches!(slots.get(k), Some(Slot::Asked(m)) if *m == mark) {
                    if ttl == -2 && v.is_some() {
                        slots.remove(k);
                    } else {
                        slots.insert(k.clone(), Slot::Known(v.clone(), until));
                    }
                }
            }
        }
        Some(values)
    }

    /// Connects, turns tracking on, and pings; on any failure forgets everything and starts over.
    async fn keep_tracking(self, client: redis::Client) {
        let client = match resp3(&client) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "redis mirror unavailable: every read goes to Redis");
                return;
            }
        };
        loop {
            match self.track(&client).await {
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "redis mirror not tracking; reads go to Redis until it is"),
            }
            // The connection is no longer the current one before anything is forgotten, and its
            // generation is over once it is: a late answer on it keeps nothing.
            self.shared.current.store(0, Ordering::SeqCst);
            *self.conn.write().await = None;
            self.shared.forget_all();
            tokio::time::sleep(PING_EVERY).await;
        }
    }

    /// One tracking connection, until it fails.
    async fn track(&self, client: &redis::Client) -> Result<(), redis::RedisError> {
        let (shared, id) = (self.shared.clone(), self.shared.next_connection.fetch_add(1, Ordering::SeqCst) + 1);
        let lost = Arc::new(Notify::new());
        let on_push = lost.clone();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(PING_TIMEOUT)
            .set_response_timeout(PING_TIMEOUT)
            .set_push_sender(move |push: PushInfo| {
                shared.pushed(id, &on_push, push);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
        self.shared.current.store(id, Ordering::SeqCst);
        redis::cmd("CLIENT").arg("TRACKING").arg("ON").query_async::<()>(&mut conn).await?;
        let client_id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut conn).await?;
        self.shared.client_id.store(client_id, Ordering::SeqCst);
        *self.conn.write().await = Some((id, conn.clone()));
        self.shared.tracking.store(true, Ordering::SeqCst);
        tracing::info!("redis mirror tracking");
        loop {
            tokio::select! {
                _ = lost.notified() => {
                    return Err(redis::RedisError::from((redis::ErrorKind::IoError, "tracking connection lost")));
                }
                _ = tokio::time::sleep(PING_EVERY) => {
                    redis::cmd("PING").query_async::<String>(&mut conn).await?;
                }
            }
        }
    }
}

/// `client`'s connection settings with RESP3, which carries the invalidation pushes.
fn resp3(client: &redis::Client) -> redis::RedisResult<redis::Client> {
    let mut info = client.get_connection_info().clone();
    info.redis.protocol = redis::ProtocolVersion::RESP3;
    redis::Client::open(info)
}

fn count(result: &'static str) {
    metrics::counter!("redis_mirror_reads_total", "result" => result).increment(1);
}
