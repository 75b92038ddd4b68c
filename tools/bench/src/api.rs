//! The system's public API as the bench uses it.

use anyhow::{bail, Context};
use chrono::NaiveDate;
use reqwest::Client;
use serde_json::{json, Value};
use uuid::Uuid;

pub struct Api {
    http: Client,
    customer: String,
    account_info: String,
    accounting: String,
    interest: String,
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
            http: Client::builder().pool_max_idle_per_host(256).tcp_nodelay(true).build()?,
            customer: url("CUSTOMER_URL", "http://127.0.0.1:8081"),
            account_info: url("ACCOUNT_INFO_URL", "http://127.0.0.1:8082"),
            accounting: url("ACCOUNTING_URL", "http://127.0.0.1:8083"),
            interest: url("INTEREST_URL", "http://127.0.0.1:8084"),
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

    pub async fn customer(&self) -> anyhow::Result<Uuid> {
        let r = self.http.post(format!("{}/v1/customers", self.customer));
        uuid(&ok_json(r.json(&json!({"name": "bench", "tax_category": "GENERAL"})).send().await?).await?, "customer_id")
    }

    pub async fn account(&self, customer: Uuid, product: &str) -> anyhow::Result<Uuid> {
        let r = self.http.post(format!("{}/v1/accounts", self.account_info));
        let body = json!({"customer_id": customer, "product_code": product});
        uuid(&ok_json(r.json(&body).send().await?).await?, "account_id")
    }

    pub async fn deposit(&self, account: Uuid, amount: i64, value_date: Option<NaiveDate>) -> anyhow::Result<()> {
        let mut body = json!({ "amount": amount });
        if let Some(d) = value_date {
            body["value_date"] = json!(d);
        }
        let r = self
            .http
            .post(format!("{}/v1/ledger/accounts/{account}/deposits", self.accounting))
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .json(&body);
        ok_json(r.send().await?).await.map(|_| ())
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
        let r = self
            .http
            .post(format!("{}/v1/interest/accounts/{account}/payouts", self.interest))
            .header("Idempotency-Key", Uuid::new_v4().to_string())
            .send()
            .await?;
        let status = r.status();
        r.bytes().await?;
        if status.is_success() || status.as_u16() == 409 {
            Ok(())
        } else {
            bail!("HTTP {status}")
        }
    }
}
