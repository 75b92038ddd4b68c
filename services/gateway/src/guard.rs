//! What every `/v1/…` request goes through before its handler, in this order: its bearer token
//! verified (401), its route's scope (403, audited), the ops limit per subject (429), then — for
//! audited routes — its body read (only now, within the route's limit), its audit entry written
//! and committed (503 if it cannot be: nothing unaudited is acted on), the handler, and its
//! outcome appended. [`RULES`] is the one table of each route's scopes; a test holds it to the
//! OpenAPI document.

use axum::body::Body;
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use contracts::problem::Code;
use platform::problem::ProblemCode;
use platform::ApiError;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Entry};
use crate::auth::{Caller, Scope};
use crate::error::GatewayError;
use crate::limits::Kind;
use crate::state::AppState;

/// The longest an audit write may hold a request (a stalled database must not hold them all).
const AUDIT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub const CUSTOMER: &[Scope] = &[Scope::Customer];
pub const READ: &[Scope] = &[Scope::OpsRead, Scope::OpsWrite];
pub const WRITE: &[Scope] = &[Scope::OpsWrite];
pub const RUNS: &[Scope] = &[Scope::OpsWrite, Scope::Batch];
pub const RUNS_READ: &[Scope] = &[Scope::OpsRead, Scope::OpsWrite, Scope::Batch];

/// A route's rule: who may call it, whether it is audited, and whether it takes a batch body.
pub struct Rule {
    pub method: &'static str,
    pub route: &'static str,
    pub scopes: &'static [Scope],
    pub audited: bool,
    pub batch: bool,
}

const fn rule(method: &'static str, route: &'static str, scopes: &'static [Scope], audited: bool) -> Rule {
    Rule { method, route, scopes, audited, batch: false }
}

/// Every `/v1/…` route of the gateway. Audited: every money-moving or ops request, and a
/// customer's payout history.
pub const RULES: &[Rule] = &[
    rule("GET", "/v1/me/accounts", CUSTOMER, false),
    rule("GET", "/v1/me/accounts/{id}", CUSTOMER, false),
    rule("GET", "/v1/me/accounts/{id}/interest", CUSTOMER, false),
    rule("POST", "/v1/me/accounts/{id}/payouts", CUSTOMER, true),
    rule("GET", "/v1/me/accounts/{id}/payouts", CUSTOMER, true),
    Rule { method: "POST", route: "/v1/ops/payout-runs", scopes: RUNS, audited: true, batch: true },
    rule("GET", "/v1/ops/payout-runs", RUNS_READ, true),
    rule("GET", "/v1/ops/payout-runs/{id}", RUNS_READ, true),
    rule("POST", "/v1/ops/payout-runs/{id}/cancel", RUNS, true),
    rule("GET", "/v1/ops/payouts", READ, true),
    rule("GET", "/v1/ops/dead-letters", READ, true),
    rule("POST", "/v1/ops/dead-letters/replay", WRITE, true),
    rule("GET", "/v1/ops/tax/withholdings", READ, true),
    rule("GET", "/v1/ops/tax/reports/monthly", READ, true),
    rule("GET", "/v1/ops/clock", READ, true),
    rule("PUT", "/v1/ops/clock", WRITE, true),
    rule("GET", "/v1/ops/reconcile", READ, true),
    rule("GET", "/v1/ops/rollout", READ, true),
    Rule { method: "PUT", route: "/v1/ops/rollout", scopes: WRITE, audited: true, batch: true },
    rule("GET", "/v1/ops/rollout/changes", READ, true),
    rule("GET", "/v1/ops/rollout/customers/{id}", READ, true),
    rule("GET", "/v1/ops/shadow-mismatches", READ, true),
    rule("GET", "/v1/ops/tax-rules", READ, true),
    rule("POST", "/v1/ops/tax-rules", WRITE, true),
];

pub fn rule_for(method: &str, route: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.method == method && r.route == route)
}

/// The guard of every `/v1/…` route (a route layer: the route is matched, its body not read).
pub async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_default();
    // HEAD is served by a GET route (axum), so it is ruled as that GET.
    let method = if req.method() == axum::http::Method::HEAD { "GET".to_string() } else { req.method().to_string() };
    let Some(rule) = rule_for(&method, &route) else {
        // A route without a rule is a bug: refuse rather than serve it unguarded.
        tracing::error!(route, method, "a gateway route has no rule");
        return ApiError::internal("this route has no access rule").into_response();
    };
    let (mut parts, body) = req.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &s).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let account_id = if route.starts_with("/v1/me/accounts/{id}") {
        // The id as the handler will read it (percent-decoded), not the raw path's text.
        RawPathParams::from_request_parts(&mut parts, &s)
            .await
            .ok()
            .and_then(|p| p.iter().find(|(k, _)| *k == "id").and_then(|(_, v)| v.parse::<Uuid>().ok()))
    } else {
        None
    };
    let request_id = header(&parts, "x-request-id").unwrap_or_default();
    let client_request_id =
        header(&parts, platform::server::CLIENT_REQUEST_ID).map(|id| id.chars().take(200).collect::<String>());
    let scopes = caller.scopes_text();
    let path_and_query = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_default();
    let entry = |digest: &'static str| Entry {
        subject: &caller.subject,
        scopes: &scopes,
        method: &method,
        route: &route,
        account_id,
        request_id: &request_id,
        client_request_id: client_request_id.as_deref(),
        request_digest: digest,
    };
    if let Err(refusal) = caller.require(rule.scopes) {
        let answer = ApiError::from(refusal);
        if rule.audited {
            // Nothing is done for a refusal: its row is written if the database answers in time.
            let refusal = entry("");
            let refused = audit::record(&s.pool, &refusal, Some((answer.status.as_u16(), &answer.code)));
            if !matches!(tokio::time::timeout(AUDIT_WAIT, refused).await, Ok(Ok(_))) {
                metrics::counter!("gateway_audit_failures_total").increment(1);
                tracing::error!(route, "the audit entry of a refusal was not written");
            }
        }
        return answer.into_response();
    }
    if route.starts_with("/v1/ops/") {
        if let Err(e) = s.limits.check(Kind::Ops, &caller.subject).await {
            return e.into_response();
        }
    }
    parts.extensions.insert(caller.clone());
    if !rule.audited {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let limit = if rule.batch { platform::server::MAX_BATCH_BODY_BYTES } else { platform::server::MAX_BODY_BYTES };
    let bytes = match platform::body::to_bytes_or_drain(body, limit).await {
        Some(b) => b,
        None => {
            return ApiError::of(Code::BodyTooLarge, format!("the body is larger than {limit} bytes")).into_response()
        }
    };
    let digest = digest_of(&method, &path_and_query, &bytes);
    let intent = Entry { request_digest: &digest, ..entry("") };
    let written = tokio::time::timeout(AUDIT_WAIT, audit::record(&s.pool, &intent, None)).await;
    let audit_id = match written {
        Ok(Ok(id)) => id,
        failed => {
            metrics::counter!("gateway_audit_failures_total").increment(1);
            match failed {
                Ok(Err(e)) => tracing::error!(error = %e, route, "audit entry not written: request refused"),
                _ => tracing::error!(route, "audit entry timed out: request refused"),
            }
            return GatewayError::AuditUnavailable.into_response();
        }
    };
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let code = resp.extensions().get::<ProblemCode>().map(|c| c.0.clone());
    let answered = audit::answered(&s.pool, audit_id, resp.status().as_u16(), code.as_deref());
    if !matches!(tokio::time::timeout(AUDIT_WAIT, answered).await, Ok(Ok(()))) {
        // The request is on record already; only how it ended is missing.
        metrics::counter!("gateway_audit_failures_total").increment(1);
        tracing::error!(audit_id, route, "the audit outcome was not written");
    }
    resp
}

fn header(parts: &axum::http::request::Parts, name: &str) -> Option<String> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// SHA-256 (hex) of the method, the path with its query, and the body.
fn digest_of(method: &str, path_and_query: &str, body: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update(b"\n");
    h.update(path_and_query.as_bytes());
    h.update(b"\n");
    h.update(body);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Limits every request by its client's address before its token is read (429).
pub async fn per_address(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let address = s.client_address.of(&req);
    if let Err(e) = s.limits.check(Kind::Address, &address).await {
        return e.into_response();
    }
    next.run(req).await
}

/// Where a request's client address comes from: the TCP peer, or — behind a proxy that sets it —
/// the last address of `X-Forwarded-For` (the one the proxy appended; earlier ones are the
/// client's claims).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAddress {
    Peer,
    ForwardedFor,
}

impl ClientAddress {
    fn of(&self, req: &Request) -> String {
        let peer = || {
            req.extensions()
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0.ip().to_string())
                .unwrap_or_else(|| "unknown".into())
        };
        match self {
            ClientAddress::Peer => peer(),
            ClientAddress::ForwardedFor => req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .next_back()
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .unwrap_or_else(peer),
        }
    }
}

/// Private answers: nothing the gateway says is for a shared cache.
pub async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_digest_covers_method_path_and_body() {
        let d = digest_of("POST", "/v1/x?a=1", b"{}");
        assert_eq!(d.len(), 64);
        assert_ne!(d, digest_of("POST", "/v1/x?a=2", b"{}"));
        assert_ne!(d, digest_of("POST", "/v1/x?a=1", b"{ }"));
        assert_ne!(d, digest_of("PUT", "/v1/x?a=1", b"{}"));
    }

    #[test]
    fn the_client_address_is_the_peer_or_the_proxys_last_entry() {
        let req = |xff: &[&str]| {
            let mut r = Request::new(Body::empty());
            for v in xff {
                r.headers_mut().append("x-forwarded-for", v.parse().unwrap());
            }
            let peer: std::net::SocketAddr = "10.0.0.9:4000".parse().unwrap();
            r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            r
        };
        let spoofed = req(&["1.1.1.1, 2.2.2.2", "203.0.113.7"]);
        assert_eq!(ClientAddress::Peer.of(&spoofed), "10.0.0.9", "a client's header means nothing by default");
        assert_eq!(ClientAddress::ForwardedFor.of(&spoofed), "203.0.113.7", "the proxy appends the real one last");
        assert_eq!(ClientAddress::ForwardedFor.of(&req(&[])), "10.0.0.9", "no header: the peer");
    }

    /// The rules and the document agree: every documented `/v1/…` operation has a rule whose
    /// scopes are the ones the document lists, and every rule is documented.
    #[test]
    fn every_route_has_the_rule_its_document_states() {
        let doc = crate::http::document();
        let doc = serde_json::to_value(doc).unwrap();
        let mut documented = 0;
        for (path, item) in doc["paths"].as_object().unwrap().iter().filter(|(p, _)| p.starts_with("/v1/")) {
            for (method, op) in item.as_object().unwrap() {
                let method = method.to_uppercase();
                let rule = rule_for(&method, path).unwrap_or_else(|| panic!("{method} {path} has no rule"));
                let mut listed: Vec<String> = op["security"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s["bearer"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()))
                    .collect();
                let mut ruled: Vec<String> = rule.scopes.iter().map(|s| s.as_str().to_string()).collect();
                listed.sort();
                ruled.sort();
                assert_eq!(listed, ruled, "{method} {path}");
                documented += 1;
            }
        }
        assert_eq!(documented, RULES.len(), "a rule for a route that does not exist");
    }
}
