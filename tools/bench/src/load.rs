//! Load generation: closed loop (n connections, each sending its next request when the last one
//! answers) and open loop (a fixed arrival rate; latency counted from the intended start, so a
//! stalled server is not hidden by fewer requests — no coordinated omission).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// Latencies and errors of one measurement.
#[derive(Default, Clone)]
pub struct Stats {
    pub micros: Vec<u64>,
    pub errors: u64,
    pub elapsed: Duration,
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
    }

    pub fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} {:>9.0}/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  n={} errors={}",
            self.per_second(),
            self.ms(0.50),
            self.ms(0.99),
            self.ms(0.999),
            self.ok(),
            self.errors
        )
    }
}

/// `connections` workers call `request(worker, i)` until `duration` has passed.
pub async fn closed<F, Fut>(connections: usize, duration: Duration, request: F) -> Stats
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
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
                if request(w, i).await {
                    s.micros.push(t.elapsed().as_micros() as u64);
                } else {
                    s.errors += 1;
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
pub async fn open<F, Fut>(rate: u64, duration: Duration, request: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let stats = Arc::new(Mutex::new(Stats::default()));
    let start = Instant::now();
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval * i as u32;
        tokio::time::sleep_until(intended.into()).await;
        let fut = request(i);
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            let ok = fut.await;
            let mut s = stats.lock().await;
            if ok {
                s.micros.push(intended.elapsed().as_micros() as u64);
            } else {
                s.errors += 1;
            }
        }));
    }
    futures::future::join_all(tasks).await;
    let mut s = stats.lock().await.clone();
    s.elapsed = start.elapsed();
    s
}
