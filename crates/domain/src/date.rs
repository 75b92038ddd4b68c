//! Business dates: calendar days in Asia/Seoul (UTC+9, no daylight saving).

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, Utc};

pub type BusinessDate = NaiveDate;

/// Seoul's offset from UTC; Korea has not observed daylight saving since 1988.
pub const SEOUL_OFFSET_SECONDS: i32 = 9 * 3600;

pub fn seoul() -> FixedOffset {
    // 9 hours is always a valid offset.
    FixedOffset::east_opt(SEOUL_OFFSET_SECONDS).unwrap_or_else(|| unreachable!())
}

/// The business date at a given instant.
pub fn business_date_at(instant: DateTime<Utc>) -> BusinessDate {
    instant.with_timezone(&seoul()).date_naive()
}

/// The instant the given business date ends (next Seoul midnight), in UTC.
pub fn end_of_business_date(date: BusinessDate) -> DateTime<Utc> {
    let next = next_day(date);
    let midnight = next.and_hms_opt(0, 0, 0).unwrap_or_default();
    DateTime::<Utc>::from_naive_utc_and_offset(midnight, Utc) - Duration::seconds(SEOUL_OFFSET_SECONDS as i64)
}

/// The instant of a Seoul wall-clock time on a business date.
pub fn seoul_instant(date: BusinessDate, time: NaiveTime) -> DateTime<Utc> {
    DateTime::<Utc>::from_naive_utc_and_offset(date.and_time(time), Utc)
        - Duration::seconds(SEOUL_OFFSET_SECONDS as i64)
}

/// How long is left of the business date at `now` (what a value cached "until midnight" may live).
pub fn rest_of_business_date(now: DateTime<Utc>) -> std::time::Duration {
    (end_of_business_date(business_date_at(now)) - now).to_std().unwrap_or_default()
}

pub fn next_day(date: NaiveDate) -> NaiveDate {
    date.succ_opt().unwrap_or(NaiveDate::MAX)
}

pub fn previous_day(date: NaiveDate) -> NaiveDate {
    date.pred_opt().unwrap_or(NaiveDate::MIN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn seoul_date_turns_at_15_utc() {
        let before = Utc.with_ymd_and_hms(2024, 1, 1, 14, 59, 59).unwrap();
        let after = Utc.with_ymd_and_hms(2024, 1, 1, 15, 0, 0).unwrap();
        assert_eq!(business_date_at(before), NaiveDate::from_ymd_opt(2024, 1, 1).unwrap());
        assert_eq!(business_date_at(after), NaiveDate::from_ymd_opt(2024, 1, 2).unwrap());
        assert_eq!(end_of_business_date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()), after);
    }

    #[test]
    fn rest_of_day_ends_at_seoul_midnight() {
        let d = NaiveDate::from_ymd_opt(2024, 12, 31).unwrap();
        let last_second = seoul_instant(d, NaiveTime::from_hms_opt(23, 59, 59).unwrap());
        assert_eq!(rest_of_business_date(last_second), std::time::Duration::from_secs(1));
        let midnight = seoul_instant(next_day(d), NaiveTime::MIN);
        assert_eq!(business_date_at(midnight), next_day(d));
        assert_eq!(rest_of_business_date(midnight), std::time::Duration::from_secs(86_400));
        assert_eq!(business_date_at(last_second), d);
    }
}
