//! Exact accrual (SPEC §3): one day's interest on portion `P` at rate `R` (millionths) is `P × R`
//! units of 1/365,000,000 won. Units are summed over the period with no rounding; only the payout
//! floors them to whole won, carrying the remainder to the next payout.

use chrono::NaiveDate;

use crate::date::next_day;
use crate::rate::RateTable;

/// 365 days × 10^6 (rates are in millionths): one won is this many units. Actual/365 fixed, so a
/// leap day accrues like any other day.
pub const UNITS_PER_WON: i128 = 365_000_000;

/// End-of-day balances as change points: the balance of a day is that of the latest point on or
/// before it, and 0 before the first point.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceHistory {
    points: Vec<(NaiveDate, i64)>,
}

impl BalanceHistory {
    /// Points may come in any order; a later duplicate date wins.
    pub fn new(mut points: Vec<(NaiveDate, i64)>) -> Self {
        points.sort_by_key(|p| p.0);
        points.dedup_by(|later, earlier| {
            if later.0 == earlier.0 {
                earlier.1 = later.1;
                true
            } else {
                false
            }
        });
        Self { points }
    }

    pub fn points(&self) -> &[(NaiveDate, i64)] {
        &self.points
    }

    pub fn balance_on(&self, day: NaiveDate) -> i64 {
        let idx = self.points.partition_point(|p| p.0 <= day);
        idx.checked_sub(1).map_or(0, |i| self.points[i].1)
    }
}

/// Units accrued over `[from, to]` inclusive. An empty period (`to < from`) accrues nothing; a day
/// with no schedule in force accrues nothing.
pub fn accrue_units(rates: &RateTable, balances: &BalanceHistory, from: NaiveDate, to: NaiveDate) -> i128 {
    if to < from {
        return 0;
    }
    // Walk the period in runs over which both the balance and the schedule are constant.
    let mut total: i128 = 0;
    let mut day = from;
    let points = balances.points();
    let schedules = rates.schedules();
    let mut bi = points.partition_point(|p| p.0 <= from);
    let mut si = schedules.partition_point(|s| s.effective_from() <= from);
    loop {
        let balance = bi.checked_sub(1).map_or(0, |i| points[i].1);
        let schedule = si.checked_sub(1).map(|i| &schedules[i]);
        // The run ends the day before the next change, or at `to`.
        let mut run_end = to;
        if let Some(p) = points.get(bi) {
            run_end = run_end.min(p.0.pred_opt().unwrap_or(p.0));
        }
        if let Some(s) = schedules.get(si) {
            run_end = run_end.min(s.effective_from().pred_opt().unwrap_or(s.effective_from()));
        }
        let days = (run_end - day).num_days() + 1;
        if let Some(schedule) = schedule {
            total += schedule.daily_units(balance) * days as i128;
        }
        if run_end >= to {
            return total;
        }
        day = next_day(run_end);
        while points.get(bi).is_some_and(|p| p.0 <= day) {
            bi += 1;
        }
        while schedules.get(si).is_some_and(|s| s.effective_from() <= day) {
            si += 1;
        }
    }
}

/// The outcome of flooring accrued units (plus the previous carry) to whole won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    pub gross: i64,
    /// Units left after the floor: kept with the payout and added to the next one. When the payout
    /// is not payable this is everything accrued (the period is not consumed).
    pub carry_out_units: i64,
    pub payable: bool,
}

/// Floors `carry_in + units` to whole won. `gross < 1` is not payable.
pub fn settle(carry_in_units: i64, units: i128) -> Settlement {
    let total = carry_in_units as i128 + units;
    let gross = total / UNITS_PER_WON;
    if gross < 1 {
        return Settlement { gross: 0, carry_out_units: saturate(total), payable: false };
    }
    Settlement { gross: saturate(gross), carry_out_units: saturate(total % UNITS_PER_WON), payable: true }
}

fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::{AnnualRate, Band, RateSchedule};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn flat(rate: &str, from: &str) -> RateTable {
        RateTable::new(vec![RateSchedule::new(
            d(from),
            vec![Band { from: 0, to: None, rate: AnnualRate::parse_percent(rate).unwrap() }],
        )
        .unwrap()])
    }

    #[test]
    fn runs_match_day_by_day() {
        let rates = RateTable::new(vec![
            RateSchedule::new(
                d("2024-01-01"),
                vec![Band { from: 0, to: None, rate: AnnualRate::parse_percent("2").unwrap() }],
            )
            .unwrap(),
            RateSchedule::new(
                d("2024-01-10"),
                vec![Band { from: 0, to: None, rate: AnnualRate::parse_percent("3").unwrap() }],
            )
            .unwrap(),
        ]);
        let bal = BalanceHistory::new(vec![(d("2023-12-30"), 100), (d("2024-01-05"), 200), (d("2024-01-12"), -3)]);
        let mut expected = 0i128;
        let mut day = d("2023-12-25");
        while day <= d("2024-01-20") {
            if let Some(s) = rates.in_force(day) {
                expected += s.daily_units(bal.balance_on(day));
            }
            day = next_day(day);
        }
        assert_eq!(accrue_units(&rates, &bal, d("2023-12-25"), d("2024-01-20")), expected);
    }

    #[test]
    fn empty_period_accrues_nothing() {
        let rates = flat("2", "2020-01-01");
        let bal = BalanceHistory::new(vec![(d("2020-01-01"), 1_000_000)]);
        assert_eq!(accrue_units(&rates, &bal, d("2024-01-02"), d("2024-01-01")), 0);
    }

    #[test]
    fn settle_floors_and_carries() {
        assert_eq!(settle(0, 40_000_000_000), Settlement { gross: 109, carry_out_units: 215_000_000, payable: true });
        assert_eq!(settle(0, 200_000_000), Settlement { gross: 0, carry_out_units: 200_000_000, payable: false });
        assert_eq!(
            settle(200_000_000, 200_000_000),
            Settlement { gross: 1, carry_out_units: 35_000_000, payable: true }
        );
    }
}
