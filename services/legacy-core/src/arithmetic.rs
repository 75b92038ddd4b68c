//! The legacy core's own interest and withholding arithmetic, written from SPEC §2–§4 without the
//! `domain` crate (a comparison with shared code would prove nothing): rates as millionths of
//! percent points, a day's accrual in units of 1/365,000,000 won, one floor per payout, taxes
//! from the legacy's own withholding rates.

use chrono::{Days, NaiveDate};

/// One rate band: `[from, to)` won at `rate` (percent × 10,000: "2.3" is 23,000).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub from: i64,
    pub to: Option<i64>,
    pub rate: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub effective_from: NaiveDate,
    pub bands: Vec<Band>,
}

/// "2.3" → 23,000; at most 4 decimals, as the product's schedules are stored.
pub fn parse_rate(text: &str) -> Option<i64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || fraction.len() > 4 || !(whole.chars().chain(fraction.chars()).all(|c| c.is_ascii_digit())) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let padded = format!("{fraction:0<4}");
    let fraction: i64 = padded.parse().ok()?;
    Some(whole * 10_000 + fraction)
}

/// The schedule in force on `day`. `late`: a change (any schedule after the first) takes effect
/// one day after its date (a deviation).
fn in_force(schedules: &[Schedule], day: NaiveDate, late: bool) -> Option<&Schedule> {
    let mut found = None;
    for (i, s) in schedules.iter().enumerate() {
        let from = if late && i > 0 { s.effective_from + Days::new(1) } else { s.effective_from };
        if from <= day {
            found = Some(s);
        }
    }
    found
}

/// End-of-day balance on `day` from change points sorted by date (0 before the first).
fn balance_on(points: &[(NaiveDate, i64)], day: NaiveDate) -> i64 {
    points.iter().take_while(|(d, _)| *d <= day).last().map_or(0, |(_, b)| *b)
}

/// Units (1/365,000,000 won) accrued on `from..=to`.
pub fn accrued_units(
    schedules: &[Schedule],
    points: &[(NaiveDate, i64)],
    from: NaiveDate,
    to: NaiveDate,
    late: bool,
) -> i128 {
    let mut sorted = schedules.to_vec();
    sorted.sort_by_key(|s| s.effective_from);
    let mut units: i128 = 0;
    let mut day = from;
    while day <= to {
        let balance = balance_on(points, day);
        if balance > 0 {
            if let Some(s) = in_force(&sorted, day, late) {
                for band in &s.bands {
                    let top = band.to.map_or(balance, |t| balance.min(t));
                    let portion = (top - band.from).max(0);
                    units += i128::from(portion) * i128::from(band.rate);
                }
            }
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    units
}

pub const UNITS_PER_WON: i128 = 365_000_000;

/// Whole won and the remainder carried to the next payout.
pub fn settle(carry_in: i64, units: i128) -> (i64, i64) {
    let total = i128::from(carry_in) + units;
    let gross = total.div_euclid(UNITS_PER_WON);
    let carry = total.rem_euclid(UNITS_PER_WON);
    (i64::try_from(gross).unwrap_or(i64::MAX), i64::try_from(carry).unwrap_or(0))
}

/// The legacy's withholding rates for a category (parts per million).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WithholdingRates {
    pub income_tax_ppm: i64,
    pub local_tax_ppm: i64,
    pub rural_special_ppm: i64,
}

const PPM: i128 = 1_000_000;

/// Truncated to a multiple of 10 won, from an amount in `scale`ths of a won.
fn down10(scaled: i128, scale: i128) -> i64 {
    i64::try_from(scaled / (scale * 10) * 10).unwrap_or(i64::MAX)
}

/// Rounded half up to a multiple of 10 won (the rounding deviation).
fn half_up10(scaled: i128, scale: i128) -> i64 {
    i64::try_from((scaled + scale * 5) / (scale * 10) * 10).unwrap_or(i64::MAX)
}

/// `(component, amount)` withheld from `gross`, zero components left out. `rounding`: each
/// component rounded half up, the local tax from the income tax before its rounding (a deviation).
pub fn withhold(gross: i64, rates: WithholdingRates, rounding: bool) -> Vec<(&'static str, i64)> {
    let g = i128::from(gross);
    let income_scaled = g * i128::from(rates.income_tax_ppm);
    let (income, local) = if rounding {
        let local_scaled = income_scaled * i128::from(rates.local_tax_ppm);
        (half_up10(income_scaled, PPM), half_up10(local_scaled, PPM * PPM))
    } else {
        let income = down10(income_scaled, PPM);
        (income, down10(i128::from(income) * i128::from(rates.local_tax_ppm), PPM))
    };
    let rural_scaled = g * i128::from(rates.rural_special_ppm);
    let rural = if rounding { half_up10(rural_scaled, PPM) } else { down10(rural_scaled, PPM) };
    [("income_tax", income), ("local_tax", local), ("rural_special_tax", rural)]
        .into_iter()
        .filter(|(_, amount)| *amount != 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn flat(rate: &str) -> Vec<Schedule> {
        vec![Schedule {
            effective_from: d("2020-01-01"),
            bands: vec![Band { from: 0, to: None, rate: parse_rate(rate).unwrap() }],
        }]
    }

    const GENERAL: WithholdingRates =
        WithholdingRates { income_tax_ppm: 140_000, local_tax_ppm: 100_000, rural_special_ppm: 0 };

    #[test]
    fn the_published_checks_of_spec_4() {
        for (balance, gross, income, local) in
            [(2_000_000, 109, 10, 0), (50_000_000, 2_739, 380, 30), (100_000_000, 5_479, 760, 70)]
        {
            let units =
                accrued_units(&flat("2"), &[(d("2026-01-01"), balance)], d("2026-01-01"), d("2026-01-01"), false);
            let (g, _) = settle(0, units);
            assert_eq!(g, gross);
            let taxes = withhold(g, GENERAL, false);
            assert_eq!(taxes.iter().find(|t| t.0 == "income_tax").map_or(0, |t| t.1), income);
            assert_eq!(taxes.iter().find(|t| t.0 == "local_tax").map_or(0, |t| t.1), local);
        }
    }

    #[test]
    fn rates_parse_exactly_and_bands_are_marginal() {
        assert_eq!(parse_rate("2.3"), Some(23_000));
        assert_eq!(parse_rate("0.1234"), Some(1_234));
        assert_eq!(parse_rate("2.12345"), None);
        let tiered = vec![Schedule {
            effective_from: d("2020-01-01"),
            bands: vec![Band { from: 0, to: Some(1_000), rate: 10_000 }, Band { from: 1_000, to: None, rate: 20_000 }],
        }];
        let units = accrued_units(&tiered, &[(d("2026-01-01"), 3_000)], d("2026-01-01"), d("2026-01-01"), false);
        assert_eq!(units, 1_000 * 10_000 + 2_000 * 20_000);
    }

    #[test]
    fn the_deviations_change_what_they_say() {
        // 109 gross: income 15.26 → 10 truncated, 20 rounded half up.
        assert_eq!(withhold(109, GENERAL, false), vec![("income_tax", 10)]);
        assert_eq!(withhold(109, GENERAL, true), vec![("income_tax", 20)]);
        let mut schedules = flat("1");
        schedules
            .push(Schedule { effective_from: d("2026-01-02"), bands: vec![Band { from: 0, to: None, rate: 20_000 }] });
        let on_time = accrued_units(&schedules, &[(d("2026-01-01"), 1_000)], d("2026-01-02"), d("2026-01-02"), false);
        let late = accrued_units(&schedules, &[(d("2026-01-01"), 1_000)], d("2026-01-02"), d("2026-01-02"), true);
        assert_eq!((on_time, late), (20_000_000, 10_000_000));
    }
}
