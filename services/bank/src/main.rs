//! `bank`: the five services in one process, the same code as the five binaries — and the gateway
//! in front of them when its token keys are configured (`AUTH_PUBLIC_KEY_FILE`, …), forwarding to
//! the services' own ports in this process. Each service
//! keeps its own port, database and migrations and reads its settings under its own prefix first
//! (`CUSTOMER_PORT`, `ACCOUNTING_DATABASE_URL`, … then the shared `REDIS_URL`, `CLOCK_MODE`, …).
//! Calls between services go through the same peer traits as over HTTP, implemented by direct
//! calls into the owner's use cases (same contract types, same timeout, same errors, no
//! serialization). Composition only: this crate holds no rules.

use std::sync::Arc;

use peers::{Accounts, Customers, Late, Ledger, Peers, Products};
use platform::config::Env;
use tokio::sync::watch;

/// One caller's peers, wired once every service is built (they call each other in cycles).
struct Wiring {
    caller: &'static str,
    ledger: Arc<Late<dyn Ledger>>,
    accounts: Arc<Late<dyn Accounts>>,
    customers: Arc<Late<dyn Customers>>,
    products: Arc<Late<dyn Products>>,
}

impl Wiring {
    fn new(caller: &'static str) -> Self {
        Self {
            caller,
            ledger: Late::new("accounting"),
            accounts: Late::new("account-info"),
            customers: Late::new("customer"),
            products: Late::new("interest"),
        }
    }

    fn peers(&self) -> Peers {
        Peers {
            ledger: self.ledger.clone(),
            // In one process there is no separate connection pool or breaker to protect.
            ledger_sync: self.ledger.clone(),
            accounts: self.accounts.clone(),
            customers: self.customers.clone(),
            products: self.products.clone(),
        }
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let shared = Env::process();
    // The in-process peers' timeout; each service's own client settings carry its own key.
    let timeout = shared.millis("HTTP_CLIENT_TIMEOUT_MS", 3000)?;
    let configs = (
        customer::Config::from_env(&Env::for_service("customer"))?,
        account_info::Config::from_env(&Env::for_service("account-info"))?,
        accounting::Config::from_env(&Env::for_service("accounting"))?,
        interest::Config::from_env(&Env::for_service("interest"))?,
        tax_consumer::Config::from_env(&Env::for_service("tax-consumer"))?,
    );
    let _telemetry = platform::telemetry::init("bank", shared.optional("OTEL_EXPORTER_OTLP_ENDPOINT").as_deref())?;

    let wiring: Vec<Wiring> = ["customer", "account-info", "accounting", "interest"].map(Wiring::new).into();
    let customer = customer::build(configs.0, wiring[0].peers()).await?;
    let account_info = account_info::build(configs.1, wiring[1].peers()).await?;
    let accounting = accounting::build(configs.2, wiring[2].peers()).await?;
    let interest = interest::build(configs.3, wiring[3].peers()).await?;
    let tax = tax_consumer::build(configs.4).await?;
    // The gateway speaks HTTP to the services (it is their public face); here, to this process's ports.
    let gateway_env = Env::for_service("gateway");
    let has_keys = ["AUTH_JWKS_URL", "AUTH_JWKS", "AUTH_JWKS_FILE", "AUTH_PUBLIC_KEY_FILE"]
        .iter()
        .any(|v| gateway_env.optional(v).is_some());
    let gateway = match has_keys.then(|| gateway::Config::from_env(&gateway_env)).transpose()? {
        Some(mut config) => {
            let local = |port: u16| format!("http://127.0.0.1:{port}");
            config.upstreams = [
                local(customer.port()),
                local(account_info.port()),
                local(accounting.port()),
                local(interest.port()),
                local(tax.port()),
            ];
            Some(gateway::build(config).await?)
        }
        None => {
            tracing::info!("no token keys configured (AUTH_PUBLIC_KEY_FILE, …): the gateway is not started");
            None
        }
    };
    for w in &wiring {
        w.ledger.set(accounting::in_process_peer(&accounting.state, w.caller, timeout));
        w.accounts.set(account_info::in_process_peer(&account_info.state, w.caller, timeout));
        w.customers.set(customer::in_process_peer(&customer.state, w.caller, timeout));
        w.products.set(interest::in_process_peer(&interest.state, w.caller, timeout));
    }

    let (stop, stopping) = watch::channel(false);
    tokio::spawn(async move {
        platform::server::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let gateway = async {
        match gateway {
            Some(g) => g.run_until(stopped(stopping.clone())).await,
            None => Ok(()),
        }
    };
    let serving = tokio::try_join!(
        gateway,
        customer.run_until(stopped(stopping.clone())),
        account_info.run_until(stopped(stopping.clone())),
        accounting.run_until(stopped(stopping.clone())),
        interest.run_until(stopped(stopping.clone())),
        tax.run_until(stopped(stopping.clone())),
    );
    serving.map(|_| ())
}
