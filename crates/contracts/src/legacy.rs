//! The legacy core, as this system expects it while customers move off it (docs/legacy-core.md):
//! its quote and payout for an account on a business date, amounts per tax component; and what
//! the comparison of the two sides' figures produces (shadow mismatches, batch reports).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{Estimate, Payout};

/// The legacy core's base path.
pub const PREFIX: &str = "/legacy/v1";

/// One withholding component as the legacy core names it (`income_tax`, `local_tax`,
/// `rural_special_tax`); a zero component may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LegacyTax {
    pub component: String,
    pub amount: i64,
}

/// `GET /legacy/v1/accounts/{id}/interest?business_date=D[&as_if_unpaid=true]`: the payout the
/// legacy core would make on `business_date`, or why not (`payable: false` and `code`, SPEC §5's
/// codes). With `as_if_unpaid`, a payout already booked on that date is left out: the figures are
/// those of that payout (what a shadow comparison of a payout asks for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegacyQuote {
    pub account_id: Uuid,
    pub business_date: NaiveDate,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub gross: i64,
    pub taxes: Vec<LegacyTax>,
    pub net: i64,
    pub payable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LegacyQuoteQuery {
    /// The business date the caller computes for; the legacy core refuses another than its own
    /// (409 BUSINESS_DATE_MISMATCH).
    pub business_date: NaiveDate,
    #[serde(default)]
    pub as_if_unpaid: bool,
}

/// `POST /legacy/v1/accounts/{id}/payouts` with `Idempotency-Key`: pay on `business_date`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegacyPayoutRequest {
    pub business_date: NaiveDate,
    /// The SHA-256 (hex) of the channel's request, booked with the payout: a retry of the same
    /// key that reaches the new system is then recognised as the same request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_hash: Option<String>,
}

/// A payout the legacy core made. It is booked in the bank's ledger like every interest payout
/// (one per account and business date, whichever side books it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LegacyPayout {
    pub payout_id: Uuid,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub business_date: NaiveDate,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub gross: i64,
    pub taxes: Vec<LegacyTax>,
    pub net: i64,
    pub tax_category: String,
    pub carry_units: i64,
    pub balance_after: i64,
    pub entry_id: Uuid,
    pub paid_at: DateTime<Utc>,
}

/// The simulator's switchable deviations from this system's rules (`PUT
/// /legacy/v1/admin/deviations`), to show what a comparison catches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LegacyDeviations {
    /// Each tax component rounded half up to 10 won (not truncated), the local tax taken from the
    /// income tax before its rounding.
    #[serde(default)]
    pub tax_rounding: bool,
    /// A rate schedule applied from the day after its `effective_from`.
    #[serde(default)]
    pub rate_change_late: bool,
    /// A deposit hold (입금정지) not checked: a suspended account is paid.
    #[serde(default)]
    pub hold_ignored: bool,
}

/// What both sides' figures are compared on, field by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Figures {
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub gross: i64,
    pub income_tax: i64,
    pub local_tax: i64,
    pub rural_special_tax: i64,
    pub net: i64,
    pub payable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Components neither side knows (always empty on this system's side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_taxes: Vec<LegacyTax>,
}

/// The compared fields, in report order.
pub const FIELDS: [&str; 9] =
    ["period", "gross", "income_tax", "local_tax", "rural_special_tax", "net", "eligibility", "code", "other_taxes"];

impl Figures {
    pub fn from_estimate(e: &Estimate) -> Self {
        let t = e.amounts.taxes();
        Self {
            period_from: e.period_from,
            period_to: e.period_to,
            gross: e.amounts.gross(),
            income_tax: t.income_tax,
            local_tax: t.local_tax,
            rural_special_tax: t.rural_special_tax,
            net: e.amounts.net(),
            payable: e.payable,
            code: e.code.clone(),
            other_taxes: Vec::new(),
        }
    }

    /// A payout made is payable by definition.
    pub fn from_payout(p: &Payout) -> Self {
        let t = p.amounts.taxes();
        Self {
            period_from: p.period_from,
            period_to: p.period_to,
            gross: p.amounts.gross(),
            income_tax: t.income_tax,
            local_tax: t.local_tax,
            rural_special_tax: t.rural_special_tax,
            net: p.amounts.net(),
            payable: true,
            code: None,
            other_taxes: Vec::new(),
        }
    }

    pub fn from_legacy(q: &LegacyQuote) -> Self {
        let mut f = Self {
            period_from: q.period_from,
            period_to: q.period_to,
            gross: q.gross,
            income_tax: 0,
            local_tax: 0,
            rural_special_tax: 0,
            net: q.net,
            payable: q.payable,
            code: q.code.clone(),
            other_taxes: Vec::new(),
        };
        for t in &q.taxes {
            match t.component.as_str() {
                "income_tax" => f.income_tax += t.amount,
                "local_tax" => f.local_tax += t.amount,
                "rural_special_tax" => f.rural_special_tax += t.amount,
                _ if t.amount != 0 => f.other_taxes.push(t.clone()),
                _ => {}
            }
        }
        f
    }

    /// The fields (of [`FIELDS`]) on which `other` differs. The amounts of a refused quote are
    /// compared too: both sides must agree on what is accrued even when it is not paid.
    pub fn differences(&self, other: &Figures) -> Vec<&'static str> {
        let checks = [
            ("period", (self.period_from, self.period_to) != (other.period_from, other.period_to)),
            ("gross", self.gross != other.gross),
            ("income_tax", self.income_tax != other.income_tax),
            ("local_tax", self.local_tax != other.local_tax),
            ("rural_special_tax", self.rural_special_tax != other.rural_special_tax),
            ("net", self.net != other.net),
            ("eligibility", self.payable != other.payable),
            ("code", self.code != other.code),
            ("other_taxes", self.other_taxes != other.other_taxes),
        ];
        checks.into_iter().filter(|(_, differs)| *differs).map(|(f, _)| f).collect()
    }

    /// The largest difference in won among the amounts (for reports).
    pub fn largest_difference(&self, other: &Figures) -> i64 {
        [
            self.gross - other.gross,
            self.income_tax - other.income_tax,
            self.local_tax - other.local_tax,
            self.rural_special_tax - other.rural_special_tax,
            self.net - other.net,
        ]
        .into_iter()
        .map(i64::abs)
        .max()
        .unwrap_or(0)
    }
}

/// A shadow comparison that found the sides disagreeing, with both figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShadowMismatch {
    pub mismatch_id: Uuid,
    /// `estimate` or `payout`.
    pub kind: String,
    pub account_id: Uuid,
    pub business_date: NaiveDate,
    /// The differing fields (of `period, gross, income_tax, local_tax, rural_special_tax, net,
    /// eligibility, code, other_taxes`).
    pub fields: Vec<String>,
    pub ours: Figures,
    pub legacy: Figures,
    /// Our answer as given (an `Estimate` or a `Payout`).
    #[schema(value_type = Object)]
    pub ours_payload: serde_json::Value,
    /// The legacy core's answer as given (a `LegacyQuote`).
    #[schema(value_type = Object)]
    pub legacy_payload: serde_json::Value,
    pub found_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ShadowMismatches {
    pub mismatches: Vec<ShadowMismatch>,
    /// Pass as `before` for the next (older) page.
    pub next_before: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShadowMismatchesQuery {
    /// Only this account's.
    pub account_id: Option<Uuid>,
    /// Only comparisons of this kind.
    pub kind: Option<ComparedKind>,
    /// The `next_before` of the previous page.
    pub before: Option<i64>,
    /// Page size (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// What a shadow comparison compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComparedKind {
    Estimate,
    Payout,
}

impl ComparedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ComparedKind::Estimate => "estimate",
            ComparedKind::Payout => "payout",
        }
    }
}

/// Which system serves a customer's estimates and payouts during the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    New,
    Legacy,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::New => "new",
            Side::Legacy => "legacy",
        }
    }
}

/// The gateway's rollout policy: the kill switch sends everyone to the legacy core; otherwise the
/// team's and staff's customers, then `percent` of the others (by a stable hash of the customer
/// id, buckets monotone: raising the percentage keeps everyone already moved), go to the new
/// system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutPolicy {
    #[schema(minimum = 0, maximum = 100)]
    pub percent: u8,
    pub team: Vec<Uuid>,
    pub staff: Vec<Uuid>,
    pub kill_switch: bool,
    /// Raised by each change (0: the default policy, everyone new, never changed).
    pub version: i64,
    pub changed_by: Option<String>,
    pub changed_at: Option<DateTime<Utc>>,
    pub reason: Option<String>,
}

/// A change of the rollout policy (`PUT /v1/ops/rollout`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SetRollout {
    #[serde(deserialize_with = "crate::wire::whole")]
    #[schema(minimum = 0, maximum = 100)]
    pub percent: u8,
    /// At most 10,000 customer ids each.
    #[serde(default)]
    #[schema(max_items = 10_000)]
    pub team: Vec<Uuid>,
    #[serde(default)]
    #[schema(max_items = 10_000)]
    pub staff: Vec<Uuid>,
    #[serde(default)]
    pub kill_switch: bool,
    /// Why (kept with the change; at most 500 characters).
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

/// Where the policy sends one customer, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RolloutRoute {
    pub customer_id: Uuid,
    /// 0–9,999: the customer goes new when `bucket < percent × 100` (unless listed or killed).
    pub bucket: u16,
    pub side: Side,
    /// `kill_switch`, `team`, `staff` or `percent`.
    pub reason: String,
    pub version: i64,
}

// ---- the rollout rule: the gateway routes by it, a payout run follows it ----

/// Buckets per customer hash: `percent × 100` of them go new.
pub const BUCKETS: u16 = 10_000;

/// A customer's stable bucket: the first 8 bytes of SHA-256 of the id, modulo [`BUCKETS`].
pub fn bucket(customer: Uuid) -> u16 {
    let digest = Sha256::digest(customer.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % u64::from(BUCKETS)) as u16
}

/// Where `policy` sends `customer`, and why.
pub fn route(policy: &RolloutPolicy, customer: Uuid) -> RolloutRoute {
    let bucket = bucket(customer);
    let (side, reason) = if policy.kill_switch {
        (Side::Legacy, "kill_switch")
    } else if policy.team.contains(&customer) {
        (Side::New, "team")
    } else if policy.staff.contains(&customer) {
        (Side::New, "staff")
    } else if bucket < u16::from(policy.percent) * 100 {
        (Side::New, "percent")
    } else {
        (Side::Legacy, "percent")
    };
    RolloutRoute { customer_id: customer, bucket, side, reason: reason.into(), version: policy.version }
}

/// Before any change: everyone on the new system (a bank that never had a legacy core).
pub fn default_policy() -> RolloutPolicy {
    RolloutPolicy {
        percent: 100,
        team: Vec::new(),
        staff: Vec::new(),
        kill_switch: false,
        version: 0,
        changed_by: None,
        changed_at: None,
        reason: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(taxes: Vec<(&str, i64)>) -> LegacyQuote {
        let d = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap_or_default();
        LegacyQuote {
            account_id: Uuid::nil(),
            business_date: d,
            period_from: d,
            period_to: d,
            gross: 2739,
            taxes: taxes.into_iter().map(|(c, a)| LegacyTax { component: c.into(), amount: a }).collect(),
            net: 2329,
            payable: true,
            code: None,
        }
    }

    #[test]
    fn equal_figures_differ_nowhere_and_each_field_is_named() {
        let a = Figures::from_legacy(&quote(vec![("income_tax", 380), ("local_tax", 30)]));
        assert!(a.differences(&a.clone()).is_empty());
        let b = Figures::from_legacy(&quote(vec![("income_tax", 380), ("local_tax", 40)]));
        assert_eq!(a.differences(&b), vec!["local_tax"]);
        assert_eq!(a.largest_difference(&b), 10);
        let c = Figures::from_legacy(&quote(vec![("income_tax", 380), ("local_tax", 30), ("stamp_duty", 5)]));
        assert_eq!(a.differences(&c), vec!["other_taxes"]);
        let d = Figures { payable: false, code: Some("DEPOSIT_SUSPENDED".into()), ..a.clone() };
        assert_eq!(a.differences(&d), vec!["eligibility", "code"]);
    }
}
