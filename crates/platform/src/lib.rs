//! Infrastructure shared by the five services, and nothing about accounts, customers or payouts:
//! env-based configuration, telemetry (JSON logs and OpenTelemetry), the HTTP server bootstrap
//! (health, metrics, OpenAPI, problems, graceful shutdown), an HTTP client with timeouts and trace
//! propagation, the business-date clock, revisions (the mechanism; the keys are
//! `contracts::revision`), and thin wrappers over PostgreSQL, Redis and (feature `kafka`) Kafka.

pub mod body;
pub mod client;
pub mod clock;
pub mod config;
pub mod credential;
pub mod db;
pub mod extract;
pub mod fault;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod openapi;
pub mod problem;
pub mod redis;
pub mod redis_mirror;
pub mod revision;
pub mod runtime;
pub mod server;
pub mod telemetry;

pub use problem::{ApiError, ApiResult};

/// Every program built on this crate allocates with mimalloc: under warm estimates glibc's malloc
/// and free were ~17% of the interest service's CPU (`perf`, BENCHMARKS.md), most of it in
/// `_int_malloc`/`_int_free` and their consolidation across threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
