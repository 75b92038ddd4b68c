//! The whole computation behind an estimate or a payout: period, accrual, floor, tax, net.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::accrual::{accrue_units, settle, BalanceHistory};
use crate::date::{next_day, previous_day};
use crate::rate::RateTable;
use crate::tax::{TaxError, TaxRule, Withheld};

/// The period a payout on `today` covers: the day after the last paid period (or the opening date)
/// through yesterday. Today earns nothing until it ends.
pub fn payout_period(
    opening_date: NaiveDate,
    paid_through: Option<NaiveDate>,
    today: NaiveDate,
) -> (NaiveDate, NaiveDate) {
    let from = paid_through.map_or(opening_date, next_day).max(opening_date);
    (from, previous_day(today))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    pub period_from: NaiveDate,
    pub period_to: NaiveDate,
    pub carry_in_units: i64,
    #[serde(flatten)]
    pub amounts: Withheld,
    pub carry_out_units: i64,
    pub payable: bool,
}

pub fn quote(
    rates: &RateTable,
    balances: &BalanceHistory,
    period: (NaiveDate, NaiveDate),
    carry_in_units: i64,
    tax_rule: &TaxRule,
) -> Result<Quote, TaxError> {
    let units = accrue_units(rates, balances, period.0, period.1);
    let s = settle(carry_in_units, units);
    // Nothing payable, nothing withheld (the gross is still reported).
    let amounts = if s.payable { tax_rule.withhold(s.gross)? } else { untaxed(s.gross) };
    Ok(Quote {
        period_from: period.0,
        period_to: period.1,
        carry_in_units,
        amounts,
        carry_out_units: s.carry_out_units,
        payable: s.payable,
    })
}

fn untaxed(gross: i64) -> Withheld {
    Withheld::new(gross.max(0), Default::default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_starts_after_last_paid_or_at_opening() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(payout_period(d("2024-01-01"), None, d("2024-01-10")), (d("2024-01-01"), d("2024-01-09")));
        assert_eq!(
            payout_period(d("2024-01-01"), Some(d("2024-01-04")), d("2024-01-10")),
            (d("2024-01-05"), d("2024-01-09"))
        );
        // Opened today: the period is empty.
        let (f, t) = payout_period(d("2024-01-10"), None, d("2024-01-10"));
        assert!(t < f);
    }
}
