//! Every worked case of `interest.json` (copied from the shared spec) through the engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use chrono::NaiveDate;
use domain::{quote, AnnualRate, BalanceHistory, Band, RateSchedule, RateTable, TaxCategory, TaxRules, UNITS_PER_WON};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    units_per_won: i64,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Schedule {
    effective_from: NaiveDate,
    bands: Vec<Band>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    rate_schedules: Vec<Schedule>,
    daily_balances: BTreeMap<NaiveDate, i64>,
    period_from: NaiveDate,
    period_to: NaiveDate,
    carry_in_units: i64,
    tax_category: TaxCategory,
    expected: Expected,
}

#[derive(Deserialize)]
struct Expected {
    gross: i64,
    income_tax: i64,
    local_tax: i64,
    rural_special_tax: i64,
    net: i64,
    carry_out_units: i64,
    payable: bool,
}

#[test]
fn every_vector_case_passes() {
    let file: File = serde_json::from_str(include_str!("interest.json")).expect("vectors parse");
    assert_eq!(file.units_per_won as i128, UNITS_PER_WON);
    assert!(file.cases.len() >= 13, "all cases present");
    let tax_rules = TaxRules::korea_since_2015();
    for case in file.cases {
        let rates = RateTable::new(
            case.rate_schedules
                .into_iter()
                .map(|s| RateSchedule::new(s.effective_from, s.bands).expect("valid schedule"))
                .collect(),
        );
        let balances = BalanceHistory::new(case.daily_balances.into_iter().collect());
        let rule = tax_rules.rule_for(case.tax_category, case.period_to).expect("rule");
        let q = quote(&rates, &balances, (case.period_from, case.period_to), case.carry_in_units, rule).expect("quote");
        let (e, a, t) = (&case.expected, q.amounts, q.amounts.taxes());
        let got = (a.gross(), t.income_tax, t.local_tax, t.rural_special_tax, a.net(), q.carry_out_units, q.payable);
        let want = (e.gross, e.income_tax, e.local_tax, e.rural_special_tax, e.net, e.carry_out_units, e.payable);
        assert_eq!(got, want, "case {}", case.name);
    }
}

#[test]
fn rates_in_vectors_parse_to_millionths() {
    assert_eq!(AnnualRate::parse_percent("2.0").unwrap().millionths(), 20_000);
}
