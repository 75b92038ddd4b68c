//! The system's public API as the bench uses it.

use anyhow::{bail, Context};
use chrono::NaiveDate;
use platform::credential::SignedClient;
use reqwest::Client;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Default, Clone)]
pub struct HttpMetrics {
    /// Calls between services, over HTTP or in-process (`peer_calls_total`).
    pub peer_calls: f64,
    /// "service METHOD route" → (seconds, requests).
    pub server: std::collections::HashMap<String, (f64, f64)>,
    /// A payout's stages in the interest service (`interest_payout_stage_seconds`) → (seconds, count).
    pub stages: std::collections::HashMap<String, (f64, f64)>,
}

/// `{method="POST",route="/v1/x"}` → `POST /v1/x`.
fn route(labels: &str) -> String {
    let label = |name: &str| {
        labels.split(&format!("{name}=\"")).nth(1).and_then(|rest| rest.split('"').next()).unwrap_or("?").to_string()
    };
    format!("{} {}", label("method"), label("route"))
}

/// The services the bench calls: (URL variable, default, service).
const SERVICES: [(&str, &str, &str); 5] = [
    ("CUSTOMER_URL", "http://127.0.0.1:8081", "customer"),
    ("ACCOUNT_INFO_URL", "http://127.0.0.1:8082", "account-info"),
    ("ACCOUNTING_URL", "http://127.0.0.1:8083", "accounting"),
    ("INTEREST_URL", "http://127.0.0.1:8084", "interest"),
    ("TAX_URL", "http://127.0.0.1:8085", "tax-consumer"),
];

pub struct Api {
    http: SignedClient,
    customer: String,
    account_info: String,
    accounting: String,
    interest: String,
    tax: String,
    kafka: String,
    tax_topic: String,
}

fn url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

async fn ok_json(r: reqwest::Response) -> anyhow::Result<Value> {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    Ok(body)
}

fn uuid(v: &Value, field: &str) -> anyhow::Result<Uuid> {
    v[field].as_str().and_then(|s| s.parse().ok()).with_context(|| format!("no {field} in {v}"))
}

impl Api {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            http: {
                // The operators' service credential (SERVICE_KEY_FILE, SERVICE_TRUST_FILE; deploy/up.sh
                // exports them): each request signed for the service it goes to.
                let credentials = platform::credential::Credentials::from_env(&platform::config::Env::process())
                    .context("the internal services need the operators' service credential")?;
                let http = Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build()?;
                let client = SignedClient::new(http, credentials.signer);
                for (var, default, service) in SERVICES {
                    client.serve(&url(var, default), service);
                }
                client
            },
            customer: url("CUSTOMER_URL", "http://127.0.0.1:8081"),
            account_info: url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082"),
            accounting: url("ACCOUNTING_URL", "http://127.0.0.1:8083"),
            interest: url("INTEREST_URL", "http://127.0.0.1:8084"),
            tax: url("TAX_URL", "http://127.0.0.1:8085"),
            kafka: url("KAFKA_BROKERS", "127.0.0.1:9092"),
            tax_topic: format!("{}tax.withholding.v1", url("KAFKA_TOPIC_PREFIX", "")),
        })
    }

    pub async fn today(&self) -> anyhow::Result<NaiveDate> {
        let v = ok_json(self.http.get(format!("{}/v1/admin/clock", self.interest)).send().await?).await?;
        v["today"].as_str().and_then(|s| s.parse().ok()).context("clock without today")
    }

    pub async fn set_clock(&self, day: NaiveDate) -> anyhow::Result<()> {
        let r =
            self.http.put(format!("{}/v1/admin/clock", self.interest)).json(&json!({ "today": day })).send().await?;
        ok_json(r).await.map(|_| ())
    }

    pub async fn product(&self, code: &str, from: NaiveDate) -> anyhow::Result<()> {
        let r = self.http.post(format!("{}/v1/interest/products", self.interest));
        ok_json(r.json(&json!({"code": code, "name": code})).send().await?).await?;
        let bands = json!([
            {"from": 0, "to": 50_000_000, "rate": "2.0"},
            {"from": 50_000_000, "to": 100_000_000, "rate": "1.5"},
            {"from": 100_000_000, "to": null, "rate": "0.5"},
        ]);
        let r = self.http.post(format!("{}/v1/interest/products/{code}/rate-schedules", self.interest));
        ok_json(r.json(&json!({"effective_from": from, "bands": bands})).send().await?).await.map(|_| ())
    }

    pub async fn estimate(&self, account: Uuid) -> anyhow::Result<()> {
        let r = self.http.get(format!("{}/v1/interest/accounts/{account}", self.interest)).send().await?;
        if !r.status().is_success() {
            bail!("HTTP {}", r.status());
        }
        r.bytes().await?;
        Ok(())
    }

    pub async fn health(&self) -> anyhow::Result<()> {
        let r = self.http.get(format!("{}/health/live", self.interest)).send().await?;
        if !r.status().is_success() {
            bail!("HTTP {}", r.status());
        }
        r.bytes().await?;
        Ok(())
    }
}

impl Api {
    /// Starts today's run over every account.
    pub async fn start_run(&self) -> anyhow::Result<Uuid> {
        let r = self.http.post(format!("{}/v1/interest/payout-runs", self.interest)).json(&json!({})).send().await?;
        uuid(&ok_json(r).await?, "run_id")
    }

    pub async fn run(&self, id: Uuid) -> anyhow::Result<Value> {
        ok_json(self.http.get(format!("{}/v1/interest/payout-runs/{id}", self.interest)).send().await?).await
    }

    /// A customer's "get interest now": paid, or already paid today, both count as answered.
    pub async fn pay(&self, account: Uuid) -> anyhow::Result<()> {
        let status = self.pay_status(account).await?;
        if (200..300).contains(&status) || status == 409 {
            Ok(())
        } else {
            bail!("HTTP {status}")
        }
    }

    /// The HTTP status of one payout request (a new Idempotency-Key each time).
    pub async fn pay_status(&self, account: Uuid) -> anyhow::Result<u16> {
        let r = self
            .http
            .post(format!("{}/v1/interest/accounts/{account}/payouts", self.interest))
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .send()
            .await?;
        let status = r.status().as_u16();
        r.bytes().await?;
        Ok(status)
    }

    /// Calls between services so far (`peer_calls_total` made by each of the five), and each
    /// service's time serving each route (`http_server_request_duration_seconds` sum, count).
    /// Only each service's own series are read from its scrape: in one process (`bank`) every
    /// port serves the same registry.
    pub async fn http_metrics(&self) -> anyhow::Result<HttpMetrics> {
        let mut m = HttpMetrics::default();
        let services = [
            ("customer", &self.customer),
            ("account-info", &self.account_info),
            ("accounting", &self.accounting),
            ("interest", &self.interest),
            ("tax-consumer", &self.tax),
        ];
        for (name, base) in services {
            let text = self.http.get(format!("{base}/metrics")).send().await?.text().await?;
            let (caller, own) = (format!("caller=\"{name}\""), format!("service=\"{name}\""));
            for line in text.lines() {
                let Some((series, value)) = line.rsplit_once(' ') else { continue };
                let Ok(value) = value.parse::<f64>() else { continue };
                let stage = |labels: &str| {
                    labels.split("stage=\"").nth(1).and_then(|r| r.split('"').next()).map(str::to_string)
                };
                if series.starts_with("peer_calls_total") && series.contains(&caller) {
                    m.peer_calls += value;
                } else if name == "interest" && series.starts_with("interest_payout_stage_seconds_") {
                    if let Some(labels) = series.strip_prefix("interest_payout_stage_seconds_sum") {
                        m.stages.entry(stage(labels).unwrap_or_default()).or_default().0 += value;
                    } else if let Some(labels) = series.strip_prefix("interest_payout_stage_seconds_count") {
                        m.stages.entry(stage(labels).unwrap_or_default()).or_default().1 += value;
                    }
                } else if !series.contains(&own) {
                    continue;
                } else if let Some(labels) = series.strip_prefix("http_server_request_duration_seconds_sum") {
                    m.server.entry(format!("{name} {}", route(labels))).or_default().0 += value;
                } else if let Some(labels) = series.strip_prefix("http_server_request_duration_seconds_count") {
                    m.server.entry(format!("{name} {}", route(labels))).or_default().1 += value;
                }
            }
        }
        Ok(m)
    }
}

impl Api {
    /// Lag from each payout's commit (its `created_at`) to its withholding record (`recorded_at`),
    /// for payouts of `day` made since `since`; waits until each has its record (or 3 minutes), and
    /// counts those still without one as missing.
    pub async fn tax_lag(
        &self,
        day: NaiveDate,
        since: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<crate::load::Stats> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        loop {
            let mut payouts = Vec::new();
            for p in
                self.pages(&format!("{}/v1/interest/payouts?from={day}&to={day}", self.interest), "payouts").await?
            {
                let (Some(id), Some(at)) = (p["payout_id"].as_str(), p["created_at"].as_str()) else { continue };
                let at: chrono::DateTime<chrono::Utc> = at.parse()?;
                if at >= since {
                    payouts.push((id.to_string(), at));
                }
            }
            let recorded: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> = self
                .pages(&format!("{}/v1/tax/withholdings?from={day}&to={day}", self.tax), "withholdings")
                .await?
                .iter()
                .filter_map(|w| Some((w["payout_id"].as_str()?.to_string(), w["recorded_at"].as_str()?.parse().ok()?)))
                .collect();
            let all = payouts.iter().all(|(id, _)| recorded.contains_key(id));
            if all || std::time::Instant::now() > deadline {
                let mut s = crate::load::Stats::default();
                for (id, at) in &payouts {
                    match recorded.get(id) {
                        Some(r) => s.micros.push((*r - *at).num_microseconds().unwrap_or(0).max(0) as u64),
                        None => s.errors += 1,
                    }
                }
                s.elapsed = std::time::Duration::from_secs(1);
                return Ok(s);
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }

    async fn pages(&self, base: &str, field: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let url = match &after {
                Some(a) => format!("{base}&limit=5000&after={a}"),
                None => format!("{base}&limit=5000"),
            };
            let v = ok_json(self.http.get(url).send().await?).await?;
            out.extend(v[field].as_array().cloned().unwrap_or_default());
            match v["next_after"].as_str() {
                Some(a) => after = Some(a.to_string()),
                None => return Ok(out),
            }
        }
    }

    pub async fn monthly_payouts(&self, first_day: &str) -> anyhow::Result<i64> {
        let month = &first_day[..7];
        let v =
            ok_json(self.http.get(format!("{}/v1/tax/reports/monthly?month={month}", self.tax)).send().await?).await?;
        Ok(v["payouts"].as_i64().unwrap_or(0))
    }

    /// The broker the tax events go to (`KAFKA_BROKERS`).
    pub fn kafka(&self) -> &str {
        &self.kafka
    }

    /// Writes `n` valid tax events dated `first_day` straight to the topic; returns when it started.
    pub async fn produce_tax_events(&self, n: usize, first_day: &str) -> anyhow::Result<std::time::Instant> {
        use rdkafka::config::ClientConfig;
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.kafka)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            // An unreachable broker fails in 30 s, not librdkafka's default five minutes.
            .set("message.timeout.ms", "30000")
            .create()?;
        let t = std::time::Instant::now();
        let events: Vec<(String, String)> = (0..n)
            .map(|_| {
                let account = Uuid::new_v4();
                let e = json!({
                    "event_id": Uuid::new_v4(), "schema_version": 1, "payout_id": Uuid::new_v4(),
                    "account_id": account, "customer_id": Uuid::new_v4(), "business_date": first_day,
                    "gross": 1000, "income_tax": 140, "local_tax": 10, "rural_special_tax": 0,
                    "tax_category": "GENERAL", "occurred_at": "2030-01-01T00:00:00Z"
                });
                (account.to_string(), e.to_string())
            })
            .collect();
        for chunk in events.chunks(2000) {
            let sends = chunk.iter().map(|(k, p)| {
                producer.send(FutureRecord::to(&self.tax_topic).key(k).payload(p), std::time::Duration::from_secs(30))
            });
            for r in futures::future::join_all(sends).await {
                r.map_err(|(e, _)| e)?;
            }
        }
        Ok(t)
    }
}
