//! Who is asking: a bearer JWT verified against the configured public keys — ES256 only (no
//! `none`, no HS/RS confusion: the algorithm is pinned, the keys are EC), issuer and audience
//! checked, `exp` required and `nbf` honoured with a small leeway. The subject of a `customer`
//! token is a customer id; scopes come from the space-separated `scope` claim.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{GatewayError, GatewayResult};

/// What a route may require.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A customer acting on their own accounts.
    Customer,
    OpsRead,
    OpsWrite,
    /// Batch jobs: payout runs only.
    Batch,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "customer" => Some(Scope::Customer),
            "ops:read" => Some(Scope::OpsRead),
            "ops:write" => Some(Scope::OpsWrite),
            "batch" => Some(Scope::Batch),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Customer => "customer",
            Scope::OpsRead => "ops:read",
            Scope::OpsWrite => "ops:write",
            Scope::Batch => "batch",
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    scope: String,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub scopes: Vec<Scope>,
}

impl Caller {
    /// The caller's customer id, if the token is a customer's.
    pub fn customer(&self) -> GatewayResult<Uuid> {
        self.require(&[Scope::Customer])?;
        self.subject.parse().map_err(|_| unauthorized("a customer token's subject must be a customer id"))
    }

    /// Passes if the caller has any of `scopes`.
    pub fn require(&self, scopes: &[Scope]) -> GatewayResult<()> {
        if self.scopes.iter().any(|s| scopes.contains(s)) {
            return Ok(());
        }
        let needed: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        Err(GatewayError::Scope(needed.join(" or ")))
    }

    pub fn scopes_text(&self) -> String {
        self.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }
}

pub fn unauthorized(detail: impl Into<String>) -> GatewayError {
    GatewayError::Unauthorized(detail.into())
}

/// The keys and the rules a token must pass.
pub struct Verifier {
    /// By key id; a token without `kid` is accepted only when there is exactly one key.
    keys: HashMap<Option<String>, DecodingKey>,
    validation: Validation,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no usable EC P-256 key in the configured keys")]
    NoKeys,
    #[error("{0}")]
    Bad(String),
}

impl Verifier {
    /// From a JWKS document (`{"keys": [...]}`, EC P-256 keys with `kid`) or a PEM public key.
    pub fn new(keys_text: &str, issuer: &str, audience: &str, leeway_secs: u64) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        if keys_text.trim_start().starts_with('{') {
            let set: JwkSet = serde_json::from_str(keys_text).map_err(|e| KeyError::Bad(e.to_string()))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::Bad(e.to_string()))?;
                keys.insert(jwk.common.key_id.clone(), key);
            }
        } else {
            let key = DecodingKey::from_ec_pem(keys_text.as_bytes()).map_err(|e| KeyError::Bad(e.to_string()))?;
            keys.insert(None, key);
        }
        if keys.is_empty() {
            return Err(KeyError::NoKeys);
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = leeway_secs;
        Ok(Self { keys, validation })
    }

    pub fn verify(&self, token: &str) -> GatewayResult<Caller> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| unauthorized("the bearer token is malformed"))?;
        let key = match (&header.kid, self.keys.len()) {
            (Some(kid), _) => self.keys.get(&Some(kid.clone())),
            (None, 1) => self.keys.values().next(),
            (None, _) => None,
        }
        .ok_or_else(|| unauthorized("the bearer token's key is not known"))?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map_err(|e| unauthorized(format!("the bearer token is not valid: {e}")))?;
        let scopes = data.claims.scope.split_whitespace().filter_map(Scope::parse).collect();
        Ok(Caller { subject: data.claims.sub, scopes })
    }
}

/// The caller of a route whose state gives the verifier.
impl<S> FromRequestParts<S> for Caller
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Verified once, by the route's guard.
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("an Authorization: Bearer token is required"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("the Authorization header must be a Bearer token"))?;
        Arc::<Verifier>::from_ref(state).verify(token.trim())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    const KEY: &str = include_str!("../tests/fixtures/test-issuer.key.pem");
    const PUB: &str = include_str!("../tests/fixtures/test-issuer.pub.pem");
    const JWKS: &str = include_str!("../tests/fixtures/test-issuer.jwks.json");
    const OTHER: &str = include_str!("../tests/fixtures/other-issuer.key.pem");

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn token(key: &str, kid: Option<&str>, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid.map(str::to_string);
        encode(&header, &claims, &EncodingKey::from_ec_pem(key.as_bytes()).unwrap()).unwrap()
    }

    fn claims(sub: &str, scope: &str) -> serde_json::Value {
        serde_json::json!({"sub": sub, "scope": scope, "iss": "bank", "aud": "api", "exp": now() + 300})
    }

    fn refused(v: &Verifier, t: &str) -> bool {
        v.verify(t).is_err_and(|e| matches!(e, GatewayError::Unauthorized(_)))
    }

    #[test]
    fn a_valid_token_names_its_caller_and_scopes() {
        let v = Verifier::new(PUB, "bank", "api", 5).unwrap();
        let c = v.verify(&token(KEY, None, claims("ops-1", "ops:read batch unknown"))).unwrap();
        assert_eq!((c.subject.as_str(), c.scopes.clone()), ("ops-1", vec![Scope::OpsRead, Scope::Batch]));
        let denied = platform::ApiError::from(c.require(&[Scope::OpsWrite]).unwrap_err());
        assert_eq!((denied.status.as_u16(), denied.code.as_str()), (403, "INSUFFICIENT_SCOPE"));
        assert!(c.customer().is_err(), "an ops token is no customer's");
        let jwks = Verifier::new(JWKS, "bank", "api", 5).unwrap();
        assert!(jwks.verify(&token(KEY, Some("test-1"), claims("x", "customer"))).is_ok(), "key chosen by kid");
        assert!(refused(&jwks, &token(KEY, Some("nope"), claims("x", "customer"))), "unknown kid");
    }

    #[test]
    fn forged_expired_and_misdirected_tokens_are_refused() {
        let v = Verifier::new(PUB, "bank", "api", 5).unwrap();
        assert!(refused(&v, &token(OTHER, None, claims("x", "customer"))), "another issuer's key");
        let mut c = claims("x", "customer");
        c["exp"] = (now() - 60).into();
        assert!(refused(&v, &token(KEY, None, c)), "expired beyond the leeway");
        let mut c = claims("x", "customer");
        c["nbf"] = (now() + 600).into();
        assert!(refused(&v, &token(KEY, None, c)), "not yet valid");
        let mut c = claims("x", "customer");
        c["aud"] = "someone-else".into();
        assert!(refused(&v, &token(KEY, None, c)), "another audience");
        let mut c = claims("x", "customer");
        c["iss"] = "someone-else".into();
        assert!(refused(&v, &token(KEY, None, c)), "another issuer");
        let mut c = claims("x", "customer");
        c.as_object_mut().unwrap().remove("exp");
        assert!(refused(&v, &token(KEY, None, c)), "no expiry");
        // HS256 signed with the public key as the shared secret (algorithm confusion).
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims("x", "ops:write"),
            &EncodingKey::from_secret(PUB.as_bytes()),
        )
        .unwrap();
        assert!(refused(&v, &hs), "alg pinned to ES256");
        // alg "none", unsigned.
        let b64 = |v: &serde_json::Value| {
            use b64url::encode_url;
            encode_url(v.to_string().as_bytes())
        };
        let none =
            format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&claims("x", "ops:write")));
        assert!(refused(&v, &none), "alg none");
        assert!(refused(&v, "not-a-token"));
    }

    /// Base64url without padding, enough to forge an unsigned token in a test.
    mod b64url {
        pub fn encode_url(input: &[u8]) -> String {
            const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            let mut out = String::new();
            for chunk in input.chunks(3) {
                let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
                let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
                for i in 0..=chunk.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                }
            }
            out
        }
    }
}
