//! Who is asking: a bearer JWT verified against the issuer's public keys ([`keys`]: from
//! configuration, or the identity provider's JWKS URL kept fresh) — ES256 only (no `none`, no
//! HS/RS confusion: the algorithm is pinned, the keys are EC), issuer and audience checked, `exp`,
//! `sub` and `iat` required, `nbf` honoured with a small leeway, and no token living longer
//! (`exp - iat`) than the configured maximum. Every invalid token gets the same public detail
//! (the reason is logged at debug level only). The subject of a `customer` token is a customer id;
//! scopes come from the space-separated `scope` claim.

mod keys;

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use uuid::Uuid;

use crate::error::{GatewayError, GatewayResult};

pub use keys::{KeyError, KeySource};

/// The one detail of every refused token: which check failed would tell a forger what to fix.
pub const INVALID_TOKEN: &str = "the bearer token is not valid";

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
    exp: i64,
    iat: Option<i64>,
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
    keys: keys::Keys,
    validation: Validation,
    leeway_secs: u64,
    max_lifetime_secs: u64,
}

/// Why a token was refused: for the debug log, never for the caller.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("malformed: {0}")]
    Malformed(jsonwebtoken::errors::Error),
    #[error("no key with kid {0:?}")]
    UnknownKey(Option<String>),
    #[error("{0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("no iat (issued at) claim")]
    NoIssuedAt,
    #[error("issued in the future: iat {iat}, now {now}")]
    IssuedInFuture { iat: i64, now: i64 },
    #[error("lives {lifetime} s (exp - iat), not within 0..={max} s")]
    Lifetime { lifetime: i64, max: u64 },
}

impl Verifier {
    /// Loads the keys (fetching them first when they come from a URL, then keeping them fresh);
    /// tokens must be for `issuer` and `audience` and live at most `max_lifetime_secs`.
    pub async fn load(
        source: &KeySource,
        issuer: &str,
        audience: &str,
        leeway_secs: u64,
        max_lifetime_secs: u64,
    ) -> Result<Self, KeyError> {
        let keys = keys::Keys::load(source).await?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        // `iat` is not among the library's checks: required below, with the lifetime.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = leeway_secs;
        Ok(Self { keys, validation, leeway_secs, max_lifetime_secs })
    }

    pub async fn verify(&self, token: &str) -> GatewayResult<Caller> {
        self.check(token).await.map_err(|refusal| {
            tracing::debug!(reason = %refusal, "a bearer token was refused");
            unauthorized(INVALID_TOKEN)
        })
    }

    async fn check(&self, token: &str) -> Result<Caller, Refusal> {
        let header = jsonwebtoken::decode_header(token).map_err(Refusal::Malformed)?;
        let kid = header.kid.as_deref();
        let mut keys = self.keys.current();
        // An unknown kid may be a key the provider has just published; only an ES256 token could
        // ever pass, so no other makes the keys be fetched.
        if keys.find(kid).is_none() && kid.is_some() && header.alg == Algorithm::ES256 {
            if let Some(newer) = self.keys.after_miss(&keys).await {
                keys = newer;
            }
        }
        let key = keys.find(kid).ok_or_else(|| Refusal::UnknownKey(header.kid.clone()))?;
        let claims = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(Refusal::Invalid)?.claims;
        let iat = claims.iat.ok_or(Refusal::NoIssuedAt)?;
        let now = i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap_or(i64::MAX);
        if iat > now.saturating_add_unsigned(self.leeway_secs) {
            return Err(Refusal::IssuedInFuture { iat, now });
        }
        let lifetime = claims.exp.saturating_sub(iat);
        if !(0..=i64::try_from(self.max_lifetime_secs).unwrap_or(i64::MAX)).contains(&lifetime) {
            return Err(Refusal::Lifetime { lifetime, max: self.max_lifetime_secs });
        }
        let scopes = claims.scope.split_whitespace().filter_map(Scope::parse).collect();
        Ok(Caller { subject: claims.sub, scopes })
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
        Arc::<Verifier>::from_ref(state).verify(token.trim()).await
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
        serde_json::json!({"sub": sub, "scope": scope, "iss": "bank", "aud": "api", "iat": now(), "exp": now() + 300})
    }

    /// A verifier for issuer `bank` and audience `api`: 5 s of leeway, tokens living at most an hour.
    pub(super) async fn verifier(keys: &str) -> Verifier {
        Verifier::load(&KeySource::Text(keys.into()), "bank", "api", 5, 3600).await.unwrap()
    }

    /// The refusal's public detail, or `None` if the token passed.
    async fn refusal(v: &Verifier, t: &str) -> Option<String> {
        let e = v.verify(t).await.err()?;
        assert!(matches!(e, GatewayError::Unauthorized(_)), "{e:?}");
        let problem = platform::ApiError::from(e);
        assert_eq!((problem.status.as_u16(), problem.code.as_str()), (401, "UNAUTHORIZED"));
        Some(problem.detail)
    }

    async fn refused(v: &Verifier, t: &str) -> bool {
        refusal(v, t).await.is_some()
    }

    #[tokio::test]
    async fn a_valid_token_names_its_caller_and_scopes() {
        let v = verifier(PUB).await;
        let c = v.verify(&token(KEY, None, claims("ops-1", "ops:read batch unknown"))).await.unwrap();
        assert_eq!((c.subject.as_str(), c.scopes.clone()), ("ops-1", vec![Scope::OpsRead, Scope::Batch]));
        let denied = platform::ApiError::from(c.require(&[Scope::OpsWrite]).unwrap_err());
        assert_eq!((denied.status.as_u16(), denied.code.as_str()), (403, "INSUFFICIENT_SCOPE"));
        assert!(c.customer().is_err(), "an ops token is no customer's");
        let jwks = verifier(JWKS).await;
        assert!(jwks.verify(&token(KEY, Some("test-1"), claims("x", "customer"))).await.is_ok(), "key chosen by kid");
        assert!(refused(&jwks, &token(KEY, Some("nope"), claims("x", "customer"))).await, "unknown kid");
        assert!(jwks.verify(&token(KEY, None, claims("x", "customer"))).await.is_ok(), "the one key, no kid");
    }

    #[tokio::test]
    async fn a_pem_key_verifies_tokens_whatever_kid_they_name() {
        let v = verifier(PUB).await;
        for kid in ["test-1", "2024-rotation", ""] {
            let c = v.verify(&token(KEY, Some(kid), claims("x", "customer"))).await;
            assert!(c.is_ok(), "kid {kid:?}: {c:?}");
        }
        assert!(refused(&v, &token(OTHER, Some("test-1"), claims("x", "customer"))).await, "still the one key");
    }

    #[tokio::test]
    async fn tokens_without_iat_or_living_too_long_are_refused() {
        let v = verifier(PUB).await;
        let with = |iat: Option<i64>, exp: i64| {
            let mut c = claims("x", "customer");
            match iat {
                Some(iat) => c["iat"] = iat.into(),
                None => drop(c.as_object_mut().unwrap().remove("iat")),
            }
            c["exp"] = exp.into();
            token(KEY, None, c)
        };
        let t = now();
        assert!(refused(&v, &with(None, t + 300)).await, "no iat");
        assert!(refused(&v, &with(Some(t), t + 3601)).await, "a second longer than the maximum");
        assert!(refused(&v, &with(Some(t - 60), t + 7200)).await, "two hours");
        assert!(refused(&v, &with(Some(t + 60), t + 300)).await, "issued in the future beyond the leeway");
        assert!(refused(&v, &with(Some(t + 200), t + 100)).await, "expires before it is issued");
        assert!(v.verify(&with(Some(t), t + 3600)).await.is_ok(), "exactly the maximum");
        assert!(v.verify(&with(Some(t - 3590), t + 10)).await.is_ok(), "an hour-long token near its end");
        assert!(v.verify(&with(Some(t + 3), t + 300)).await.is_ok(), "a clock a little ahead: within the leeway");
        let strict = Verifier::load(&KeySource::Text(PUB.into()), "bank", "api", 5, 60).await.unwrap();
        assert!(refused(&strict, &with(Some(t), t + 300)).await, "the maximum is the configured one");
    }

    #[tokio::test]
    async fn every_refused_token_gets_the_same_detail_whatever_the_reason() {
        let v = verifier(JWKS).await;
        let mut refusals = Vec::new();
        let mut expired = claims("x", "customer");
        expired["exp"] = (now() - 600).into();
        let mut audience = claims("x", "customer");
        audience["aud"] = "someone-else".into();
        let mut no_iat = claims("x", "customer");
        no_iat.as_object_mut().unwrap().remove("iat");
        for (what, t) in [
            ("expired", token(KEY, Some("test-1"), expired)),
            ("wrong audience", token(KEY, Some("test-1"), audience)),
            ("unknown kid", token(KEY, Some("nope"), claims("x", "customer"))),
            ("another key", token(OTHER, Some("test-1"), claims("x", "customer"))),
            ("no iat", token(KEY, Some("test-1"), no_iat)),
            ("malformed", "not-a-token".to_string()),
        ] {
            refusals.push((what, refusal(&v, &t).await));
        }
        for (what, detail) in refusals {
            assert_eq!(detail.as_deref(), Some(INVALID_TOKEN), "{what}");
        }
    }

    #[tokio::test]
    async fn forged_expired_and_misdirected_tokens_are_refused() {
        let v = verifier(PUB).await;
        assert!(refused(&v, &token(OTHER, None, claims("x", "customer"))).await, "another issuer's key");
        let mut c = claims("x", "customer");
        c["exp"] = (now() - 60).into();
        assert!(refused(&v, &token(KEY, None, c)).await, "expired beyond the leeway");
        let mut c = claims("x", "customer");
        c["nbf"] = (now() + 600).into();
        assert!(refused(&v, &token(KEY, None, c)).await, "not yet valid");
        let mut c = claims("x", "customer");
        c["aud"] = "someone-else".into();
        assert!(refused(&v, &token(KEY, None, c)).await, "another audience");
        let mut c = claims("x", "customer");
        c["iss"] = "someone-else".into();
        assert!(refused(&v, &token(KEY, None, c)).await, "another issuer");
        let mut c = claims("x", "customer");
        c.as_object_mut().unwrap().remove("exp");
        assert!(refused(&v, &token(KEY, None, c)).await, "no expiry");
        let mut c = claims("x", "customer");
        c.as_object_mut().unwrap().remove("sub");
        assert!(refused(&v, &token(KEY, None, c)).await, "no subject");
        // HS256 signed with the public key as the shared secret (algorithm confusion).
        let hs = encode(
            &Header::new(Algorithm::HS256),
            &claims("x", "ops:write"),
            &EncodingKey::from_secret(PUB.as_bytes()),
        )
        .unwrap();
        assert!(refused(&v, &hs).await, "alg pinned to ES256");
        // alg "none", unsigned.
        let b64 = |v: &serde_json::Value| b64url::encode_url(v.to_string().as_bytes());
        let none =
            format!("{}.{}.", b64(&serde_json::json!({"alg": "none", "typ": "JWT"})), b64(&claims("x", "ops:write")));
        assert!(refused(&v, &none).await, "alg none");
        assert!(refused(&v, "not-a-token").await);
    }

    #[tokio::test]
    async fn a_jwks_gives_only_its_ec_p256_signing_keys() {
        let test_1: serde_json::Value = serde_json::from_str(JWKS).unwrap();
        let ec = test_1["keys"][0].clone();
        let mut enc = ec.clone();
        enc["use"] = "enc".into();
        enc["kid"] = "enc-1".into();
        let rsa = serde_json::json!({"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "n": "sXch", "e": "AQAB"});
        let x25519 = serde_json::json!({"kty": "OKP", "crv": "X25519", "kid": "x-1", "x": "AAAA"});
        let doc = serde_json::json!({"keys": [rsa, x25519, enc, ec]}).to_string();
        let v = verifier(&doc).await;
        assert!(v.verify(&token(KEY, Some("test-1"), claims("x", "customer"))).await.is_ok());
        assert!(refused(&v, &token(KEY, Some("enc-1"), claims("x", "customer"))).await, "an encryption key");
        let none = serde_json::json!({"keys": [rsa]}).to_string();
        let e = Verifier::load(&KeySource::Text(none), "bank", "api", 5, 3600).await.err().unwrap();
        assert!(matches!(e, KeyError::NoKeys), "{e}");
    }

    /// Base64url without padding, enough to forge an unsigned token (or write a JWK) in a test.
    pub(super) mod b64url {
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
