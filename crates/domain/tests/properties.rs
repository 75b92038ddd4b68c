//! Property tests for the accrual and tax arithmetic (issue 3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, NaiveDate};
use domain::{
    accrue_units, quote, settle, AnnualRate, BalanceHistory, Band, RateSchedule, RateTable, TaxCategory, TaxRules,
    MAX_AMOUNT,
};
use proptest::prelude::*;

fn base() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
}

fn rate_strategy() -> impl Strategy<Value = i64> {
    0i64..=200_000 // 0% .. 20%
}

/// Up to three schedules with up to three marginal bands each.
fn table_strategy() -> impl Strategy<Value = RateTable> {
    prop::collection::vec(
        (0i64..4000, prop::collection::vec((1i64..200_000_000, rate_strategy()), 0..3), rate_strategy()),
        1..4,
    )
    .prop_map(|schedules| {
        RateTable::new(
            schedules
                .into_iter()
                .map(|(offset, widths, last_rate)| {
                    let mut bands = Vec::new();
                    let mut from = 0;
                    for (w, r) in widths {
                        bands.push(Band { from, to: Some(from + w), rate: AnnualRate::from_millionths(r).unwrap() });
                        from += w;
                    }
                    bands.push(Band { from, to: None, rate: AnnualRate::from_millionths(last_rate).unwrap() });
                    RateSchedule::new(base() + Duration::days(offset), bands).unwrap()
                })
                .collect(),
        )
    })
}

fn history_strategy(max_balance: i64) -> impl Strategy<Value = BalanceHistory> {
    prop::collection::vec((0i64..4000, -1_000_000i64..max_balance), 1..20)
        .prop_map(|pts| BalanceHistory::new(pts.into_iter().map(|(o, b)| (base() + Duration::days(o), b)).collect()))
}

proptest! {
    #[test]
    fn splitting_a_period_pays_the_same_total_gross_and_carry(
        rates in table_strategy(),
        hist in history_strategy(2_000_000_000),
        start in 0i64..3000,
        len in 1i64..800,
        split in 0i64..800,
        carry in 0i64..365_000_000,
    ) {
        let from = base() + Duration::days(start);
        let to = from + Duration::days(len - 1);
        let mid = from + Duration::days(split.min(len - 1));
        let whole = settle(carry, accrue_units(&rates, &hist, from, to));
        // Two payouts: the first floors and carries; the second adds the carry. A first payout that
        // is not payable would not consume its period, so it folds into the second: same as whole.
        let first = settle(carry, accrue_units(&rates, &hist, from, mid));
        let second = if first.payable {
            settle(first.carry_out_units, accrue_units(&rates, &hist, mid + Duration::days(1), to))
        } else {
            settle(carry, accrue_units(&rates, &hist, from, to))
        };
        let split_total = if first.payable { first.gross + second.gross } else { second.gross };
        prop_assert_eq!(split_total, whole.gross);
        prop_assert_eq!(second.carry_out_units, whole.carry_out_units);
    }

    #[test]
    fn accrual_is_monotone_in_balance(
        rates in table_strategy(),
        b in -1_000_000i64..1_000_000_000_000,
        extra in 0i64..1_000_000_000,
        len in 1i64..400,
    ) {
        let from = base() + Duration::days(1000);
        let to = from + Duration::days(len - 1);
        let lo = accrue_units(&rates, &BalanceHistory::new(vec![(from, b)]), from, to);
        let hi = accrue_units(&rates, &BalanceHistory::new(vec![(from, b + extra)]), from, to);
        prop_assert!(lo <= hi);
    }

    #[test]
    fn accrual_is_monotone_in_rate(r in rate_strategy(), extra in 0i64..100_000, b in 0i64..10_000_000_000, len in 1i64..400) {
        let flat = |rate: i64| RateTable::new(vec![RateSchedule::new(base(), vec![Band {
            from: 0, to: None, rate: AnnualRate::from_millionths(rate).unwrap() }]).unwrap()]);
        let hist = BalanceHistory::new(vec![(base(), b)]);
        let to = base() + Duration::days(len - 1);
        prop_assert!(accrue_units(&flat(r), &hist, base(), to) <= accrue_units(&flat(r + extra), &hist, base(), to));
    }

    #[test]
    fn taxes_add_up_and_never_exceed_gross(gross in 0i64..1_000_000_000_000_000, cat in 0usize..3) {
        let category = [TaxCategory::General, TaxCategory::TaxFree, TaxCategory::Preferential][cat];
        let w = TaxRules::korea_since_2015().withhold(category, base(), gross).unwrap();
        let t = w.taxes();
        prop_assert!(t.total() <= gross && w.net() == gross - t.total());
        prop_assert!(t.income_tax % 10 == 0 && t.local_tax % 10 == 0 && t.rural_special_tax % 10 == 0);
        prop_assert!(t.income_tax >= 0 && t.local_tax >= 0 && t.rural_special_tax >= 0);
    }

    #[test]
    fn net_plus_taxes_is_gross_without_overflow(
        rates in table_strategy(),
        b in 0i64..=MAX_AMOUNT,
        len in 1i64..=3653,
        carry in 0i64..365_000_000,
        cat in 0usize..3,
    ) {
        let category = [TaxCategory::General, TaxCategory::TaxFree, TaxCategory::Preferential][cat];
        let hist = BalanceHistory::new(vec![(base(), b)]);
        let to = base() + Duration::days(len - 1);
        let rule = TaxRules::korea_since_2015();
        let q = quote(&rates, &hist, (base(), to), carry, rule.rule_for(category, to).unwrap()).unwrap();
        let a = q.amounts;
        prop_assert_eq!(a.net() + a.taxes().total(), a.gross());
        prop_assert!(a.gross() >= 0 && a.net() >= 0);
        prop_assert!(q.carry_out_units >= 0);
    }
}

#[test]
fn extreme_balance_over_ten_years_does_not_overflow() {
    let rates = RateTable::new(vec![RateSchedule::new(
        base(),
        vec![Band { from: 0, to: None, rate: AnnualRate::from_millionths(1_000_000).unwrap() }],
    )
    .unwrap()]);
    let hist = BalanceHistory::new(vec![(base(), MAX_AMOUNT)]);
    let to = base() + Duration::days(3652);
    let s = settle(364_999_999, accrue_units(&rates, &hist, base(), to));
    // 100% a year on 10^15 won for 3,653 days: exactly 10^15 × 3653 / 365 won, floored.
    assert_eq!(s.gross as i128, (MAX_AMOUNT as i128 * 3653 * 1_000_000 + 364_999_999) / 365_000_000);
}
