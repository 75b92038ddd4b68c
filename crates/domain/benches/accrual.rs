//! Accrual throughput: 365 days over 3 marginal bands, with a balance change every few days so the
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! engine cannot collapse the year into one run. Prints account-days per second.

use chrono::{Duration, NaiveDate};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use domain::{accrue_units, AnnualRate, BalanceHistory, Band, RateSchedule, RateTable};

fn bench(c: &mut Criterion) {
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
    let rate = |s: &str| AnnualRate::parse_percent(s).unwrap();
    let rates = RateTable::new(vec![RateSchedule::new(
        start,
        vec![
            Band { from: 0, to: Some(50_000_000), rate: rate("2.3") },
            Band { from: 50_000_000, to: Some(100_000_000), rate: rate("4.0") },
            Band { from: 100_000_000, to: None, rate: rate("0.1") },
        ],
    )
    .unwrap()]);
    let end = start + Duration::days(364);
    let mut group = c.benchmark_group("accrual");
    // Worst case: the balance changes every day (365 runs).
    let daily = BalanceHistory::new((0..365).map(|i| (start + Duration::days(i), 10_000_000 + i * 400_000)).collect());
    // Typical: a change every week.
    let weekly =
        BalanceHistory::new((0..52).map(|i| (start + Duration::days(i * 7), 30_000_000 + i * 2_000_000)).collect());
    group.throughput(Throughput::Elements(365));
    group.bench_function("365_days_3_bands_daily_changes", |b| {
        b.iter(|| accrue_units(black_box(&rates), black_box(&daily), start, end))
    });
    group.bench_function("365_days_3_bands_weekly_changes", |b| {
        b.iter(|| accrue_units(black_box(&rates), black_box(&weekly), start, end))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
