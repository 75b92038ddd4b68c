//! A simulator of the legacy core banking system that customers move off (docs/legacy-core.md):
//! the interest contract the new system expects from it (a quote and a payout for an account on a
//! business date, amounts per tax component), computed with its own arithmetic
//! (`arithmetic`, sharing no code with the `domain` crate) and its own withholding rates and
//! payout records in its own database, with switchable deviations so that the new system's
//! comparisons have something to find. It reads the bank's account, customer, product and ledger
//! data over HTTP and books its payouts in the bank's ledger.

mod arithmetic;
mod error;
mod http;
mod payouts;
mod state;
mod store;

use contracts::legacy::LegacyDeviations;
use platform::client::{ClientSettings, ServiceClient};
use platform::config::{Common, Env};
use platform::runtime::{App, Exposure};

pub use state::AppState;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/legacy-core");

pub struct Config {
    pub common: Common,
    pub client: ClientSettings,
    /// `(customer, account-info, accounting, interest)` base URLs.
    pub feeds: [String; 4],
    /// Deviations to switch on at start (`LEGACY_DEVIATIONS=tax_rounding,rate_change_late,hold_ignored`);
    /// unset keeps what the store has.
    pub deviations: Option<LegacyDeviations>,
}

fn parse_deviations(text: &str) -> anyhow::Result<LegacyDeviations> {
    let mut d = LegacyDeviations::default();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty() && *n != "none") {
        match name {
            "tax_rounding" => d.tax_rounding = true,
            "rate_change_late" => d.rate_change_late = true,
            "hold_ignored" => d.hold_ignored = true,
            other => anyhow::bail!(
                "LEGACY_DEVIATIONS: unknown deviation {other:?} (tax_rounding, rate_change_late, hold_ignored or none)"
            ),
        }
    }
    Ok(d)
}

impl Config {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let common = Common::from(env, "legacy-core", 8090, "legacy_core")?;
        Ok(Self {
            client: ClientSettings::from(env, &common.credentials.signer)?,
            common,
            feeds: [
                env.url("CUSTOMER_URL", "http://127.0.0.1:8081")?,
                env.url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082")?,
                env.url("ACCOUNTING_URL", "http://127.0.0.1:8083")?,
                env.url("INTEREST_URL", "http://127.0.0.1:8084")?,
            ],
            deviations: env.optional("LEGACY_DEVIATIONS").map(|t| parse_deviations(&t)).transpose()?,
        })
    }
}

pub async fn build(config: Config) -> anyhow::Result<App<AppState>> {
    let infra = platform::runtime::start(&config.common, &MIGRATOR, false, 10).await?;
    if let Some(d) = &config.deviations {
        store::set_deviations(&infra.pool, d).await?;
    }
    let client = |target, url: &str| ServiceClient::new(target, url, config.client.clone());
    let [customer, account_info, accounting, interest] = &config.feeds;
    let feeds = payouts::Feeds::new(
        client("customer", customer)?,
        client("account-info", account_info)?,
        client("accounting", accounting)?,
        client("interest", interest)?,
    );
    let payouts = payouts::Payouts::new(infra.pool.clone(), infra.clock.clone(), feeds);
    let state = AppState { pool: infra.pool.clone(), payouts };
    App::bind(
        &config.common,
        infra.clock.clone(),
        infra.checks(),
        http::routes(state.clone()),
        state,
        Exposure::Internal(http::GRANTS),
    )
    .await
}

pub async fn run() -> anyhow::Result<()> {
    let config = Config::from_env(&Env::process())?;
    platform::runtime::run_alone(&config.common.clone(), &MIGRATOR, build(config)).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn deviations_are_named_or_refused() {
        let d = super::parse_deviations("tax_rounding, hold_ignored").unwrap();
        assert!(d.tax_rounding && d.hold_ignored && !d.rate_change_late);
        assert_eq!(super::parse_deviations("none").unwrap(), Default::default());
        assert!(super::parse_deviations("rounding").is_err());
    }
}
