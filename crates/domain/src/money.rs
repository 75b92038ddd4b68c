//! Whole-won amounts. Balances are plain `i64` (they may be negative); amounts that move money are
//! [`Amount`], which can only hold a positive value within [`MAX_AMOUNT`].

use serde::{Deserialize, Serialize};

/// The largest single movement accepted: 10^15 won (a thousand trillion), far above any real deposit
/// and far below `i64::MAX`, so sums of many movements cannot overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount must be a positive whole number of won")]
    NotPositive,
    #[error("amount must not exceed {MAX_AMOUNT} won")]
    TooLarge,
}

impl Amount {
    pub fn new(won: i64) -> Result<Self, AmountError> {
        if won <= 0 {
            Err(AmountError::NotPositive)
        } else if won > MAX_AMOUNT {
            Err(AmountError::TooLarge)
        } else {
            Ok(Self(won))
        }
    }

    pub fn won(self) -> i64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = i64::deserialize(d)?;
        Amount::new(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_zero_negative_and_huge() {
        assert_eq!(Amount::new(0), Err(AmountError::NotPositive));
        assert_eq!(Amount::new(-5), Err(AmountError::NotPositive));
        assert_eq!(Amount::new(MAX_AMOUNT + 1), Err(AmountError::TooLarge));
        assert_eq!(Amount::new(1).map(Amount::won), Ok(1));
    }
}
