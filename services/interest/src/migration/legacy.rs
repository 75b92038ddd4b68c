//! The adapter to the legacy core (`LEGACY_CORE_URL`, contract in docs/legacy-core.md): its quote
//! and payout read into this system's `Estimate` and `Payout`, for the customers the gateway's
//! rollout still routes there, and for the shadow comparisons.

use chrono::NaiveDate;
use contracts::legacy::{LegacyPayout, LegacyPayoutRequest, LegacyQuote, LegacyTax, PREFIX};
use contracts::problem::Code;
use contracts::{Estimate, Payout};
use domain::{TaxBreakdown, TaxCategory, Withheld};
use platform::client::{ClientError, ClientSettings, ServiceClient};
use uuid::Uuid;

use super::Migration;
use crate::error::InterestError;
use crate::payout;

#[derive(Clone)]
pub struct LegacyCore {
    client: ServiceClient,
}

impl LegacyCore {
    pub fn new(url: &str, settings: ClientSettings) -> Result<Self, reqwest::Error> {
        Ok(Self { client: ServiceClient::new("legacy-core", url, settings)? })
    }

    pub async fn quote(&self, id: Uuid, date: NaiveDate, as_if_unpaid: bool) -> Result<LegacyQuote, ClientError> {
        self.client
            .get(&format!("{PREFIX}/accounts/{id}/interest?business_date={date}&as_if_unpaid={as_if_unpaid}"))
            .await
    }

    pub async fn pay(&self, id: Uuid, date: NaiveDate, key: &str, hash: &str) -> Result<LegacyPayout, ClientError> {
        let body = LegacyPayoutRequest { business_date: date, request_hash: Some(hash.to_string()) };
        self.client.post(&format!("{PREFIX}/accounts/{id}/payouts"), &body, &[("idempotency-key", key)]).await
    }
}

fn amounts(gross: i64, taxes: &[LegacyTax], net: i64) -> Result<Withheld, InterestError> {
    let mut t = TaxBreakdown::default();
    for tax in taxes {
        match tax.component.as_str() {
            "income_tax" => t.income_tax += tax.amount,
            "local_tax" => t.local_tax += tax.amount,
            "rural_special_tax" => t.rural_special_tax += tax.amount,
            other => {
                return Err(InterestError::Inconsistent(format!("the legacy core withheld an unknown tax {other}")))
            }
        }
    }
    Withheld::with_net(gross, t, net)
        .map_err(|e| InterestError::Inconsistent(format!("the legacy core's amounts do not add up: {e}")))
}

/// The legacy core's quote as this system's estimate (it does not say its carry: 0).
pub fn estimate_of(q: &LegacyQuote) -> Result<Estimate, InterestError> {
    Ok(Estimate {
        account_id: q.account_id,
        business_date: q.business_date,
        period_from: q.period_from,
        period_to: q.period_to,
        amounts: amounts(q.gross, &q.taxes, q.net)?,
        carry_in_units: 0,
        payable: q.payable,
        code: q.code.clone(),
    })
}

pub fn payout_of(p: &LegacyPayout) -> Result<Payout, InterestError> {
    Ok(Payout {
        payout_id: p.payout_id,
        account_id: p.account_id,
        customer_id: p.customer_id,
        business_date: p.business_date,
        period_from: p.period_from,
        period_to: p.period_to,
        amounts: amounts(p.gross, &p.taxes, p.net)?,
        tax_category: TaxCategory::parse(&p.tax_category)
            .ok_or_else(|| InterestError::Inconsistent(format!("unknown tax category {}", p.tax_category)))?,
        carry_units: p.carry_units,
        balance_after: p.balance_after,
        entry_id: p.entry_id,
        created_at: p.paid_at,
    })
}

/// The legacy core's refusal as ours (same codes); anything else is it failing.
fn refusal(e: ClientError) -> InterestError {
    match e.refusal() {
        Some(code) => InterestError::Rule(code, format!("legacy core: {e}")),
        None => InterestError::Dependency(e),
    }
}

fn configured(state: &Migration) -> Result<&LegacyCore, InterestError> {
    state.legacy.as_ref().ok_or_else(|| {
        InterestError::Rule(Code::NotFound, "no legacy core is configured here (LEGACY_CORE_URL)".into())
    })
}

/// An estimate answered by the legacy core (a customer the rollout keeps there).
pub async fn estimate(state: &Migration, id: Uuid) -> Result<Estimate, InterestError> {
    let legacy = configured(state)?;
    let today = state.clock.today().await?;
    estimate_of(&legacy.quote(id, today, false).await.map_err(refusal)?)
}

/// A payout made by the legacy core (booked in the ledger, so this service records it from the
/// ledger's feed like any payout, and its tax event follows). `hash`: the channel's request, so
/// a retry of the key routed here later is the same request. A key this system already answered
/// (the rollout moved the customer between the two) gets that answer again: one key, one answer.
pub async fn pay(state: &Migration, id: Uuid, key: &str, hash: &str) -> Result<Payout, InterestError> {
    let legacy = configured(state)?;
    if let Some(answer) = payout::kept_answer(&state.payouts, id, key, hash).await? {
        return Ok(answer);
    }
    let today = state.clock.today().await?;
    payout_of(&legacy.pay(id, today, key, hash).await.map_err(refusal)?)
}
