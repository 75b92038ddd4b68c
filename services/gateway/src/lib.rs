//! The gateway: the only public entry for the mobile channel, ops and batch callers. It verifies
//! bearer JWTs (ES256, keys from configuration), lets a customer see and pay only their own
//! accounts (another's is a 404: existence is not leaked), gives each ops route its scope (403
//! otherwise), limits each customer's estimates and payouts (429 with `Retry-After`), audits every
//! money-moving or ops request in its own database, and forwards to the five services over HTTP.

mod audit;
mod auth;
mod error;
mod forward;
mod guard;
mod http;
mod limits;
mod rollout;
mod state;

use std::num::NonZeroU64;
use std::sync::Arc;

use platform::client::{ClientSettings, ServiceClient};
use platform::clock::Clock;
use platform::config::{Common, Env};
use platform::runtime::{App, Exposure};

pub use auth::{KeySource, Scope};
pub use state::AppState;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/gateway");

/// The gateway's settings.
pub struct Config {
    pub common: Common,
    pub client: ClientSettings,
    /// `(customer, account-info, accounting, interest, tax-consumer)` base URLs.
    pub upstreams: [String; 5],
    /// A JWKS document or a PEM public key (`AUTH_JWKS`, or the file `AUTH_JWKS_FILE` /
    /// `AUTH_PUBLIC_KEY_FILE` names), or the identity provider's JWKS URL (`AUTH_JWKS_URL`).
    pub keys: KeySource,
    pub issuer: String,
    pub audience: String,
    pub leeway_secs: u64,
    /// The longest `exp - iat` a token may have (`AUTH_MAX_TOKEN_LIFETIME_SECS`).
    pub max_token_lifetime_secs: u64,
    pub quotas: limits::Quotas,
    pub client_address: guard::ClientAddress,
    /// Whether to migrate the database at start (`MIGRATE_ON_START`, default true). Off where a
    /// migration job does it as the tables' owner and the gateway runs as a role that may only
    /// read and append (the audit log's append-only rule then holds for it too).
    pub migrate_on_start: bool,
    /// How old the rollout policy a replica routes on may be (`ROLLOUT_REFRESH_MS`).
    pub rollout_refresh: std::time::Duration,
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let text =
            match (env.optional("AUTH_JWKS"), env.optional("AUTH_JWKS_FILE"), env.optional("AUTH_PUBLIC_KEY_FILE")) {
                (Some(inline), _, _) => Some(inline),
                (None, Some(path), _) | (None, None, Some(path)) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("cannot read the token keys from {path}: {e}"))?,
                ),
                (None, None, None) => None,
            };
        let secs =
            |name, default| env.parse::<NonZeroU64>(name, default).map(|n| std::time::Duration::from_secs(n.get()));
        let keys = match (env.optional("AUTH_JWKS_URL"), text) {
            (Some(_), Some(_)) => anyhow::bail!(
                "AUTH_JWKS_URL and fixed token keys (AUTH_JWKS, AUTH_JWKS_FILE or AUTH_PUBLIC_KEY_FILE) are both set: \
                 set one"
            ),
            (Some(_), None) => KeySource::Url {
                url: env.url("AUTH_JWKS_URL", "")?,
                refresh: secs("AUTH_JWKS_REFRESH_SECS", "300")?,
                min_refresh: secs("AUTH_JWKS_MIN_REFRESH_SECS", "30")?,
            },
            (None, Some(text)) => KeySource::Text(text),
            (None, None) => anyhow::bail!(
                "the gateway needs the public keys of its token issuer: set AUTH_JWKS_URL (the identity provider's \
                 JWKS), AUTH_JWKS_FILE (a JWKS document), AUTH_PUBLIC_KEY_FILE (a PEM public key) or AUTH_JWKS \
                 (inline); deploy/up.sh makes a local pair"
            ),
        };
        // Its own key signs its calls to the services; its callers prove who they are with their
        // bearer tokens (the platform's routes alone need a service credential).
        let common = Common::from(env, "gateway", 8080, "gateway")?;
        Ok(Self {
            client: ClientSettings::from(env, &common.credentials.signer)?,
            common,
            upstreams: [
                env.url("CUSTOMER_URL", "http://127.0.0.1:8081")?,
                env.url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082")?,
                env.url("ACCOUNTING_URL", "http://127.0.0.1:8083")?,
                env.url("INTEREST_URL", "http://127.0.0.1:8084")?,
                env.url("TAX_URL", "http://127.0.0.1:8085")?,
            ],
            keys,
            issuer: env.var("AUTH_ISSUER", "interest-bank"),
            audience: env.var("AUTH_AUDIENCE", "interest-bank-api"),
            leeway_secs: env.parse("AUTH_LEEWAY_SECS", "30")?,
            max_token_lifetime_secs: env.parse::<NonZeroU64>("AUTH_MAX_TOKEN_LIFETIME_SECS", "3600")?.get(),
            quotas: limits::Quotas {
                estimates: env.parse("RATE_LIMIT_ESTIMATES_PER_MINUTE", "120")?,
                payouts: env.parse("RATE_LIMIT_PAYOUTS_PER_MINUTE", "10")?,
                ops: env.parse("RATE_LIMIT_OPS_PER_MINUTE", "600")?,
                per_address: env.parse("RATE_LIMIT_PER_ADDRESS_PER_MINUTE", "1200")?,
            },
            client_address: match env.var("CLIENT_ADDRESS_FROM", "peer").as_str() {
                "peer" => guard::ClientAddress::Peer,
                "x-forwarded-for" => guard::ClientAddress::ForwardedFor,
                other => anyhow::bail!(
                    "CLIENT_ADDRESS_FROM={other:?}: must be peer (the TCP peer) or x-forwarded-for (the last \
                     address, set by the proxy in front)"
                ),
            },
            migrate_on_start: env.parse("MIGRATE_ON_START", "true")?,
            rollout_refresh: env.millis("ROLLOUT_REFRESH_MS", 1_000)?,
        })
    }
}

/// Connects and migrates the audit database, loads the keys, and binds.
pub async fn build(config: Config) -> anyhow::Result<App<AppState>> {
    let (keys, lifetime) = (&config.keys, config.max_token_lifetime_secs);
    let verifier = auth::Verifier::load(keys, &config.issuer, &config.audience, config.leeway_secs, lifetime)
        .await
        .map_err(|e| anyhow::anyhow!("the token keys are not usable: {e}"))?;
    let pool = platform::db::connect(&config.common.database_url, 10, std::time::Duration::from_secs(30)).await?;
    if config.migrate_on_start {
        platform::db::migrate(&pool, &MIGRATOR).await?;
    }
    let client = |target, url: &str| ServiceClient::new(target, url, config.client.clone());
    let [customer, account_info, accounting, interest, tax] = &config.upstreams;
    let upstreams = state::Upstreams {
        customer: client("customer", customer)?,
        account_info: client("account-info", account_info)?,
        accounting: client("accounting", accounting)?,
        interest: client("interest", interest)?,
        tax: client("tax-consumer", tax)?,
    };
    let reconcile_http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60)).build()?;
    let reconcile_urls =
        reconcile::Urls { interest: interest.clone(), accounting: accounting.clone(), tax: tax.clone() };
    let redis =
        platform::redis::Redis::connect(&config.common.redis_url, &config.common.redis_prefix).await.map_err(|e| {
            anyhow::anyhow!("cannot connect to Redis at {}: {e}", platform::redis::redacted(&config.common.redis_url))
        })?;
    let limits = Arc::new(limits::Limits::new(config.quotas, Some(redis.clone())));
    let rollout = Arc::new(rollout::Rollout::new(rollout::load(&pool).await?, config.rollout_refresh, Some(redis)));
    tokio::spawn(rollout.clone().keep_published(pool.clone()));
    let state = AppState {
        rollout,
        reconcile: Arc::new((reconcile_http, reconcile_urls)),
        signer: config.common.credentials.signer.clone(),
        pool: pool.clone(),
        verifier: Arc::new(verifier),
        upstreams,
        limits,
        client_address: config.client_address,
        clock_manual: config.common.clock_manual,
    };
    let checks = vec![(
        "database",
        platform::server::check(move || {
            let pool = pool.clone();
            async move { platform::db::ping(&pool).await.map_err(|e| e.to_string()) }
        }),
    )];
    // The gateway serves no clock of its own: the manual clock is an ops route, with its scope.
    App::bind(&config.common, Clock::System, checks, http::routes(state.clone()), state, Exposure::Public).await
}

/// The gateway as its own process: settings from the environment, until SIGTERM.
pub async fn run() -> anyhow::Result<()> {
    let config = Config::from_env(&Env::process())?;
    platform::runtime::run_alone(&config.common.clone(), &MIGRATOR, build(config)).await
}
