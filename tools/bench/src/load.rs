//! Load generation: closed loop (n connections, each sending its next request when the last one
//! answers) and open loop (a fixed arrival rate; latency counted from the intended start, so a
//! stalled server is not hidden by fewer requests — no coordinated omission).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// Latencies and errors of one measurement.
#[derive(Default, Clone)]
pub struct Stats {
    pub micros: Vec<u64>,
    pub errors: u64,
    pub elapsed: Duration,
    /// The scenario ran out of what it draws from (unpaid accounts) before its time was up.
    pub exhausted: bool,
}

/// What one request of a closed loop came to.
pub enum Attempt {
    Done,
    Failed,
    /// Nothing left to send (a pool of accounts used up): the worker stops, not an error.
    Exhausted,
}

impl From<bool> for Attempt {
    fn from(ok: bool) -> Self {
        if ok {
            Attempt::Done
        } else {
            Attempt::Failed
        }
    }
}

impl Stats {
    pub fn ok(&self) -> u64 {
        self.micros.len() as u64
    }

    pub fn per_second(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The q-quantile in milliseconds (nearest rank).
    pub fn ms(&self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let mut v = self.micros.clone();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        v[rank - 1] as f64 / 1000.0
    }

    pub fn merge(&mut self, other: Stats) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        self.exhausted |= other.exhausted;
    }

    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  n={} errors={}{}",
            self.per_second(),
            self.ms(0.50),
            self.ms(0.99),
            self.ms(0.999),
            self.ok(),
            self.errors,
            if self.exhausted { "  (ended early: no unpaid account left)" } else { "" }
        )
    }
}

/// One request per item, one at a time (c=1), each timed.
pub async fn each<T, F, Fut>(items: &[T], request: F) -> Stats
where
    T: Copy,
    F: Fn(T) -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    let mut s = Stats::default();
    for item in items {
        let t = Instant::now();
        if request(*item).await {
            s.micros.push(t.elapsed().as_micros() as u64);
        } else {
            s.errors += 1;
        }
    }
    s.elapsed = start.elapsed();
    s
}

/// `connections` workers call `request(worker, i)` until `duration` has passed.
pub async fn closed<F, Fut, A>(connections: usize, duration: Duration, request: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = A> + Send,
    A: Into<Attempt>,
{
    let request = Arc::new(request);
    let start = Instant::now();
    let deadline = start + duration;
    let workers = (0..connections).map(|w| {
        let request = request.clone();
        tokio::spawn(async move {
            let mut s = Stats::default();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                match request(w, i).await.into() {
                    Attempt::Done => s.micros.push(t.elapsed().as_micros() as u64),
                    Attempt::Failed => s.errors += 1,
                    Attempt::Exhausted => {
                        s.exhausted = true;
                        break;
                    }
                }
                i += 1;
            }
            s
        })
    });
    let mut total = Stats::default();
    for s in futures::future::join_all(workers).await.into_iter().flatten() {
        total.merge(s);
    }
    total.elapsed = start.elapsed();
    total
}

/// Starts `rate` requests per second for `duration`, whatever the server does.
pub async fn open<F, Fut, A>(rate: u64, duration: Duration, request: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Attempt>,
{
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    open_paced(rate, move |i| i < total, request).await
}

/// Like [`open`], until `stop` is set.
pub async fn open_until<F, Fut, A>(rate: u64, stop: Arc<AtomicBool>, request: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Attempt>,
{
    open_paced(rate, move |_| !stop.load(Ordering::Relaxed), request).await
}

async fn open_paced<F, Fut, A>(rate: u64, more: impl Fn(u64) -> bool, request: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Attempt>,
{
    let stats = Arc::new(Mutex::new(Stats::default()));
    // Bounded in flight (like a client's connection pool): beyond it requests queue, and the queueing
    // shows in their latency, which counts from the intended start.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut tasks = Vec::new();
    let mut i = 0u64;
    while more(i) {
        let intended = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended.into()).await;
        let fut = request(i);
        i += 1;
        let (stats, in_flight) = (stats.clone(), in_flight.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(_permit) = in_flight.acquire_owned().await else { return };
            let attempt = fut.await.into();
            let mut s = stats.lock().await;
            match attempt {
                Attempt::Done => s.micros.push(intended.elapsed().as_micros() as u64),
                Attempt::Failed => s.errors += 1,
                Attempt::Exhausted => s.exhausted = true,
            }
        }));
    }
    futures::future::join_all(tasks).await;
    let mut s = stats.lock().await.clone();
    s.elapsed = start.elapsed();
    s
}
