//! Calls to the internal services with the operators' service credential: each request carries a
//! token for the service its URL is (`SERVICE_KEY`/`SERVICE_KEY_FILE` is the `ops` key,
//! `SERVICE_TRUST`/`SERVICE_TRUST_FILE` the trust set it is listed in; `bankctl credentials
//! generate` makes both, deploy/up.sh exports them).

use std::time::Duration;

use anyhow::Context;
use platform::credential::{Credentials, SignedClient};

use crate::{url, ACCOUNTING_URL, ACCOUNT_INFO_URL, CUSTOMER_URL, INTEREST_URL, LEGACY_CORE_URL, TAX_URL};

pub(crate) type Services = SignedClient;

/// A client signing for every service bankctl calls.
pub(crate) fn services(timeout: Duration) -> anyhow::Result<Services> {
    let credentials = Credentials::from_env(&platform::config::Env::process())
        .context("the internal services need the operators' service credential")?;
    let client = SignedClient::new(reqwest::Client::builder().timeout(timeout).build()?, credentials.signer);
    for (var, service) in [
        (&INTEREST_URL, "interest"),
        (&ACCOUNTING_URL, "accounting"),
        (&TAX_URL, "tax-consumer"),
        (&LEGACY_CORE_URL, "legacy-core"),
        (&ACCOUNT_INFO_URL, "account-info"),
        (&CUSTOMER_URL, "customer"),
    ] {
        client.serve(&url(var), service);
    }
    Ok(client)
}
