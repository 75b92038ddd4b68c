//! The interest-payout domain: money amounts, business dates, annual rates and marginal rate
//! schedules, exact daily accrual (SPEC §3) and withholding tax (SPEC §4). Pure functions and
//! parse-don't-validate types; no I/O, no async, no floating point.

pub mod accrual;
pub mod date;
pub mod money;
#[cfg(feature = "openapi")]
mod openapi;
pub mod rate;
pub mod status;
pub mod tax;

pub use accrual::{accrue_units, settle, BalanceHistory, Settlement, UNITS_PER_WON};
pub use date::{next_day, previous_day, BusinessDate};
pub use money::{Amount, AmountError, MAX_AMOUNT};
pub use rate::{AnnualRate, Band, RateError, RateSchedule, RateTable, ScheduleError};
pub use status::{check_eligibility, AccountStatus, CustomerStatus, Refusal};
pub use tax::{
    TaxBase, TaxBreakdown, TaxCategory, TaxComponent, TaxComponentRule, TaxError, TaxRule, TaxRules, Withheld,
    WithheldError,
};
pub mod quote;
pub use quote::{payout_period, quote, Quote};
