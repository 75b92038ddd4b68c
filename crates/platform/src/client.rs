//! An HTTP client for calling another service: timeouts, W3C trace propagation, problem decoding,
//! a circuit breaker, and the `http_client_requests_total{target,status}` counter (every attempt
//! on the wire counted once; calls refused by an open breaker never reach the wire).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use contracts::problem::Code;

use crate::credential::Signer;
use crate::problem::ApiError;
use crate::telemetry::current_trace_headers;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{target} unavailable: {detail}")]
    Unavailable { target: &'static str, detail: String },
    #[error("{target} answered {status} {code}: {detail}")]
    Problem { target: &'static str, status: u16, code: String, detail: String },
    #[error("{target} sent an unreadable response: {detail}")]
    Decode { target: &'static str, detail: String },
    #[error("{target} is failing; not calling it for {retry_after_secs} s")]
    CircuitOpen { target: &'static str, retry_after_secs: u64 },
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::Problem { status: 404, .. })
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Problem { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The peer's refusal, as a code of the shared table (`None` for an unknown code or no refusal).
    pub fn refusal(&self) -> Option<Code> {
        self.code().and_then(Code::parse)
    }
}

/// A dependency failing is a 503 for our caller. A peer's refusal is the caller's to map into its
/// own answer, explicitly (`ClientError::refusal`); one it did not map means we asked the peer
/// something we should not have — a bug here, answered 500 naming the peer's refusal, never passed
/// off as our own answer.
impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match &e {
            // The peer's own words (and addresses) go to the log, not to the caller.
            ClientError::Problem { target, code, .. } => {
                tracing::error!(error = %e, "a peer refused unexpectedly");
                ApiError::internal(format!("{target} refused unexpectedly ({code})"))
            }
            ClientError::CircuitOpen { retry_after_secs, .. } => {
                ApiError::unavailable(e.to_string()).with_retry_after(*retry_after_secs)
            }
            ClientError::Unavailable { target, .. } | ClientError::Decode { target, .. } => {
                tracing::warn!(error = %e, "a peer is unavailable");
                ApiError::unavailable(format!("{target} is unavailable; retry shortly"))
            }
        }
    }
}

/// A service's answer as it came.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

/// The problem document a body is, if it is one (it has a `code`).
fn problem_of(body: &[u8]) -> Option<ProblemBody> {
    serde_json::from_slice::<ProblemBody>(body).ok().filter(|p| !p.code.is_empty())
}

#[derive(serde::Deserialize)]
struct ProblemBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: String,
}

/// Timeouts and breaker settings for outbound calls, from `HTTP_CLIENT_TIMEOUT_MS`,
/// `CIRCUIT_FAILURES` and `CIRCUIT_OPEN_MS`.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    pub timeout: Duration,
    /// Consecutive failures that open the breaker.
    pub failures_to_open: u32,
    /// How long an open breaker refuses calls before letting one trial through.
    pub open_for: Duration,
    /// This caller's key: each call carries a token for its target (see [`crate::credential`]).
    pub signer: Arc<Signer>,
}

impl ClientSettings {
    /// Signed with `signer`, the caller's own key (its `Common`'s credentials): there is no
    /// unsigned call.
    pub fn from(env: &crate::config::Env, signer: &Arc<Signer>) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            timeout: env.millis("HTTP_CLIENT_TIMEOUT_MS", 3000)?,
            failures_to_open: env.parse("CIRCUIT_FAILURES", "5")?,
            open_for: env.millis("CIRCUIT_OPEN_MS", 5000)?,
            signer: signer.clone(),
        })
    }
}

/// A call let through the breaker. A call dropped before it settles (its caller timed out or was
/// cancelled) gives its trial back, or an open breaker would wait for that trial forever.
struct Admission<'a> {
    client: &'a ServiceClient,
    settled: bool,
}

impl Admission<'_> {
    fn settle(mut self, dependency_failed: bool) {
        self.settled = true;
        self.client.outcome(dependency_failed);
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.client.breaker.lock().unwrap_or_else(|p| p.into_inner()).trial_in_flight = false;
        }
    }
}

/// Closed → (n consecutive failures) → open for a while → one trial call → closed or open again.
#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

#[derive(Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    base: String,
    target: &'static str,
    audience: &'static str,
    settings: ClientSettings,
    breaker: Arc<Mutex<Breaker>>,
}

impl ServiceClient {
    /// A client of the service `target` (also the audience of its credentials).
    pub fn new(target: &'static str, base: &str, settings: ClientSettings) -> Result<Self, reqwest::Error> {
        Self::with_audience(target, target, base, settings)
    }

    /// A client named `target` (its breaker and metrics) of the service `audience`.
    pub fn with_audience(
        target: &'static str,
        audience: &'static str,
        base: &str,
        settings: ClientSettings,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            target,
            audience,
            settings,
            breaker: Arc::new(Mutex::new(Breaker::default())),
        })
    }

    fn admit(&self) -> Result<Admission<'_>, ClientError> {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        let Some(until) = b.open_until else { return Ok(Admission { client: self, settled: false }) };
        let now = Instant::now();
        if now < until || b.trial_in_flight {
            let secs = until.saturating_duration_since(now).as_secs_f64().ceil().max(1.0) as u64;
            return Err(ClientError::CircuitOpen { target: self.target, retry_after_secs: secs });
        }
        b.trial_in_flight = true;
        Ok(Admission { client: self, settled: false })
    }

    fn outcome(&self, dependency_failed: bool) {
        let mut b = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        b.trial_in_flight = false;
        if !dependency_failed {
            if b.open_until.is_some() {
                metrics::gauge!("http_client_breaker_open", "target" => self.target).set(0.0);
            }
            b.failures = 0;
            b.open_until = None;
            return;
        }
        b.failures = b.failures.saturating_add(1);
        if b.failures >= self.settings.failures_to_open || b.open_until.is_some() {
            if b.open_until.is_none() {
                tracing::warn!(target_service = self.target, "circuit opened");
                metrics::gauge!("http_client_breaker_open", "target" => self.target).set(1.0);
            }
            b.open_until = Some(Instant::now() + self.settings.open_for);
        }
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        // Reads are safe to retry once after a connection-level failure (not after an open breaker).
        match self.send::<(), T>(Method::GET, path, None, &[]).await {
            Err(ClientError::Unavailable { .. }) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                self.send::<(), T>(Method::GET, path, None, &[]).await
            }
            other => other,
        }
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        headers: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        self.send(Method::POST, path, Some(body), headers).await
    }

    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        headers: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let target = self.target;
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Decode { target, detail: e.to_string() })?),
            None => None,
        };
        let raw = self.exchange(method, path, body, headers).await?;
        let status = raw.status;
        let problem = problem_of(&raw.body);
        if status.is_success() {
            return serde_json::from_slice(&raw.body)
                .map_err(|e| ClientError::Decode { target, detail: e.to_string() });
        }
        if status.is_server_error() {
            let detail =
                problem.map_or_else(|| format!("HTTP {status}"), |p| format!("HTTP {status} {}: {}", p.code, p.detail));
            return Err(ClientError::Unavailable { target, detail });
        }
        let p = problem.unwrap_or(ProblemBody { code: String::new(), detail: String::new() });
        Err(ClientError::Problem { target, status: status.as_u16(), code: p.code, detail: p.detail })
    }

    /// One request as it is, answered as it is (any status, the body's bytes): for a gateway that
    /// passes a service's answer through. Only silence, gateways and unexplained 5xx are errors.
    pub async fn forward(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let raw = self.exchange(method, path, body, headers).await?;
        if raw.status.is_server_error() && problem_of(&raw.body).is_none() {
            return Err(ClientError::Unavailable { target: self.target, detail: format!("HTTP {}", raw.status) });
        }
        Ok(raw)
    }

    /// One call as a client span (OpenTelemetry HTTP semantic conventions) whose context rides
    /// on the request.
    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let span = tracing::info_span!(
            "http.client",
            "otel.name" = %format!("{method} {}", self.target),
            "otel.kind" = "client",
            "http.request.method" = %method,
            "server.address" = self.target,
            "url.path" = path,
            "http.response.status_code" = tracing::field::Empty,
            "otel.status_code" = tracing::field::Empty,
        );
        let result = self.wire(method, path, body, headers).instrument(span.clone()).await;
        match &result {
            Ok(r) => {
                span.record("http.response.status_code", r.status.as_u16());
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        result
    }

    /// The wire: trace context, breaker, timeout, counting.
    async fn wire(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let credential = self
            .settings
            .signer
            .token_for(self.audience)
            .map_err(|e| ClientError::Unavailable { target: self.target, detail: e.to_string() })?;
        let mut req = self.http.request(method, format!("{}{}", self.base, path)).bearer_auth(credential);
        for (k, v) in current_trace_headers() {
            req = req.header(k, v);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b);
        }
        let target = self.target;
        let admission = self.admit()?;
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!("http_client_requests_total", "target" => target, "status" => "error").increment(1);
                admission.settle(true);
                return Err(ClientError::Unavailable { target, detail: e.without_url().to_string() });
            }
        };
        let status = resp.status();
        metrics::counter!("http_client_requests_total", "target" => target, "status" => status.as_u16().to_string())
            .increment(1);
        let header = |name: reqwest::header::HeaderName| {
            resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        let (content_type, retry_after) = (header(reqwest::header::CONTENT_TYPE), header(reqwest::header::RETRY_AFTER));
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                admission.settle(true);
                return Err(ClientError::Unavailable { target, detail: e.without_url().to_string() });
            }
        };
        // A dependency that answers with a problem is alive (e.g. 503 ACCOUNT_BUSY under contention);
        // only silence, gateways and unexplained 5xx count against the breaker.
        admission.settle(status.is_server_error() && problem_of(&bytes).is_none());
        Ok(RawResponse { status, content_type, retry_after, body: bytes.to_vec() })
    }
}

#[cfg(test)]
mod breaker_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_trial_call_dropped_by_its_caller_does_not_keep_the_breaker_open() {
        // A server that accepts and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let settings = ClientSettings {
            timeout: Duration::from_millis(100),
            failures_to_open: 1,
            open_for: Duration::from_millis(20),
            signer: crate::credential::generated("interest").unwrap().signer,
        };
        let client = ServiceClient::new("silent", &format!("http://127.0.0.1:{port}"), settings).unwrap();
        let first = client.send::<(), serde_json::Value>(Method::GET, "/", None, &[]).await;
        assert!(matches!(first, Err(ClientError::Unavailable { .. })), "{first:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
        // The trial call, cancelled by its caller before the client's own timeout.
        let cancelled = tokio::time::timeout(
            Duration::from_millis(10),
            client.send::<(), serde_json::Value>(Method::GET, "/", None, &[]),
        )
        .await;
        assert!(cancelled.is_err());
        let next = client.send::<(), serde_json::Value>(Method::GET, "/", None, &[]).await;
        assert!(matches!(next, Err(ClientError::Unavailable { .. })), "the next call went on the wire: {next:?}");
    }
}
