//! Where the token keys come from and how they stay current: a JWKS document or a PEM public key
//! from configuration, loaded once; or the identity provider's JWKS URL, fetched at start-up (or
//! the start fails), refreshed in the background, and refetched on demand when a token names a
//! key not held yet (the provider rotated). On-demand fetches are one at a time (concurrent misses
//! share one) and at most one per `min_refresh` in all, whatever kids tokens name: forged kids
//! cannot become a flood of fetches. A failed fetch keeps the last good keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// How long one JWKS fetch may take; a verification waiting on an on-demand fetch waits this at most.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Providers' documents are a few KiB; a larger answer is not a key set.
const MAX_JWKS_BYTES: usize = 1 << 20;

/// Where the keys come from (the gateway's configuration).
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS document (`{"keys": [...]}`) or a PEM public key.
    Text(String),
    /// The identity provider's JWKS, refetched every `refresh`, and on an unknown `kid` at most
    /// once per `min_refresh`.
    Url { url: String, refresh: Duration, min_refresh: Duration },
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no usable EC P-256 signing key in the configured keys")]
    NoKeys,
    #[error("{0}")]
    Bad(String),
    #[error("cannot fetch the JWKS from {url}: {reason}")]
    Fetch { url: String, reason: String },
}

/// One generation of keys.
pub(crate) enum KeySet {
    /// A PEM public key: used whatever `kid` a token names. A PEM has no key id to match, and
    /// identity providers send a `kid` anyway.
    Single(DecodingKey),
    /// A JWKS: a token's `kid` picks the key; a token without one is accepted only when the set
    /// holds exactly one key.
    Set { named: HashMap<String, DecodingKey>, unnamed: Vec<DecodingKey> },
}

impl KeySet {
    /// A JWKS document or a PEM public key.
    pub(crate) fn parse(text: &str) -> Result<Self, KeyError> {
        if text.trim_start().starts_with('{') {
            return Self::from_jwks(text);
        }
        DecodingKey::from_ec_pem(text.as_bytes()).map(KeySet::Single).map_err(|e| KeyError::Bad(e.to_string()))
    }

    /// The EC P-256 signing keys of a JWKS document. Providers publish other keys beside them
    /// (RSA, encryption keys, curves this crate cannot read): those are skipped, as they could not
    /// verify an ES256 token anyway; a document without one usable key is refused.
    fn from_jwks(text: &str) -> Result<Self, KeyError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let doc: Document =
            serde_json::from_str(text).map_err(|e| KeyError::Bad(format!("not a JWKS document: {e}")))?;
        let (mut named, mut unnamed) = (HashMap::new(), Vec::new());
        for value in doc.keys {
            let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
            if !es256_signing(&jwk) {
                continue;
            }
            let key = DecodingKey::from_jwk(&jwk).map_err(|e| KeyError::Bad(e.to_string()))?;
            match jwk.common.key_id {
                Some(kid) => {
                    named.insert(kid, key);
                }
                None => unnamed.push(key),
            }
        }
        if named.is_empty() && unnamed.is_empty() {
            return Err(KeyError::NoKeys);
        }
        Ok(KeySet::Set { named, unnamed })
    }

    /// The key for a token naming `kid` (or none).
    pub(crate) fn find(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match (self, kid) {
            (KeySet::Single(key), _) => Some(key),
            (KeySet::Set { named, .. }, Some(kid)) => named.get(kid),
            (KeySet::Set { named, unnamed }, None) => match (named.len(), unnamed.as_slice()) {
                (1, []) => named.values().next(),
                (0, [key]) => Some(key),
                _ => None,
            },
        }
    }
}

fn es256_signing(jwk: &Jwk) -> bool {
    matches!(&jwk.algorithm, AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256)
        && !matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption))
        && jwk.common.key_algorithm.is_none_or(|alg| alg == KeyAlgorithm::ES256)
}

/// The keys a verifier holds.
pub(crate) enum Keys {
    Fixed(Arc<KeySet>),
    Remote(Arc<Remote>),
}

impl Keys {
    /// Loads the keys; from a URL, fetches them first and starts keeping them fresh (for as long
    /// as these keys live).
    pub(crate) async fn load(source: &KeySource) -> Result<Self, KeyError> {
        match source {
            KeySource::Text(text) => Ok(Keys::Fixed(Arc::new(KeySet::parse(text)?))),
            KeySource::Url { url, refresh, min_refresh } => {
                if url.starts_with("http://") {
                    tracing::warn!(%url, "the token keys are fetched over plain HTTP: anyone on the path could replace them");
                }
                let http = client().map_err(|e| KeyError::Fetch { url: url.clone(), reason: chain(&e) })?;
                let first = fetch(&http, url).await?;
                let remote = Arc::new(Remote {
                    url: url.clone(),
                    http,
                    min_refresh: *min_refresh,
                    keys: RwLock::new(Arc::new(first)),
                    fetching: tokio::sync::Mutex::new(None),
                });
                tokio::spawn(keep_fresh(Arc::downgrade(&remote), *refresh));
                Ok(Keys::Remote(remote))
            }
        }
    }

    /// The keys now: a snapshot, so a refresh never waits for verifications, nor they for it.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        match self {
            Keys::Fixed(set) => set.clone(),
            Keys::Remote(remote) => remote.current(),
        }
    }

    /// After a token named a key `seen` does not hold: newer keys, if a fetch is allowed now or
    /// another has just finished; `None` when there is nothing newer to look in.
    pub(crate) async fn after_miss(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        match self {
            Keys::Fixed(_) => None,
            Keys::Remote(remote) => remote.after_miss(seen).await,
        }
    }
}

pub(crate) struct Remote {
    url: String,
    http: reqwest::Client,
    min_refresh: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// Held while fetching, so fetches never overlap (single flight); holds when the last
    /// on-demand fetch began.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl Remote {
    fn current(&self) -> Arc<KeySet> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fetches and swaps in the new keys; on failure the last good keys stay.
    async fn fetch_and_store(&self, trigger: &'static str) {
        let outcome = match fetch(&self.http, &self.url).await {
            Ok(set) => {
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
                "ok"
            }
            Err(e) => {
                tracing::warn!(error = %e, trigger, "the token keys could not be refreshed; the last good keys stay");
                "failed"
            }
        };
        metrics::counter!("gateway_jwks_fetches_total", "trigger" => trigger, "outcome" => outcome).increment(1);
    }

    async fn refresh(&self) {
        let _flight = self.fetching.lock().await;
        // The periodic fetch leaves the on-demand budget alone: a key published just after it must
        // still be fetched when the first token naming it arrives.
        self.fetch_and_store("periodic").await;
    }

    async fn after_miss(&self, seen: &Arc<KeySet>) -> Option<Arc<KeySet>> {
        let mut last = self.fetching.lock().await;
        let current = self.current();
        // A fetch finished while this miss waited: its keys are as new as another fetch would give.
        if !Arc::ptr_eq(&current, seen) {
            return Some(current);
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return None;
        }
        *last = Some(Instant::now());
        self.fetch_and_store("unknown-kid").await;
        let current = self.current();
        (!Arc::ptr_eq(&current, seen)).then_some(current)
    }
}

fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT / 2)
        // Keys must not be taken from a plain-HTTP hop of an HTTPS URL.
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let downgrade =
                attempt.url().scheme() == "http" && attempt.previous().iter().any(|u| u.scheme() == "https");
            if downgrade {
                attempt.error("redirected from https to plain http")
            } else if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
}

async fn fetch(http: &reqwest::Client, url: &str) -> Result<KeySet, KeyError> {
    let fail = |reason: String| KeyError::Fetch { url: url.to_string(), reason };
    let mut response =
        http.get(url).header(reqwest::header::ACCEPT, "application/json").send().await.map_err(|e| fail(chain(&e)))?;
    if !response.status().is_success() {
        return Err(fail(format!("it answered {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| fail(chain(&e)))? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(fail(format!("the answer is larger than {MAX_JWKS_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let text = std::str::from_utf8(&body).map_err(|e| fail(format!("the answer is not text: {e}")))?;
    KeySet::from_jwks(text).map_err(|e| fail(e.to_string()))
}

/// Refreshes the keys every `every` until they are dropped (with their verifier).
async fn keep_fresh(remote: Weak<Remote>, every: Duration) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(remote) = remote.upgrade() else { return };
        remote.refresh().await;
    }
}

/// An error with its causes: reqwest's own message alone ("error sending request") says little.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    use uuid::Uuid;

    use super::*;
    use crate::auth::tests::b64url::encode_url;
    use crate::auth::Verifier;

    /// A fresh EC P-256 signing key and its JWK.
    struct Signer {
        kid: String,
        key: EncodingKey,
        jwk: serde_json::Value,
    }

    impl Signer {
        fn new(kid: &str) -> Self {
            let rng = SystemRandom::new();
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
            // The uncompressed point: 0x04, then x and y, 32 bytes each.
            let point = pair.public_key().as_ref();
            let jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
                "x": encode_url(&point[1..33]), "y": encode_url(&point[33..65]),
            });
            Self { kid: kid.into(), key: EncodingKey::from_ec_der(pkcs8.as_ref()), jwk }
        }

        /// A five-minute token for the test verifier's issuer and audience, naming `kid`.
        fn token_as(&self, kid: &str) -> String {
            let now = jsonwebtoken::get_current_timestamp();
            let claims = serde_json::json!({"sub": "x", "scope": "customer", "iss": "bank", "aud": "api",
                "iat": now, "exp": now + 300});
            let mut header = Header::new(Algorithm::ES256);
            header.kid = Some(kid.into());
            jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
        }

        fn token(&self) -> String {
            self.token_as(&self.kid)
        }
    }

    /// The identity provider's JWKS endpoint: its key set swappable, its fetches counted.
    #[derive(Default)]
    struct Provider {
        keys: RwLock<Vec<serde_json::Value>>,
        fetches: AtomicUsize,
        broken: AtomicBool,
        delay_ms: AtomicU64,
    }

    impl Provider {
        fn publish(&self, signers: &[&Signer]) {
            *self.keys.write().unwrap() = signers.iter().map(|s| s.jwk.clone()).collect();
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    /// Serves `provider` on a free local port; its JWKS URL.
    async fn serve(provider: Arc<Provider>) -> String {
        async fn jwks(State(p): State<Arc<Provider>>) -> Response {
            p.fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(p.delay_ms.load(Ordering::SeqCst))).await;
            if p.broken.load(Ordering::SeqCst) {
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
            let keys = p.keys.read().unwrap().clone();
            axum::Json(serde_json::json!({ "keys": keys })).into_response()
        }
        let app = axum::Router::new().route("/jwks", axum::routing::get(jwks)).with_state(provider);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    async fn from_url(url: &str, refresh: Duration, min_refresh: Duration) -> Result<Verifier, KeyError> {
        Verifier::load(&KeySource::Url { url: url.into(), refresh, min_refresh }, "bank", "api", 5, 3600).await
    }

    /// Polls `what` every 20 ms until it holds, for at most `within`.
    async fn eventually<F: std::future::Future<Output = bool>>(within: Duration, what: impl Fn() -> F) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if what().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn keys_rotate_while_tokens_are_verified_without_a_restart() {
        let (a, b) = (Arc::new(Signer::new("key-a")), Arc::new(Signer::new("key-b")));
        let provider = Arc::new(Provider::default());
        provider.publish(&[&a]);
        let url = serve(provider.clone()).await;
        let refresh = Duration::from_millis(400);
        let v = Arc::new(from_url(&url, refresh, Duration::from_secs(30)).await.unwrap());

        // Callers keep coming, each signed with a key the issuer uses in the current phase:
        // 0 A only, 1 A and B (the overlap), 2 B only.
        let phase = Arc::new(AtomicU8::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let passed: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let mut callers = tokio::task::JoinSet::new();
        for caller in 0..4usize {
            let (v, a, b, phase, stop, passed) =
                (v.clone(), a.clone(), b.clone(), phase.clone(), stop.clone(), passed.clone());
            callers.spawn(async move {
                let mut failed = Vec::new();
                for n in caller.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let p = phase.load(Ordering::SeqCst);
                    let signer = match p {
                        0 => &a,
                        1 if n % 2 == 0 => &a,
                        _ => &b,
                    };
                    match v.verify(&signer.token()).await {
                        Ok(_) => drop(passed[usize::from(p)].fetch_add(1, Ordering::SeqCst)),
                        Err(e) => failed.push(format!("phase {p}, {}: {e}", signer.kid)),
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                failed
            });
        }
        let ran = |p: usize| {
            let passed = passed.clone();
            move || {
                let passed = passed.clone();
                async move { passed[p].load(Ordering::SeqCst) >= 50 }
            }
        };
        assert!(eventually(Duration::from_secs(20), ran(0)).await, "callers with key A");

        // B is published: the first token naming it is accepted at once (on demand, no restart).
        provider.publish(&[&a, &b]);
        let before = provider.fetches();
        assert!(v.verify(&b.token()).await.is_ok(), "B is accepted as soon as it is published");
        assert!(provider.fetches() > before, "the unknown kid made the keys be fetched");
        phase.store(1, Ordering::SeqCst);
        // The overlap lasts a few periodic refreshes, swapped in under the callers.
        let overlap_from = provider.fetches();
        assert!(eventually(Duration::from_secs(20), ran(1)).await, "callers with A and B");
        assert!(eventually(Duration::from_secs(20), || async { provider.fetches() >= overlap_from + 2 }).await);

        // The issuer signs with B only, then A is withdrawn (once tokens in flight are through).
        phase.store(2, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        provider.publish(&[&b]);
        // A is known until a fetch drops it, and a known kid fetches nothing: the periodic refresh.
        let a_token = a.token();
        let refused = eventually(Duration::from_secs(20), || async { v.verify(&a_token).await.is_err() }).await;
        assert!(refused, "A is refused once the periodic refresh has seen it withdrawn");
        assert!(eventually(Duration::from_secs(20), ran(2)).await, "callers with B");

        stop.store(true, Ordering::SeqCst);
        let failed: Vec<String> = callers.join_all().await.into_iter().flatten().collect();
        assert!(failed.is_empty(), "tokens signed with a published key were refused: {failed:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_unknown_kids_costs_one_fetch_per_min_refresh() {
        let a = Signer::new("key-a");
        let provider = Arc::new(Provider::default());
        provider.publish(&[&a]);
        let url = serve(provider.clone()).await;
        let min_refresh = Duration::from_secs(2);
        let v = Arc::new(from_url(&url, Duration::from_secs(3600), min_refresh).await.unwrap());
        assert_eq!(provider.fetches(), 1, "fetched at start-up");
        // A slow provider: the misses arrive while the first one's fetch is under way, and share it.
        provider.delay_ms.store(300, Ordering::SeqCst);

        let burst = |v: Arc<Verifier>| {
            let tokens: Vec<String> = (0..100).map(|_| a.token_as(&Uuid::new_v4().to_string())).collect();
            async move {
                let mut set = tokio::task::JoinSet::new();
                for t in tokens {
                    let v = v.clone();
                    set.spawn(async move { v.verify(&t).await.is_err() });
                }
                set.join_all().await.into_iter().all(|refused| refused)
            }
        };
        assert!(burst(v.clone()).await, "unknown kids are refused");
        assert_eq!(provider.fetches(), 2, "100 unknown kids at once: one fetch");
        assert!(burst(v.clone()).await);
        assert_eq!(provider.fetches(), 2, "again within AUTH_JWKS_MIN_REFRESH_SECS: none");
        assert!(v.verify(&a.token()).await.is_ok(), "the known key still passes");

        tokio::time::sleep(min_refresh + Duration::from_millis(100)).await;
        assert!(burst(v.clone()).await);
        assert_eq!(provider.fetches(), 3, "after AUTH_JWKS_MIN_REFRESH_SECS: one more");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_tokens_naming_a_new_key_share_one_fetch_and_all_pass() {
        let (a, b) = (Signer::new("key-a"), Signer::new("key-b"));
        let provider = Arc::new(Provider::default());
        provider.publish(&[&a]);
        let url = serve(provider.clone()).await;
        let v = Arc::new(from_url(&url, Duration::from_secs(3600), Duration::from_secs(30)).await.unwrap());
        provider.publish(&[&a, &b]);
        provider.delay_ms.store(300, Ordering::SeqCst);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (v, t) = (v.clone(), b.token());
            set.spawn(async move { v.verify(&t).await.is_ok() });
        }
        assert!(set.join_all().await.into_iter().all(|ok| ok), "every caller waited for the one fetch");
        assert_eq!(provider.fetches(), 2, "start-up, then one fetch for all twenty");
    }

    #[tokio::test]
    async fn start_up_fails_with_a_clear_message_when_the_keys_cannot_be_fetched() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/jwks", listener.local_addr().unwrap())
        };
        let e = from_url(&closed, Duration::from_secs(300), Duration::from_secs(30)).await.err().unwrap();
        assert!(e.to_string().starts_with(&format!("cannot fetch the JWKS from {closed}: ")), "{e}");

        let provider = Arc::new(Provider::default());
        let url = serve(provider.clone()).await;
        let e = from_url(&url, Duration::from_secs(300), Duration::from_secs(30)).await.err().unwrap();
        assert!(e.to_string().contains("no usable EC P-256 signing key"), "an empty set: {e}");
        provider.broken.store(true, Ordering::SeqCst);
        let e = from_url(&url, Duration::from_secs(300), Duration::from_secs(30)).await.err().unwrap();
        assert!(e.to_string().contains("500"), "{e}");
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_last_good_keys() {
        let (a, b) = (Signer::new("key-a"), Signer::new("key-b"));
        let provider = Arc::new(Provider::default());
        provider.publish(&[&a]);
        let url = serve(provider.clone()).await;
        let v = from_url(&url, Duration::from_millis(100), Duration::from_millis(100)).await.unwrap();

        provider.broken.store(true, Ordering::SeqCst);
        let broken_from = provider.fetches();
        assert!(eventually(Duration::from_secs(20), || async { provider.fetches() >= broken_from + 3 }).await);
        assert!(v.verify(&a.token()).await.is_ok(), "A still passes after failed refreshes");
        assert!(v.verify(&b.token()).await.is_err(), "an unknown kid while the provider fails");
        assert!(v.verify(&a.token()).await.is_ok(), "and A still passes after a failed on-demand fetch");

        provider.publish(&[&a, &b]);
        provider.broken.store(false, Ordering::SeqCst);
        assert!(eventually(Duration::from_secs(20), || async { v.verify(&b.token()).await.is_ok() }).await);
    }
}
