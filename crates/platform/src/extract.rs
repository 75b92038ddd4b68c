//! Extractors that turn malformed input into problem responses instead of axum's plain-text ones.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use contracts::problem::Code;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// A JSON body; also keeps the SHA-256 of the request as parsed ([`request_hash`]) for
/// idempotency checks.
pub struct Json<T> {
    pub value: T,
    pub body_hash: String,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim() == "application/json" || m.trim().ends_with("+json"));
        if !json_type {
            return Err(ApiError::of(Code::UnsupportedMediaType, "send the body as application/json"));
        }
        // Read under the route's limit (axum's `DefaultBodyLimit`); an over-limit rest is drained
        // so the 413 is not lost to a reset connection (`crate::body`).
        let (parts, body) = req.into_parts();
        let (rest, body) = crate::body::Drainable::wrap(body);
        let bytes = match axum::body::Bytes::from_request(Request::from_parts(parts, body), state).await {
            Ok(b) => b,
            Err(e) => {
                return Err(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    rest.drain().await;
                    ApiError::of(Code::BodyTooLarge, "request body is too large")
                } else {
                    ApiError::of(Code::MalformedBody, e.body_text())
                })
            }
        };
        if escapes_nul(&bytes) {
            // PostgreSQL text cannot hold NUL: refuse it here for every field of every body.
            return Err(ApiError::of(Code::ValidationFailed, "text must not contain NUL (\\u0000) characters"));
        }
        if !is_object(&bytes) {
            // Every body of the API is an object; serde would read a struct from an array too.
            return Err(match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
                Ok(_) => ApiError::of(Code::ValidationFailed, "the body must be a JSON object"),
                Err(e) => ApiError::of(Code::MalformedJson, e.to_string()),
            });
        }
        let body_hash = request_hash(&bytes);
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self { value, body_hash }),
            Err(e) => Err(json_problem(e)),
        }
    }
}

/// Whether a JSON text is an object (its first significant character is `{`).
fn is_object(json: &[u8]) -> bool {
    json.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Whether a JSON text has a `\u0000` escape (a backslash preceded by an even number of
/// backslashes: `\\u0000` is a backslash and the text "u0000"). A raw NUL is invalid JSON anyway.
fn escapes_nul(json: &[u8]) -> bool {
    json.windows(6)
        .enumerate()
        .any(|(i, w)| w == b"\\u0000" && json[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0)
}

pub fn hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a request body as parsed, not as sent, for binding an `Idempotency-Key` to its
/// request: JSON with object keys sorted and no whitespace; an empty body and an empty object are
/// the same (empty) request; a body that is not JSON is hashed as sent.
pub fn request_hash(bytes: &[u8]) -> String {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return hash(b"");
    }
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(value) => {
            let mut text = String::new();
            canonical(&value, &mut text);
            if text == "{}" {
                hash(b"")
            } else {
                hash(text.as_bytes())
            }
        }
        Err(_) => hash(bytes),
    }
}

fn canonical(v: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match v {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn json_problem(e: JsonRejection) -> ApiError {
    match e {
        JsonRejection::JsonDataError(e) => ApiError::of(Code::ValidationFailed, e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::of(Code::MalformedJson, e.body_text()),
        other => ApiError::of(Code::MalformedBody, other.body_text()),
    }
}

/// A path parameter; a malformed one (say, an id that is not a UUID) is a 404 for that resource.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().contains("%00") {
            return Err(ApiError::of(Code::NotFound, "no such resource: a path with NUL (%00)"));
        }
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::of(Code::NotFound, format!("no such resource: {}", e.body_text())))
            }
            Err(e) => Err(ApiError::of(Code::MalformedPath, e.body_text())),
        }
    }
}

pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // PostgreSQL text cannot hold NUL (a 500 from the database, found by schemathesis).
        if parts.uri.query().is_some_and(|q| q.contains("%00") || q.contains('\0')) {
            return Err(ApiError::of(Code::MalformedQuery, "query values must not contain NUL (%00)"));
        }
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Self(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                Err(ApiError::of(Code::MalformedQuery, e.body_text()))
            }
            Err(e) => Err(ApiError::of(Code::MalformedQuery, e.body_text())),
        }
    }
}

/// The `Idempotency-Key` header: required on money-moving POSTs, 1–200 visible ASCII characters.
#[derive(utoipa::IntoParams)]
#[into_params(names("Idempotency-Key"), parameter_in = Header)]
pub struct IdempotencyKey(
    /// The client's key for this operation: a retry with the same key and body gets the first
    /// answer again, with another body 422 IDEMPOTENCY_KEY_REUSED.
    #[param(pattern = "^[!-~]{1,200}$")]
    pub String,
);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(v) = parts.headers.get("idempotency-key") else {
            return Err(ApiError::of(Code::IdempotencyKeyRequired, "the Idempotency-Key header is required"));
        };
        let key = v
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 200 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::of(Code::IdempotencyKeyInvalid, "Idempotency-Key must be 1-200 visible ASCII characters")
            })?;
        Ok(Self(key.to_string()))
    }
}

/// Who is acting, as the service credential proves it: the verified caller (`ops`, `interest`…),
/// or — only when that caller is the gateway, which verified its own caller's token — the
/// gateway's `X-Actor` (that token's subject). A public caller's claims never get here.
pub struct Actor(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Actor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<crate::credential::ServiceCaller>().map(|c| c.0.to_string());
        let forwarded = parts
            .headers
            .get("x-actor")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(200).collect::<String>())
            .filter(|v| !v.trim().is_empty());
        match (caller.as_deref(), forwarded) {
            (Some("gateway"), Some(subject)) => Ok(Self(subject)),
            (Some(caller), _) => Ok(Self(caller.to_string())),
            (None, _) => Err(ApiError::of(Code::Unauthorized, "no verified caller")),
        }
    }
}

#[cfg(test)]
mod hash_tests {
    use super::{hash, request_hash};

    #[test]
    fn a_request_is_hashed_as_parsed_not_as_sent() {
        assert_eq!(
            request_hash(br#"{"a": 1, "b": [1, {"y": 2, "x": 1}]}"#),
            request_hash(b"{\"b\":[1,{\"x\":1,\"y\":2}],\"a\":1}\n")
        );
        assert_ne!(request_hash(br#"{"a": 1}"#), request_hash(br#"{"a": 2}"#));
        assert_ne!(request_hash(br#"{"a": [1, 2]}"#), request_hash(br#"{"a": [2, 1]}"#), "arrays keep their order");
        assert_eq!(request_hash(b""), hash(b""));
        assert_eq!(request_hash(b" {} "), hash(b""), "an empty object is the empty request");
        assert_eq!(request_hash(b"not json"), hash(b"not json"));
    }
}

#[cfg(test)]
mod nul_tests {
    #[test]
    fn only_an_object_is_a_body() {
        assert!(super::is_object(b" \n{\"a\": 1}"));
        for text in [&b"[null, null]"[..], b"null", b"1", b"\"x\"", b""] {
            assert!(!super::is_object(text), "{:?}", std::str::from_utf8(text));
        }
    }

    use super::escapes_nul;

    #[test]
    fn a_nul_escape_is_found_and_an_escaped_backslash_is_not_one() {
        assert!(escapes_nul(br#"{"name": "a\u0000b"}"#));
        assert!(escapes_nul(br#"{"name": "\\\u0000"}"#), "an escaped backslash, then the escape");
        assert!(!escapes_nul(br#"{"name": "\\u0000"}"#), "a backslash and the text u0000");
        assert!(!escapes_nul(br#"{"name": "u0000"}"#));
    }
}
