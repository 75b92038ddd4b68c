//! Service credentials: who is calling an internal service, and what it may call.
//!
//! Each caller — a service, or `ops` for the operators' tools — holds its own ES256 key and signs
//! every call with a short-lived token naming itself (`sub`) and the one service the call is for
//! (`aud`), so a token one service receives is worthless at another. Every service trusts one JWKS
//! of all callers' public keys, each key's id saying whose it is (`<caller>.<fingerprint>`), and
//! lets each caller reach only the routes its [`Grant`]s name. Rotation is by key id: trust the new
//! key everywhere, switch the caller to it, drop the old one once its last token has expired.
//! There is no unauthenticated mode: a service without its key and the trust set does not start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::config::{ConfigError, Env};

/// Everyone that may hold a service credential: the services and the operators' tools.
pub const CALLERS: [&str; 8] =
    ["gateway", "customer", "account-info", "accounting", "interest", "tax-consumer", "legacy-core", "ops"];

/// How long a minted token lives; a caller re-mints a minute before the end.
pub const LIFETIME: Duration = Duration::from_secs(300);

/// The longest lifetime a service accepts (an operator may mint up to this for a long task).
pub const MAX_LIFETIME: Duration = Duration::from_secs(900);

/// Clock skew allowed between callers and services.
const LEEWAY_SECS: u64 = 30;

/// Verified tokens remembered (a caller reuses one token for minutes; verifying ES256 each time
/// would cost more than many requests do).
const REMEMBERED: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("not a PEM private key (PKCS#8 EC P-256 expected)")]
    NotPem,
    #[error("not an EC P-256 PKCS#8 private key")]
    BadKey,
    #[error("the trust set is not a JWKS document of EC P-256 keys: {0}")]
    BadTrust(String),
    #[error("the trust set has no key for this private key (add its public key, `bankctl credentials`)")]
    Untrusted,
    #[error("no service credential (Authorization: Bearer) was presented")]
    Missing,
    #[error("the service credential is not valid")]
    Invalid,
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// A signing key and who it belongs to.
pub struct Signer {
    caller: String,
    kid: String,
    key: EncodingKey,
    /// The current token per audience and when it was minted (seconds since the epoch).
    minted: Mutex<HashMap<String, (Arc<str>, u64)>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("caller", &self.caller).field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The DER inside a PEM block.
fn pem_der(pem: &str) -> Result<Vec<u8>, CredentialError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).map(str::trim).collect();
    if body.is_empty() {
        return Err(CredentialError::NotPem);
    }
    STANDARD.decode(body).map_err(|_| CredentialError::NotPem)
}

/// The uncompressed public point (0x04 ‖ x ‖ y) of a PKCS#8 private key.
fn public_point(pkcs8: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &SystemRandom::new())
        .map_err(|_| CredentialError::BadKey)?;
    Ok(pair.public_key().as_ref().to_vec())
}

/// `<caller>.<first 8 bytes of the point's SHA-256, hex>`: a new key is a new id.
pub fn key_id(caller: &str, point: &[u8]) -> String {
    let digest = sha2::Sha256::digest(point);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{caller}.{hex}")
}

impl Signer {
    /// A private key (PKCS#8 PEM) whose identity is the key id the trust set gives its public key.
    pub fn new(pem: &str, trust: &Trust) -> Result<Self, CredentialError> {
        let der = pem_der(pem)?;
        let point = public_point(&der)?;
        let (kid, caller) = trust.owner_of(&point).ok_or(CredentialError::Untrusted)?;
        Ok(Self { caller, kid, key: EncodingKey::from_ec_der(&der), minted: Mutex::default() })
    }

    /// Whose key this is.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// A token for calls to `audience`, minted anew a minute before the last one expires.
    pub fn token_for(&self, audience: &str) -> Result<Arc<str>, CredentialError> {
        let now = now();
        let mut minted = self.minted.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, iat)) = minted.get(audience) {
            // Renewed a minute before its end, or at once if the clock went back past its minting.
            if *iat <= now && now < iat + LIFETIME.as_secs() - 60 {
                return Ok(token.clone());
            }
        }
        let token: Arc<str> = self.mint(audience, LIFETIME)?.into();
        minted.insert(audience.to_string(), (token.clone(), now));
        Ok(token)
    }

    /// A fresh token for `audience` living `lifetime` (at most [`MAX_LIFETIME`] is accepted).
    pub fn mint(&self, audience: &str, lifetime: Duration) -> Result<String, CredentialError> {
        let iat = now();
        let claims = Claims { sub: self.caller.clone(), aud: audience.to_string(), iat, exp: iat + lifetime.as_secs() };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| CredentialError::Sign(e.to_string()))
    }
}

#[derive(Serialize, Deserialize)]
struct Jwk {
    kty: String,
    crv: String,
    x: String,
    y: String,
    kid: String,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    usage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alg: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

struct Trusted {
    owner: String,
    point: Vec<u8>,
    key: DecodingKey,
}

/// A verified token and the audience it was verified for → (caller, expiry).
type Remembered = (String, String);

/// The public keys of every caller, and what a service accepts.
pub struct Trust {
    keys: HashMap<String, Trusted>,
    /// Tokens already verified.
    verified: Mutex<HashMap<Remembered, (Arc<str>, u64)>>,
}

impl Trust {
    /// From a JWKS document whose key ids are `<caller>.<anything>`.
    pub fn from_jwks(text: &str) -> Result<Self, CredentialError> {
        let set: Jwks = serde_json::from_str(text).map_err(|e| CredentialError::BadTrust(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in set.keys {
            if jwk.kty != "EC" || jwk.crv != "P-256" {
                return Err(CredentialError::BadTrust(format!("{}: not an EC P-256 key", jwk.kid)));
            }
            let Some((owner, _)) = jwk.kid.rsplit_once('.') else {
                return Err(CredentialError::BadTrust(format!("{}: a key id is <caller>.<id>", jwk.kid)));
            };
            let decode = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|e| CredentialError::BadTrust(e.to_string()));
            let (x, y) = (decode(&jwk.x)?, decode(&jwk.y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err(CredentialError::BadTrust(format!("{}: coordinates are 32 bytes", jwk.kid)));
            }
            let point = [&[4u8][..], &x, &y].concat();
            let key = DecodingKey::from_ec_components(&jwk.x, &jwk.y)
                .map_err(|e| CredentialError::BadTrust(format!("{}: {e}", jwk.kid)))?;
            keys.insert(jwk.kid.clone(), Trusted { owner: owner.to_string(), point, key });
        }
        if keys.is_empty() {
            return Err(CredentialError::BadTrust("no keys".into()));
        }
        Ok(Self { keys, verified: Mutex::default() })
    }

    fn owner_of(&self, point: &[u8]) -> Option<(String, String)> {
        self.keys.iter().find(|(_, t)| t.point == point).map(|(kid, t)| (kid.clone(), t.owner.clone()))
    }

    /// The caller a token proves, if it is for `audience`, signed by a trusted key of the caller
    /// it names, unexpired and not minted to live longer than [`MAX_LIFETIME`].
    pub fn verify(&self, token: &str, audience: &str) -> Result<Arc<str>, CredentialError> {
        let now = now();
        let remembered = (token.to_string(), audience.to_string());
        if let Some((caller, exp)) = self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&remembered) {
            if now <= exp + LEEWAY_SECS {
                return Ok(caller.clone());
            }
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| CredentialError::Invalid)?;
        let trusted = header.kid.as_deref().and_then(|kid| self.keys.get(kid)).ok_or(CredentialError::Invalid)?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud", "sub", "iat"]);
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<Claims>(token, &trusted.key, &validation)
            .map_err(|_| CredentialError::Invalid)?
            .claims;
        let minted_too_long = claims.exp.saturating_sub(claims.iat) > MAX_LIFETIME.as_secs();
        if claims.sub != trusted.owner || minted_too_long || claims.iat > now + LEEWAY_SECS {
            return Err(CredentialError::Invalid);
        }
        let caller: Arc<str> = claims.sub.into();
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= REMEMBERED {
            verified.retain(|_, (_, exp)| now <= *exp);
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(remembered, (caller.clone(), claims.exp));
        Ok(caller)
    }
}

/// A service's credentials: its own key and the callers it trusts.
#[derive(Clone)]
pub struct Credentials {
    pub signer: Arc<Signer>,
    pub trust: Arc<Trust>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("signer", &self.signer).finish_non_exhaustive()
    }
}

impl Credentials {
    /// `SERVICE_KEY` (or the file `SERVICE_KEY_FILE` names): this caller's private key;
    /// `SERVICE_TRUST` (or `SERVICE_TRUST_FILE`): every caller's public keys. Both required.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let read = |name: &str| -> Result<String, ConfigError> {
            let file = format!("{name}_FILE");
            match (env.optional(name), env.optional(&file)) {
                (Some(inline), _) => Ok(inline),
                (None, Some(path)) => std::fs::read_to_string(&path).map_err(|e| ConfigError {
                    name: env.name(&file),
                    value: path,
                    reason: e.to_string(),
                }),
                (None, None) => Err(ConfigError {
                    name: env.name(name),
                    value: String::new(),
                    reason: format!(
                        "required (or {}): the internal services accept only signed service credentials; \
                         `bankctl credentials generate --out DIR` makes a set, deploy/up.sh does it locally",
                        env.name(&file)
                    ),
                }),
            }
        };
        let invalid = |name: &str, e: CredentialError| ConfigError {
            name: env.name(name),
            value: "(not shown)".into(),
            reason: e.to_string(),
        };
        let trust = Trust::from_jwks(&read("SERVICE_TRUST")?).map_err(|e| invalid("SERVICE_TRUST", e))?;
        let signer = Signer::new(&read("SERVICE_KEY")?, &trust).map_err(|e| invalid("SERVICE_KEY", e))?;
        Ok(Self { signer: Arc::new(signer), trust: Arc::new(trust) })
    }

    /// From a private key (PKCS#8 PEM) and a trust set (JWKS) listing it.
    pub fn new(key_pem: &str, trust_jwks: &str) -> Result<Self, CredentialError> {
        let trust = Trust::from_jwks(trust_jwks)?;
        let signer = Signer::new(key_pem, &trust)?;
        Ok(Self { signer: Arc::new(signer), trust: Arc::new(trust) })
    }

    /// Refuses a key that is not `service`'s own.
    pub fn belonging_to(self, env: &Env, service: &str) -> Result<Self, ConfigError> {
        if self.signer.caller() != service {
            return Err(ConfigError {
                name: env.name("SERVICE_KEY"),
                value: "(not shown)".into(),
                reason: format!("the key is {}'s, not {service}'s", self.signer.caller()),
            });
        }
        Ok(self)
    }
}

/// A new set: a private key (PKCS#8 PEM) per caller, and the JWKS trusting all of them.
pub fn generate(callers: &[&str]) -> Result<(Vec<(String, String)>, String), CredentialError> {
    let rng = SystemRandom::new();
    let mut private = Vec::new();
    let mut keys = Vec::new();
    for caller in callers {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| CredentialError::Sign("key generation failed".into()))?;
        let point = public_point(pkcs8.as_ref())?;
        let encoded = STANDARD.encode(pkcs8.as_ref());
        let lines: Vec<&str> =
            encoded.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
        keys.push(Jwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: URL_SAFE_NO_PAD.encode(&point[1..33]),
            y: URL_SAFE_NO_PAD.encode(&point[33..65]),
            kid: key_id(caller, &point),
            usage: Some("sig".into()),
            alg: Some("ES256".into()),
        });
        private.push((caller.to_string(), pem));
    }
    let trust = serde_json::to_string_pretty(&Jwks { keys }).map_err(|e| CredentialError::Sign(e.to_string()))?;
    Ok((private, trust))
}

/// `caller`'s credentials in a set made for every caller of [`CALLERS`] (one set per process),
/// for tests and tools that start services with throwaway keys.
pub fn generated(caller: &str) -> Result<Credentials, CredentialError> {
    static SET: std::sync::OnceLock<(Vec<(String, String)>, String)> = std::sync::OnceLock::new();
    let (keys, trust) = match SET.get() {
        Some(set) => set,
        None => {
            let made = generate(&CALLERS)?;
            SET.get_or_init(|| made)
        }
    };
    let trust = Arc::new(Trust::from_jwks(trust)?);
    let pem = keys.iter().find(|(c, _)| c == caller).map(|(_, pem)| pem).ok_or(CredentialError::Untrusted)?;
    Ok(Credentials { signer: Arc::new(Signer::new(pem, &trust)?), trust })
}

/// What one caller may call: `method` (`*` for any) on routes whose template is `route`, or
/// starts with it when it ends with `*` (`/v1/ledger/*`).
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    pub caller: &'static str,
    pub method: &'static str,
    pub route: &'static str,
}

impl Grant {
    pub const fn new(caller: &'static str, method: &'static str, route: &'static str) -> Self {
        Self { caller, method, route }
    }

    fn allows(&self, caller: &str, method: &str, route: &str) -> bool {
        let route_matches = match self.route.strip_suffix('*') {
            Some(prefix) => route.starts_with(prefix),
            None => route == self.route,
        };
        self.caller == caller && (self.method == "*" || self.method == method) && route_matches
    }
}

/// Whether any of `grants` lets `caller` call `method` on the route template `route`.
pub fn allowed(grants: &[Grant], caller: &str, method: &str, route: &str) -> bool {
    grants.iter().any(|g| g.allows(caller, method, route))
}

/// An HTTP client that signs each request for the service its URL belongs to (by the longest
/// known base URL it starts with); a URL of no known service goes unsigned. For ops tools and
/// tests calling many services with one client.
#[derive(Clone)]
pub struct SignedClient {
    http: reqwest::Client,
    signer: Arc<Signer>,
    bases: Arc<Mutex<Vec<(String, String)>>>,
}

impl SignedClient {
    pub fn new(http: reqwest::Client, signer: Arc<Signer>) -> Self {
        Self { http, signer, bases: Arc::default() }
    }

    /// Requests to URLs starting with `base` are for `service`.
    pub fn serve(&self, base: &str, service: &str) {
        self.bases.lock().unwrap_or_else(|p| p.into_inner()).push((base.trim_end_matches('/').into(), service.into()));
    }

    /// The service a URL belongs to (a base matches up to a path or query: port 808 is not 8080).
    pub fn audience(&self, url: &str) -> Option<String> {
        let bases = self.bases.lock().unwrap_or_else(|p| p.into_inner());
        let under = |base: &str| {
            url.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        };
        bases.iter().filter(|(b, _)| under(b)).max_by_key(|(b, _)| b.len()).map(|b| b.1.clone())
    }

    pub fn request(&self, method: reqwest::Method, url: impl AsRef<str>) -> reqwest::RequestBuilder {
        let url = url.as_ref();
        let req = self.http.request(method, url);
        match self.audience(url).and_then(|a| self.signer.token_for(&a).ok()) {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    pub fn get(&self, url: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, url)
    }

    pub fn post(&self, url: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::POST, url)
    }

    pub fn put(&self, url: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PUT, url)
    }

    pub fn patch(&self, url: impl AsRef<str>) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::PATCH, url)
    }

    /// The client underneath (unsigned).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn signer(&self) -> &Arc<Signer> {
        &self.signer
    }
}

/// The verified caller of a request, in its extensions.
#[derive(Debug, Clone)]
pub struct ServiceCaller(pub Arc<str>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set() -> (HashMap<String, String>, Trust) {
        let (keys, trust) = generate(&["gateway", "interest", "ops"]).unwrap();
        (keys.into_iter().collect(), Trust::from_jwks(&trust).unwrap())
    }

    #[test]
    fn a_token_proves_its_caller_to_its_audience_only() {
        let (keys, trust) = set();
        let gateway = Signer::new(&keys["gateway"], &trust).unwrap();
        assert_eq!(gateway.caller(), "gateway");
        let token = gateway.token_for("accounting").unwrap();
        assert_eq!(&*trust.verify(&token, "accounting").unwrap(), "gateway");
        assert_eq!(&*trust.verify(&token, "accounting").unwrap(), "gateway", "remembered");
        assert!(trust.verify(&token, "interest").is_err(), "a token for the ledger is worthless at interest");
        assert_eq!(gateway.token_for("accounting").unwrap(), token, "reused until near its end");
    }

    #[test]
    fn forged_untrusted_long_lived_and_impersonating_tokens_are_refused() {
        let (keys, trust) = set();
        let (other_keys, other_trust) = generate(&["gateway"]).unwrap();
        let stranger = Signer::new(&other_keys[0].1, &Trust::from_jwks(&other_trust).unwrap()).unwrap();
        assert!(trust.verify(&stranger.mint("accounting", LIFETIME).unwrap(), "accounting").is_err(), "untrusted key");
        let ops = Signer::new(&keys["ops"], &trust).unwrap();
        assert!(trust.verify(&ops.mint("accounting", Duration::from_secs(3600)).unwrap(), "accounting").is_err());
        assert!(trust.verify(&ops.mint("accounting", MAX_LIFETIME).unwrap(), "accounting").is_ok());
        // The interest service's key signing a token that says it is the gateway.
        let interest = Signer::new(&keys["interest"], &trust).unwrap();
        let claims = Claims { sub: "gateway".into(), aud: "accounting".into(), iat: now(), exp: now() + 60 };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(interest.kid.clone());
        let lie = jsonwebtoken::encode(&header, &claims, &interest.key).unwrap();
        assert!(trust.verify(&lie, "accounting").is_err(), "sub must be the key's owner");
        let expired = Claims { sub: "ops".into(), aud: "accounting".into(), iat: now() - 400, exp: now() - 100 };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(ops.kid.clone());
        assert!(trust.verify(&jsonwebtoken::encode(&header, &expired, &ops.key).unwrap(), "accounting").is_err());
        assert!(trust.verify("not-a-token", "accounting").is_err());
        assert!(Signer::new(&other_keys[0].1, &trust).is_err_and(|e| matches!(e, CredentialError::Untrusted)));
    }

    #[test]
    fn grants_name_caller_method_and_route() {
        const GRANTS: &[Grant] = &[Grant::new("gateway", "GET", "/v1/ledger/*"), Grant::new("interest", "*", "/v1/x")];
        assert!(allowed(GRANTS, "gateway", "GET", "/v1/ledger/accounts/{id}/balance"));
        assert!(!allowed(GRANTS, "gateway", "POST", "/v1/ledger/deposits"));
        assert!(allowed(GRANTS, "interest", "POST", "/v1/x"));
        assert!(!allowed(GRANTS, "interest", "POST", "/v1/x/y"));
        assert!(!allowed(GRANTS, "ops", "GET", "/v1/x"));
    }
}
