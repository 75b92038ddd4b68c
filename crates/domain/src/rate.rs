//! Annual rates, marginal bands and effective-dated rate schedules (SPEC §2).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::MAX_AMOUNT;

/// An annual rate held exactly as millionths of one (2.3% → 23,000), so one day's accrual on a
/// portion `P` is `P × millionths` units of 1/365,000,000 won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AnnualRate(i64);

/// Rates above 100% a year are refused as a typo guard.
pub const MAX_RATE_MILLIONTHS: i64 = 1_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RateError {
    #[error("rate must be a decimal percentage such as \"2.3\"")]
    Malformed,
    #[error("rate may have at most 4 decimals")]
    TooManyDecimals,
    #[error("rate must not exceed 100%")]
    TooLarge,
}

impl AnnualRate {
    pub fn from_millionths(millionths: i64) -> Result<Self, RateError> {
        if !(0..=MAX_RATE_MILLIONTHS).contains(&millionths) {
            return Err(RateError::TooLarge);
        }
        Ok(Self(millionths))
    }

    pub fn millionths(self) -> i64 {
        self.0
    }

    /// Parses a percentage with at most 4 decimals: "2", "2.3", "0.1234".
    pub fn parse_percent(text: &str) -> Result<Self, RateError> {
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (text.contains('.') && !digits(frac)) {
            return Err(RateError::Malformed);
        }
        if frac.len() > 4 {
            return Err(RateError::TooManyDecimals);
        }
        if whole.len() > 3 {
            return Err(RateError::TooLarge);
        }
        let whole: i64 = whole.parse().map_err(|_| RateError::Malformed)?;
        let mut frac_value: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| RateError::Malformed)? };
        for _ in frac.len()..4 {
            frac_value *= 10;
        }
        // percent × 10^4 = millionths of one
        Self::from_millionths(whole * 10_000 + frac_value)
    }

    /// The canonical percentage text: "2.3", "4", "0.1234".
    pub fn to_percent_string(self) -> String {
        let whole = self.0 / 10_000;
        let frac = self.0 % 10_000;
        if frac == 0 {
            return whole.to_string();
        }
        let frac = format!("{frac:04}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

impl Serialize for AnnualRate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_percent_string())
    }
}

impl<'de> Deserialize<'de> for AnnualRate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        AnnualRate::parse_percent(&text).map_err(serde::de::Error::custom)
    }
}

/// One marginal band: `rate` applies to the part of the balance in `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Band {
    pub from: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<i64>,
    pub rate: AnnualRate,
}

/// A validated schedule: bands start at 0, are contiguous, and only the last is open-ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateSchedule {
    effective_from: NaiveDate,
    bands: Vec<Band>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("a schedule needs at least one band")]
    NoBands,
    #[error("bands[0].from must be 0")]
    FirstBandNotAtZero,
    #[error("bands[{0}].to must be greater than its from")]
    EmptyBand(usize),
    #[error("bands[{0}].from must equal the previous band's to (no gaps or overlaps)")]
    NotContiguous(usize),
    #[error("bands[{0}] is open-ended but is not the last band")]
    OpenBandNotLast(usize),
    #[error("the last band must be open-ended (no to)")]
    LastBandClosed,
    #[error("bands[{0}] bounds must be between 0 and {MAX_AMOUNT}")]
    BoundOutOfRange(usize),
}

impl ScheduleError {
    /// The request field the error is about, for problem responses.
    pub fn field(&self) -> String {
        match self {
            Self::NoBands => "bands".into(),
            Self::FirstBandNotAtZero => "bands[0].from".into(),
            Self::EmptyBand(i) => format!("bands[{i}].to"),
            Self::NotContiguous(i) => format!("bands[{i}].from"),
            Self::OpenBandNotLast(i) => format!("bands[{i}].to"),
            Self::LastBandClosed => "bands".into(),
            Self::BoundOutOfRange(i) => format!("bands[{i}]"),
        }
    }
}

impl RateSchedule {
    pub fn new(effective_from: NaiveDate, bands: Vec<Band>) -> Result<Self, ScheduleError> {
        if bands.is_empty() {
            return Err(ScheduleError::NoBands);
        }
        if bands[0].from != 0 {
            return Err(ScheduleError::FirstBandNotAtZero);
        }
        let last = bands.len() - 1;
        for (i, band) in bands.iter().enumerate() {
            let in_range = |v: i64| (0..=MAX_AMOUNT).contains(&v);
            if !in_range(band.from) || band.to.is_some_and(|t| !in_range(t)) {
                return Err(ScheduleError::BoundOutOfRange(i));
            }
            match band.to {
                Some(to) if to <= band.from => return Err(ScheduleError::EmptyBand(i)),
                None if i != last => return Err(ScheduleError::OpenBandNotLast(i)),
                Some(_) if i == last => return Err(ScheduleError::LastBandClosed),
                _ => {}
            }
            if i > 0 && bands[i - 1].to != Some(band.from) {
                return Err(ScheduleError::NotContiguous(i));
            }
        }
        Ok(Self { effective_from, bands })
    }

    pub fn effective_from(&self) -> NaiveDate {
        self.effective_from
    }

    pub fn bands(&self) -> &[Band] {
        &self.bands
    }

    /// One day's accrual on `balance`, in units of 1/365,000,000 won. Non-positive balances earn 0.
    pub fn daily_units(&self, balance: i64) -> i128 {
        if balance <= 0 {
            return 0;
        }
        let mut units: i128 = 0;
        for band in &self.bands {
            if balance <= band.from {
                break;
            }
            let top = band.to.map_or(balance, |to| to.min(balance));
            units += (top - band.from) as i128 * band.rate.millionths() as i128;
        }
        units
    }
}

/// All schedules of one product, ordered by `effective_from`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateTable {
    schedules: Vec<RateSchedule>,
}

impl RateTable {
    /// Builds the table; when two schedules share an `effective_from` the later one in the input wins.
    pub fn new(mut schedules: Vec<RateSchedule>) -> Self {
        schedules.sort_by_key(|s| s.effective_from);
        schedules.dedup_by(|later, earlier| {
            if later.effective_from == earlier.effective_from {
                std::mem::swap(later, earlier);
                true
            } else {
                false
            }
        });
        Self { schedules }
    }

    pub fn schedules(&self) -> &[RateSchedule] {
        &self.schedules
    }

    /// The schedule in force on `day`: the latest `effective_from` not after it.
    pub fn in_force(&self, day: NaiveDate) -> Option<&RateSchedule> {
        let idx = self.schedules.partition_point(|s| s.effective_from <= day);
        idx.checked_sub(1).map(|i| &self.schedules[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn band(from: i64, to: Option<i64>, rate: &str) -> Band {
        Band { from, to, rate: AnnualRate::parse_percent(rate).unwrap() }
    }

    #[test]
    fn parses_percentages_exactly() {
        assert_eq!(AnnualRate::parse_percent("2.3").unwrap().millionths(), 23_000);
        assert_eq!(AnnualRate::parse_percent("2").unwrap().millionths(), 20_000);
        assert_eq!(AnnualRate::parse_percent("0.1234").unwrap().millionths(), 1_234);
        assert_eq!(AnnualRate::parse_percent("100").unwrap().millionths(), 1_000_000);
        assert_eq!(AnnualRate::parse_percent("0.12345"), Err(RateError::TooManyDecimals));
        for bad in ["", ".", "2.", ".5", "-1", "+1", "1e2", "2,3", " 2"] {
            assert_eq!(AnnualRate::parse_percent(bad), Err(RateError::Malformed), "{bad:?}");
        }
        assert_eq!(AnnualRate::parse_percent("100.0001"), Err(RateError::TooLarge));
        assert_eq!(AnnualRate::parse_percent("2.30").unwrap().to_percent_string(), "2.3");
        assert_eq!(AnnualRate::parse_percent("4.0").unwrap().to_percent_string(), "4");
    }

    #[test]
    fn validates_bands() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        assert!(RateSchedule::new(d, vec![band(0, Some(10), "1"), band(10, None, "2")]).is_ok());
        assert_eq!(RateSchedule::new(d, vec![]), Err(ScheduleError::NoBands));
        assert_eq!(RateSchedule::new(d, vec![band(1, None, "1")]), Err(ScheduleError::FirstBandNotAtZero));
        assert_eq!(
            RateSchedule::new(d, vec![band(0, Some(10), "1"), band(11, None, "2")]),
            Err(ScheduleError::NotContiguous(1))
        );
        assert_eq!(
            RateSchedule::new(d, vec![band(0, Some(10), "1"), band(5, None, "2")]),
            Err(ScheduleError::NotContiguous(1))
        );
        assert_eq!(
            RateSchedule::new(d, vec![band(0, None, "1"), band(10, None, "2")]),
            Err(ScheduleError::OpenBandNotLast(0))
        );
        assert_eq!(RateSchedule::new(d, vec![band(0, Some(10), "1")]), Err(ScheduleError::LastBandClosed));
        assert_eq!(
            RateSchedule::new(d, vec![band(0, Some(0), "1"), band(0, None, "1")]),
            Err(ScheduleError::EmptyBand(0))
        );
    }

    #[test]
    fn marginal_bands_apply_only_to_their_portion() {
        let d = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let s = RateSchedule::new(d, vec![band(0, Some(100), "2"), band(100, None, "0.1")]).unwrap();
        assert_eq!(s.daily_units(110), 100 * 20_000 + 10 * 1_000);
        assert_eq!(s.daily_units(100), 100 * 20_000);
        assert_eq!(s.daily_units(0), 0);
        assert_eq!(s.daily_units(-5), 0);
    }

    #[test]
    fn schedule_in_force_is_latest_not_after_day() {
        let d1 = NaiveDate::from_ymd_opt(2024, 1, 1).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2024, 2, 1).unwrap();
        let t = RateTable::new(vec![
            RateSchedule::new(d2, vec![band(0, None, "3")]).unwrap(),
            RateSchedule::new(d1, vec![band(0, None, "2")]).unwrap(),
        ]);
        assert!(t.in_force(d1.pred_opt().unwrap()).is_none());
        assert_eq!(t.in_force(d1).unwrap().effective_from(), d1);
        assert_eq!(t.in_force(d2.pred_opt().unwrap()).unwrap().effective_from(), d1);
        assert_eq!(t.in_force(d2).unwrap().effective_from(), d2);
    }
}
