//! An HTTP client for calling another service: timeouts, W3C trace propagation, problem decoding,
//! and the `http_client_requests_total{target,status}` counter (every attempt counted once).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

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
}

/// A dependency failing is a 503 for our caller; its 4xx answers are the caller's to map.
impl From<ClientError> for ApiError {
    fn from(e: ClientError) -> Self {
        match &e {
            ClientError::Problem { status, code, detail, .. } if *status < 500 => {
                ApiError::new(StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST), code, detail.clone())
            }
            _ => ApiError::unavailable(e.to_string()),
        }
    }
}

#[derive(serde::Deserialize)]
struct ProblemBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    detail: String,
}

#[derive(Clone)]
pub struct ServiceClient {
    http: reqwest::Client,
    base: String,
    target: &'static str,
}

impl ServiceClient {
    pub fn new(target: &'static str, base: &str, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_millis(500))
            .pool_max_idle_per_host(64)
            .tcp_nodelay(true)
            .build()?;
        Ok(Self { http, base: base.trim_end_matches('/').to_string(), target })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        // Reads are safe to retry once after a connection-level failure.
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
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        for (k, v) in current_trace_headers() {
            req = req.header(k, v);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let target = self.target;
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!("http_client_requests_total", "target" => target, "status" => "error").increment(1);
                return Err(ClientError::Unavailable { target, detail: e.to_string() });
            }
        };
        let status = resp.status();
        metrics::counter!("http_client_requests_total", "target" => target, "status" => status.as_u16().to_string())
            .increment(1);
        let bytes = resp.bytes().await.map_err(|e| ClientError::Unavailable { target, detail: e.to_string() })?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode { target, detail: e.to_string() });
        }
        if status.is_server_error() {
            return Err(ClientError::Unavailable { target, detail: format!("HTTP {status}") });
        }
        let p: ProblemBody =
            serde_json::from_slice(&bytes).unwrap_or(ProblemBody { code: String::new(), detail: String::new() });
        Err(ClientError::Problem { target, status: status.as_u16(), code: p.code, detail: p.detail })
    }
}
