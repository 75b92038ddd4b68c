//! How some JSON numbers are read.
//!
//! A count, a revision, an id or a percentage may be written as a whole number with a fraction
//! (`72.0`): JSON Schema counts it as an integer, and a client's JSON library may write one. A
//! won amount may not: money travels as a JSON integer only (a float never carries money, and
//! `100.000000000000001` reads as the float `100.0`), which the operations moving money say.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// The largest integer every float between it and its negation spells exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

struct Whole;

impl<'de> Visitor<'de> for Whole {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.abs() <= EXACT {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
}

fn whole_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(Whole)
}

/// An integer, also written as a whole number with a fraction (`72.0`), in `T`'s range.
pub fn whole<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    let v = whole_i64(d)?;
    T::try_from(v).map_err(|_| de::Error::invalid_value(de::Unexpected::Signed(v), &"an integer in range"))
}

/// A list of such integers, or null.
pub fn whole_list_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<i64>>, D::Error> {
    struct List;

    impl<'de> Visitor<'de> for List {
        type Value = Option<Vec<i64>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of integers or null")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            #[derive(Deserialize)]
            struct Item(#[serde(deserialize_with = "whole_i64")] i64);
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(Item(v)) = seq.next_element()? {
                out.push(v);
            }
            Ok(Some(out))
        }
    }

    d.deserialize_option(List)
}

/// The flat amounts of a payout (`gross`, each tax, `net`) read without arithmetic overflow: taxes
/// whose total leaves `i64` exceed any gross (the domain's `Withheld` then checks the rest).
pub fn withheld<'de, D: Deserializer<'de>>(d: D) -> Result<domain::Withheld, D::Error> {
    #[derive(Deserialize)]
    struct Fields {
        gross: i64,
        income_tax: i64,
        local_tax: i64,
        rural_special_tax: i64,
        net: i64,
    }
    let f = Fields::deserialize(d)?;
    let total = f.income_tax.checked_add(f.local_tax).and_then(|t| t.checked_add(f.rural_special_tax));
    if f.income_tax >= 0 && f.local_tax >= 0 && f.rural_special_tax >= 0 && total.is_none() {
        return Err(de::Error::custom(format!("taxes exceed the gross {}", f.gross)));
    }
    let taxes = domain::TaxBreakdown {
        income_tax: f.income_tax,
        local_tax: f.local_tax,
        rural_special_tax: f.rural_special_tax,
    };
    domain::Withheld::with_net(f.gross, taxes, f.net).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::whole")]
        percent: u8,
        #[serde(default, deserialize_with = "super::whole_list_or_null")]
        ids: Option<Vec<i64>>,
    }

    fn read(json: &str) -> Result<Body, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_whole_number_with_a_fraction_is_an_integer_and_nothing_else_is() {
        let b = read(r#"{"percent": 72.0, "ids": [1, 2.0, -3]}"#).unwrap();
        assert_eq!((b.percent, b.ids), (72, Some(vec![1, 2, -3])));
        assert_eq!(read(r#"{"percent": 0}"#).unwrap().ids, None);
        assert_eq!(read(r#"{"percent": 0, "ids": null}"#).unwrap().ids, None);
        assert_eq!(read(r#"{"percent": 0, "ids": []}"#).unwrap().ids, Some(vec![]));
        for bad in [
            r#"{"percent": 72.5}"#,
            r#"{"percent": 256}"#,
            r#"{"percent": -1}"#,
            r#"{"percent": "72"}"#,
            r#"{"percent": 1e300}"#,
            r#"{"percent": 1, "ids": [1.5]}"#,
            r#"{"percent": 1, "ids": [9223372036854775808]}"#,
            r#"{"percent": 1, "ids": 3}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Amounts {
        #[serde(flatten, deserialize_with = "super::withheld")]
        amounts: domain::Withheld,
        other: i64,
    }

    #[test]
    fn taxes_too_large_to_add_up_are_refused_not_overflowed() {
        let ok = r#"{"gross": 100, "income_tax": 14, "local_tax": 1, "rural_special_tax": 0, "net": 85, "other": 1}"#;
        let a: Amounts = serde_json::from_str(ok).unwrap();
        assert_eq!((a.amounts.net(), a.other), (85, 1));
        let max = i64::MAX;
        for bad in [
            format!(
                r#"{{"gross": {max}, "income_tax": {max}, "local_tax": {max}, "rural_special_tax": 0, "net": 0, "other": 1}}"#
            ),
            r#"{"gross": 100, "income_tax": 14, "local_tax": 1, "rural_special_tax": 0, "net": 86, "other": 1}"#.into(),
            r#"{"gross": 100, "income_tax": -14, "local_tax": 1, "rural_special_tax": 0, "net": 113, "other": 1}"#
                .into(),
        ] {
            assert!(serde_json::from_str::<Amounts>(&bad).is_err(), "{bad}");
        }
    }
}
