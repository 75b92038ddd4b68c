//! Wire contracts shared by the services: the JSON bodies of SPEC §8 and the internal calls between
//! services, and the `tax.withholding.v1` Kafka event of SPEC §7. Field names are snake_case;
//! amounts are whole won; dates are `YYYY-MM-DD`.

pub mod legacy;
pub mod openapi;
pub mod problem;
pub mod wire;

use chrono::{DateTime, NaiveDate, Utc};
use domain::{AccountStatus, Amount, CustomerStatus, TaxBreakdown, TaxCategory, Withheld};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

// ---- customer ----

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateCustomer {
    /// 1 to 200 characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$"
    )]
    pub name: String,
    pub tax_category: TaxCategory,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeCustomerStatus {
    pub status: CustomerStatus,
    /// Required (not only spaces) for any status but ACTIVE (see [`openapi::whole_truth`]); at most
    /// 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Customer {
    pub customer_id: Uuid,
    pub name: String,
    pub status: CustomerStatus,
    pub status_reason: Option<String>,
    pub tax_category: TaxCategory,
    pub created_at: DateTime<Utc>,
    /// Bumped by every change of a mutable field (status, tax category): a payout quoted from
    /// this customer carries it, and the ledger refuses the booking if the customer changed since.
    #[serde(default)]
    pub rev: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeTaxCategory {
    pub tax_category: TaxCategory,
}

/// `PATCH /v1/customers/{id}`: any of the mutable fields, at least one of `status` and
/// `tax_category` (not null); a status other than ACTIVE with its reason (see
/// [`openapi::whole_truth`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmendCustomer {
    #[serde(default)]
    pub status: Option<CustomerStatus>,
    /// Required with a status other than ACTIVE; at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    #[serde(default)]
    pub tax_category: Option<TaxCategory>,
}

// ---- account-info ----

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OpenAccount {
    pub customer_id: Uuid,
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub product_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeAccountStatus {
    pub status: AccountStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeHolds {
    pub deposit_suspended: bool,
    pub withdrawal_suspended: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub product_code: String,
    pub opened_on: NaiveDate,
    pub status: AccountStatus,
    pub deposit_suspended: bool,
    pub withdrawal_suspended: bool,
    pub created_at: DateTime<Utc>,
    /// Bumped by every status or holds change (see [`Customer::rev`]).
    #[serde(default)]
    pub rev: i64,
}

/// A keyset page of accounts; pass `next_after` as `after` for the next page (absent on the last).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountPage {
    pub accounts: Vec<Account>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Uuid>,
}

/// The most ids one lookup of many accounts or customers may name.
pub const MAX_LOOKUP: usize = 1000;

/// Many accounts read at once (a payout run's chunk).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountLookup {
    /// 1 to 1000 ids.
    #[schema(min_items = 1, max_items = 1000)]
    pub account_ids: Vec<Uuid>,
}

/// The accounts of an [`AccountLookup`] that exist, in id order (an unknown id is left out).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountsFound {
    pub accounts: Vec<Account>,
}

/// Many customers read at once (a payout run's chunk).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomerLookup {
    /// 1 to 1000 ids.
    #[schema(min_items = 1, max_items = 1000)]
    pub customer_ids: Vec<Uuid>,
}

/// The customers of a [`CustomerLookup`] that exist, in id order (an unknown id is left out).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CustomersFound {
    pub customers: Vec<Customer>,
}

// ---- accounting ----

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MoneyMovement {
    /// Whole won as a JSON integer (`100`, not `100.0`).
    pub amount: Amount,
    /// An earlier value date (default: today).
    #[serde(default)]
    pub value_date: Option<NaiveDate>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Transfer {
    pub from_account_id: Uuid,
    /// Another account than `from_account_id`.
    pub to_account_id: Uuid,
    /// Whole won as a JSON integer (`100`, not `100.0`).
    pub amount: Amount,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Posting {
    pub entry_id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub amount: i64,
    pub value_date: NaiveDate,
    pub balance_after: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TransferPosting {
    pub entry_id: Uuid,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: i64,
    pub value_date: NaiveDate,
    pub from_balance_after: i64,
    pub to_balance_after: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    pub account_id: Uuid,
    pub balance: i64,
    pub as_of: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EntryLine {
    pub ledger_account: String,
    pub account_id: Option<Uuid>,
    pub debit: i64,
    pub credit: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entry {
    pub entry_id: Uuid,
    pub kind: String,
    pub business_date: NaiveDate,
    pub value_date: NaiveDate,
    pub created_at: DateTime<Utc>,
    pub lines: Vec<EntryLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Entries {
    pub account_id: Uuid,
    pub entries: Vec<Entry>,
}

/// End-of-day balances for `[from, to]` as change points (the first point is the balance on
/// `from`), plus what the ledger knows of the account's interest payouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DailyBalances {
    pub account_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub points: Vec<BalancePoint>,
    pub last_interest_posting: Option<InterestPosting>,
    /// The account's ledger history revision in the same snapshot as the points.
    #[serde(default)]
    pub history_rev: i64,
    /// A fingerprint of `points` that the ledger recomputes when it books a payout of this period.
    #[serde(default)]
    pub digest: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BalancePoint {
    pub date: NaiveDate,
    pub balance: i64,
}

/// The interest service asks the ledger to book a payout. The ledger is the payout's commit point:
/// it books at most one payout per account per business date, only for the period right after the
/// last one, and a repeat of the same `payout_id` returns the booked posting.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterestPostingRequest {
    pub payout_id: Uuid,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub product_code: String,
    pub business_date: NaiveDate,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    /// Gross, each tax, net (serialized flat; net = gross − taxes).
    #[serde(flatten, deserialize_with = "wire::withheld")]
    pub amounts: Withheld,
    pub carry_in_units: i64,
    pub carry_out_units: i64,
    pub tax_category: TaxCategory,
    pub idempotency_key: String,
    pub request_hash: String,
    /// The versions of everything the amount and eligibility were computed from.
    #[serde(default)]
    pub basis: QuoteBasis,
}

/// What a payout's quote was computed from, verified by the ledger when the booking commits (SPEC
/// §7): the period's end-of-day balances (history revision and a digest of the points), the
/// account's status and holds, the customer's status and tax category, the product's rates and
/// the tax rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuoteBasis {
    pub history_rev: i64,
    pub balances_digest: String,
    pub account_rev: i64,
    pub customer_rev: i64,
    pub rates_rev: i64,
    /// The revision of the bank's tax rules the withholding was computed with (checked against the
    /// fence of the payout's tax category). Absent only for a payout whose taxes are not computed
    /// from the bank's rules (the legacy core withholds by its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_rules_rev: Option<i64>,
}

impl InterestPostingRequest {
    /// The fences (see [`PayoutFence`]) this payout's quote is checked against, with the revision
    /// it was computed at.
    pub fn fenced(&self) -> Vec<(String, i64)> {
        let b = &self.basis;
        let mut fenced = vec![
            (fence::account(self.account_id), b.account_rev),
            (fence::customer(self.customer_id), b.customer_rev),
            (fence::rates(&self.product_code), b.rates_rev),
        ];
        if let Some(rev) = b.tax_rules_rev {
            fenced.push((fence::tax(self.tax_category), rev));
        }
        fenced
    }
}

/// An owner of payout inputs (account-info, customer, interest's rates and tax rules) raises a
/// fence in the ledger *before* committing a change: from then on the ledger refuses bookings —
/// and money movements — decided at an older revision of that subject, and the fence waits for
/// those in flight on it to finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PayoutFence {
    /// 1 to 200 characters (`account:<id>`, `customer:<id>`, `rates:<product>`, `tax:<category>`).
    #[schema(min_length = 1, max_length = 200)]
    pub subject: String,
    #[serde(deserialize_with = "wire::whole")]
    #[schema(minimum = 0)]
    pub rev: i64,
    /// Rates and tax rules only: the new schedule's or rule's first day; refused if a booked
    /// payout already covers it (rates: its period; tax: its business date, of that category).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_from: Option<NaiveDate>,
}

/// A fence as the ledger keeps it: `seq` orders every raise, so an owner reading the fences after
/// the last one it saw misses none, however long it was away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RaisedFence {
    pub subject: String,
    pub rev: i64,
    pub seq: i64,
    pub changed_at: DateTime<Utc>,
}

/// `GET /v1/ledger/payout-fences?prefix=&after_seq=&limit=`: fences of one kind in raise order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FencePage {
    pub fences: Vec<RaisedFence>,
}

/// The Redis keys under which owners publish the revision of data other services cache (the
/// mechanism is `platform::revision`; these names are the contract between owner and reader).
pub mod revision {
    use uuid::Uuid;

    /// Mutable fields of an account (status, holds), owned by account-info.
    pub fn account(id: Uuid) -> String {
        format!("rev:account:{id}")
    }

    /// Mutable fields of a customer (status, tax category), owned by customer.
    pub fn customer(id: Uuid) -> String {
        format!("rev:customer:{id}")
    }

    /// The part of an account's ledger history an estimate depends on: back-dated postings and
    /// interest payouts (a posting dated today cannot change an estimate, which ends yesterday).
    /// Owned by accounting.
    pub fn ledger(id: Uuid) -> String {
        format!("rev:ledger:{id}")
    }

    /// A product's rate schedules, owned by interest.
    pub fn rates(product_code: &str) -> String {
        format!("rev:rates:{product_code}")
    }

    /// The tax rules (every category: they change rarely, by law), owned by interest.
    pub fn tax_rules() -> String {
        "rev:tax-rules".to_string()
    }

    /// The gateway's rollout policy (its JSON, not a number): what a payout run reads to follow
    /// the rollout.
    pub fn rollout() -> String {
        "rollout:policy".to_string()
    }
}

/// A product code: 1 to 64 letters, digits, `_` or `-` (the interest service's rule and its
/// table's check). A code outside it names no product, and is never spliced into a path.
pub fn is_product_code(code: &str) -> bool {
    (1..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Fence subjects: one per account, customer, product and tax category.
pub mod fence {
    use domain::TaxCategory;
    use uuid::Uuid;

    pub fn account(id: Uuid) -> String {
        format!("account:{id}")
    }

    pub fn customer(id: Uuid) -> String {
        format!("customer:{id}")
    }

    pub fn rates(product_code: &str) -> String {
        format!("rates:{product_code}")
    }

    /// The tax rules of one category.
    pub fn tax(category: TaxCategory) -> String {
        format!("tax:{}", category.as_str())
    }

    /// The service that owns a fence's subject, and alone may raise it.
    pub fn owner(subject: &str) -> Option<&'static str> {
        let prefix = subject.split_once(':')?.0;
        match prefix {
            "account" => Some("account-info"),
            "customer" => Some("customer"),
            "rates" | "tax" => Some("interest"),
            _ => None,
        }
    }

    /// The product of a rates subject.
    pub fn rates_product(subject: &str) -> Option<&str> {
        subject.strip_prefix("rates:")
    }

    /// The category of a tax-rules subject.
    pub fn tax_category(subject: &str) -> Option<TaxCategory> {
        subject.strip_prefix("tax:").and_then(TaxCategory::parse)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterestPosting {
    #[serde(flatten)]
    pub request: InterestPostingRequest,
    pub entry_id: Uuid,
    pub balance_after: i64,
    pub posted_at: DateTime<Utc>,
    /// Position in the ledger's interest-posting feed, for recovery.
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterestPostingFeed {
    pub postings: Vec<InterestPosting>,
}

/// The most accounts one batch call to the ledger (balances or bookings) may name.
pub const MAX_LEDGER_BATCH: usize = 1000;

/// One account's period in a batch balances read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalancesQuery {
    pub account_id: Uuid,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// Daily balances of many accounts (a payout run's chunk), read in one snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalancesBatch {
    /// 1 to 1000 queries, each account at most once.
    #[schema(min_items = 1, max_items = 1000)]
    pub queries: Vec<BalancesQuery>,
}

/// The answer to a [`BalancesBatch`], one per query in the same order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BalancesMany {
    pub accounts: Vec<DailyBalances>,
}

/// Many payouts booked in one ledger transaction (a payout run's chunk): each is checked as a
/// single booking is, and refused alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterestPostingBatch {
    /// 1 to 1000 payouts, each account at most once.
    #[schema(min_items = 1, max_items = 1000)]
    pub postings: Vec<InterestPostingRequest>,
}

/// One payout's outcome in a batch: its posting (booked now, or earlier under the same key), or the
/// problem a single booking would have answered (`code`, `detail`), nothing written for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterestPostingOutcome {
    pub account_id: Uuid,
    pub posting: Option<InterestPosting>,
    pub code: Option<String>,
    pub detail: Option<String>,
}

/// The answer to an [`InterestPostingBatch`], one per payout in the same order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InterestPostingOutcomes {
    pub outcomes: Vec<InterestPostingOutcome>,
}

// ---- interest ----

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateProduct {
    /// 1 to 64 letters, digits, `_` or `-`.
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub code: String,
    /// 1 to 200 characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$"
    )]
    pub name: String,
}

/// Rates travel as percentage strings ("2.3") so no float ever touches them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BandBody {
    /// The band's lowest balance, won (the first band starts at 0; each next one where the one
    /// before ends).
    #[schema(minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    pub from: i64,
    /// The first balance above the band, above `from` (absent on the last band, and only there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1_000_000_000_000_000_i64)]
    pub to: Option<i64>,
    /// Annual rate in percent, 0 to 100, at most 4 decimals ("2.35").
    #[schema(pattern = r"^(?:0?[0-9]{1,2}(?:\.[0-9]{1,4})?|100(?:\.0{1,4})?)$")]
    pub rate: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RateScheduleBody {
    pub effective_from: NaiveDate,
    /// Contiguous bands from 0, the last one open-ended.
    #[schema(min_items = 1)]
    pub bands: Vec<BandBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub code: String,
    pub name: String,
    pub rate_schedules: Vec<RateScheduleBody>,
    /// The revision of the product's rate schedules, as a payout's quote basis carries it
    /// (`QuoteBasis::rates_rev`): whoever books a payout from these schedules quotes it.
    #[serde(default)]
    pub rates_rev: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Estimate {
    pub account_id: Uuid,
    pub business_date: NaiveDate,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    /// Gross, each tax, net (serialized flat).
    #[serde(flatten)]
    pub amounts: Withheld,
    pub carry_in_units: i64,
    pub payable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Payout {
    pub payout_id: Uuid,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub business_date: NaiveDate,
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    /// Gross, each tax, net (serialized flat).
    #[serde(flatten)]
    pub amounts: Withheld,
    pub tax_category: TaxCategory,
    pub carry_units: i64,
    pub balance_after: i64,
    pub entry_id: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Payouts {
    pub account_id: Uuid,
    pub payouts: Vec<Payout>,
}

// ---- tax rules (interest) ----

/// A withholding component, as a tax rule names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaxComponentName {
    IncomeTax,
    LocalTax,
    RuralSpecialTax,
}

/// What a component's rate applies to: the gross, or an earlier component of the same rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaxBaseName {
    Gross,
    IncomeTax,
    LocalTax,
    RuralSpecialTax,
}

/// One component of a tax rule: `rate` percent (at most 4 decimals) of its base, truncated to 10 won.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaxComponentBody {
    pub component: TaxComponentName,
    pub base: TaxBaseName,
    /// Percent, 0 to 100, at most 4 decimals ("14", "0.5").
    #[schema(pattern = r"^(?:0?[0-9]{1,2}(?:\.[0-9]{1,4})?|100(?:\.0{1,4})?)$")]
    pub rate: String,
}

/// `POST /v1/interest/tax-rules`: a category's withholding from a future business date on (a law
/// change), scheduled by ops. Refused for a date that is not after today, for a date a booked
/// payout of the category already has, and for a date the category has a rule for already.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScheduleTaxRule {
    pub category: TaxCategory,
    /// The first business date the rule applies to: after today.
    pub effective_from: NaiveDate,
    /// In the order they are computed; at most 3, each component once, a base only an earlier
    /// component; together they withhold at most the gross.
    #[schema(max_items = 3)]
    pub components: Vec<TaxComponentBody>,
    /// Why (the law or notice), 1 to 500 characters, not only spaces.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\x00]*[^\x00\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00]*$"
    )]
    pub reason: String,
}

/// A tax rule as kept: what it withholds, from when, who scheduled it and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaxRuleView {
    pub category: TaxCategory,
    pub effective_from: NaiveDate,
    pub components: Vec<TaxComponentBody>,
    /// The tax rules' revision this rule was scheduled at (0: the rules the bank started with).
    pub rev: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub scheduled_at: DateTime<Utc>,
}

/// Every tax rule, by category and date, and the rules' current revision (what a quote carries).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaxRulesView {
    pub rev: i64,
    pub rules: Vec<TaxRuleView>,
}

// ---- tax ----

pub const TAX_EVENT_SCHEMA_VERSION: u32 = 1;
/// The topic of [`TaxWithholdingEvent`]s, and where those the consumer cannot process go.
pub const TAX_TOPIC: &str = "tax.withholding.v1";
pub const TAX_DLQ_TOPIC: &str = "tax.withholding.v1.dlq";

/// The value of a `tax.withholding.v1` message; key = account id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaxWithholdingEvent {
    pub event_id: Uuid,
    pub schema_version: u32,
    pub payout_id: Uuid,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub business_date: NaiveDate,
    pub gross: i64,
    /// Each tax (serialized flat).
    #[serde(flatten)]
    pub taxes: TaxBreakdown,
    pub tax_category: TaxCategory,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Withholding {
    pub payout_id: Uuid,
    pub event_id: Uuid,
    pub account_id: Uuid,
    pub customer_id: Uuid,
    pub business_date: NaiveDate,
    pub gross: i64,
    /// Each tax (serialized flat).
    #[serde(flatten)]
    pub taxes: TaxBreakdown,
    pub tax_category: TaxCategory,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Withholdings {
    pub withholdings: Vec<Withholding>,
    /// Pass as `after` for the next page (ordered by payout id); absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MonthlyReport {
    pub month: String,
    pub payouts: i64,
    pub gross: i64,
    /// Each tax (serialized flat).
    #[serde(flatten)]
    pub taxes: TaxBreakdown,
    pub total_tax: i64,
    pub due_date: NaiveDate,
}

// ---- every service ----

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SetClock {
    pub today: NaiveDate,
    /// Seoul wall-clock time on `today`, frozen until the next change (default 00:00:00).
    #[serde(default)]
    pub time: Option<chrono::NaiveTime>,
}

/// Written out (not derived): the platform's clock route documents it, merged after the service's
/// own operations, so it says what [`openapi::whole_truth`] adds itself.
impl PartialSchema for SetClock {
    fn schema() -> RefOr<Schema> {
        let date =
            ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)));
        let time = ObjectBuilder::new()
            .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
            .description(Some("Seoul wall-clock time on `today`, frozen until the next change (default 00:00:00)."))
            .pattern(Some(openapi::TIME));
        let mut schema = ObjectBuilder::new().property("today", date).required("today").property("time", time).into();
        openapi::truthful(&mut schema);
        schema
    }
}

impl ToSchema for SetClock {}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Clock {
    pub today: NaiveDate,
    pub time: chrono::NaiveTime,
    pub mode: String,
}

/// `GET /v1/interest/payouts?from=&to=&after=&limit=`: recorded payouts by business date, keyset
/// paged by payout id (reconciliation).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutPage {
    pub payouts: Vec<Payout>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Uuid>,
}

// ---- payout runs ----

/// `POST /v1/interest/payout-runs`: today's run over every account, or over the given ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StartPayoutRun {
    /// Today's business date, if given (another is refused).
    #[serde(default)]
    pub business_date: Option<NaiveDate>,
    /// 1 to 100,000 accounts (absent: every account).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100_000)]
    pub account_ids: Option<Vec<Uuid>>,
}

/// What a run paid in total (serialized flat: gross, each tax, net).
pub type RunTotals = Withheld;

/// A payout run's state. Stored as the same text in the interest database ([`RunState::as_str`],
/// [`RunState::parse`]: the one mapping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunState {
    /// Workers claim and pay its accounts.
    Running,
    /// Every enumerated account was paid, skipped or failed.
    Completed,
    /// The business date ended first; what was left failed.
    Expired,
    /// By ops: no account is claimed after that; the ones not reached stay pending, and starting
    /// the same run again resumes it.
    Cancelled,
}

impl RunState {
    pub const ALL: [RunState; 4] = [RunState::Running, RunState::Completed, RunState::Expired, RunState::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "RUNNING",
            RunState::Completed => "COMPLETED",
            RunState::Expired => "EXPIRED",
            RunState::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<RunState> {
        RunState::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a run pays: every account (`ALL`) or an explicit list (`ACCOUNTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunScope {
    All,
    Accounts,
}

impl std::fmt::Display for RunScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunScope::All => "ALL",
            RunScope::Accounts => "ACCOUNTS",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutRunSummary {
    pub run_id: Uuid,
    pub business_date: NaiveDate,
    pub scope: RunScope,
    pub state: RunState,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

/// `GET /v1/interest/payout-runs`: the latest runs first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutRuns {
    pub runs: Vec<PayoutRunSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PayoutRun {
    pub run_id: Uuid,
    pub business_date: NaiveDate,
    pub scope: RunScope,
    pub state: RunState,
    /// Accounts enumerated so far, and whether the enumeration is complete.
    pub accounts: i64,
    pub enumeration_complete: bool,
    pub paid: i64,
    /// Skipped accounts by refusal code (`ALREADY_PAID_TODAY`, `NOTHING_TO_PAY`,
    /// `CUSTOMER_RESTRICTED`, `ACCOUNT_NOT_ACTIVE`, `DEPOSIT_SUSPENDED`).
    pub skipped: std::collections::BTreeMap<String, i64>,
    pub failed: i64,
    pub pending: i64,
    pub totals: RunTotals,
    /// Share of enumerated accounts finished, 0 to 1.
    pub progress: f64,
    pub started_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

// ---- dead letters ----

/// A `tax.withholding.v1` message the tax consumer could not process, kept for ops to replay.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub key: Option<String>,
    pub payload: String,
    /// The message's headers, name to value.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    pub error: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub replayed_by: Option<String>,
    pub replay_result: Option<String>,
    /// Every replay, oldest first.
    pub replays: Vec<DeadLetterReplay>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterReplay {
    pub replayed_by: String,
    pub replayed_at: DateTime<Utc>,
    /// `recorded`, `duplicate` or `failed: <why>`.
    pub result: String,
}

/// A page of dead letters by id; pass `next_after_id` as `after_id` for the next one.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
    pub next_after_id: Option<i64>,
}

/// `POST /v1/tax/dead-letters/replay`: the given letters, or all of them, re-processed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReplayDeadLetters {
    /// These letters (`ids` or `all: true` is required).
    #[serde(default, deserialize_with = "wire::whole_list_or_null")]
    pub ids: Option<Vec<i64>>,
    /// Every letter.
    #[serde(default)]
    pub all: bool,
    /// Ignored (older clients send it): a replay is recorded under the caller its credential
    /// proves, never under a name the body claims.
    #[serde(default)]
    pub replayed_by: Option<String>,
}

/// What a replay did: withholdings recorded, already recorded, still failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplayOutcome {
    pub recorded: i64,
    pub duplicate: i64,
    pub failed: i64,
}

// ---- query strings (read by the owning service, documented by it and by the gateway) ----

/// `GET /v1/interest/payout-runs?limit=`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayoutRunsQuery {
    /// How many, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// `GET /v1/interest/payouts?from=&to=&after=&limit=`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PayoutsQuery {
    /// First business date.
    pub from: NaiveDate,
    /// Last business date.
    pub to: NaiveDate,
    /// The `next_after` of the previous page.
    pub after: Option<Uuid>,
    /// 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// `GET /v1/tax/withholdings?account_id=&from=&to=&after=&limit=`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WithholdingsQuery {
    pub account_id: Option<Uuid>,
    /// First business date.
    pub from: Option<NaiveDate>,
    /// Last business date.
    pub to: Option<NaiveDate>,
    /// The `next_after` of the previous page.
    pub after: Option<Uuid>,
    /// 1 to 10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// `GET /v1/tax/reports/monthly?month=`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonthlyReportQuery {
    /// `YYYY-MM`.
    #[param(pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub month: String,
}

/// `GET /v1/tax/dead-letters?after_id=&limit=`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLettersQuery {
    /// The `next_after_id` of the previous page (default 0).
    pub after_id: Option<i64>,
    /// Page size (default 100, at most 1000).
    pub limit: Option<i64>,
}
