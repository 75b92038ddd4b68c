//! Withholding tax (SPEC §4). Rules are data with effective dates: each category's rule is an
//! ordered list of components, each a rate applied to the gross or to an earlier component, and
//! truncated to a multiple of 10 won.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaxCategory {
    General,
    TaxFree,
    Preferential,
}

impl TaxCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::General => "GENERAL",
            Self::TaxFree => "TAX_FREE",
            Self::Preferential => "PREFERENTIAL",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GENERAL" => Some(Self::General),
            "TAX_FREE" => Some(Self::TaxFree),
            "PREFERENTIAL" => Some(Self::Preferential),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxComponent {
    IncomeTax,
    LocalTax,
    RuralSpecialTax,
}

impl TaxComponent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IncomeTax => "income_tax",
            Self::LocalTax => "local_tax",
            Self::RuralSpecialTax => "rural_special_tax",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "income_tax" => Some(Self::IncomeTax),
            "local_tax" => Some(Self::LocalTax),
            "rural_special_tax" => Some(Self::RuralSpecialTax),
            _ => None,
        }
    }
}

/// What a component's rate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxBase {
    Gross,
    Component(TaxComponent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxComponentRule {
    pub component: TaxComponent,
    pub base: TaxBase,
    /// The rate in millionths of one (14% → 140,000; 0.5% → 5,000).
    pub rate_millionths: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxRule {
    pub category: TaxCategory,
    pub effective_from: NaiveDate,
    /// Applied in this order; a component's base may only name an earlier component.
    pub components: Vec<TaxComponentRule>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaxBreakdown {
    pub income_tax: i64,
    pub local_tax: i64,
    pub rural_special_tax: i64,
}

impl TaxBreakdown {
    /// The taxes added up; saturating, so amounts too large to add (only ever from a caller's
    /// input: withholding never computes them) are refused as exceeding the gross, not overflowed.
    pub fn total(&self) -> i64 {
        self.income_tax.saturating_add(self.local_tax).saturating_add(self.rural_special_tax)
    }

    pub fn get(&self, c: TaxComponent) -> i64 {
        match c {
            TaxComponent::IncomeTax => self.income_tax,
            TaxComponent::LocalTax => self.local_tax,
            TaxComponent::RuralSpecialTax => self.rural_special_tax,
        }
    }

    fn set(&mut self, c: TaxComponent, v: i64) {
        match c {
            TaxComponent::IncomeTax => self.income_tax = v,
            TaxComponent::LocalTax => self.local_tax = v,
            TaxComponent::RuralSpecialTax => self.rural_special_tax = v,
        }
    }
}

/// A gross amount and the taxes withheld from it; the customer receives the rest, [`net`]. The one
/// home of "net = gross − taxes": a `Withheld` exists only with a gross and taxes that are not
/// negative and taxes that do not exceed the gross. Serialized flat — `gross`, `income_tax`,
/// `local_tax`, `rural_special_tax`, `net` — and read back only if `net` agrees.
///
/// [`net`]: Withheld::net
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WithheldFields", try_from = "WithheldFields")]
pub struct Withheld {
    gross: i64,
    taxes: TaxBreakdown,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WithheldError {
    #[error("gross and taxes must not be negative")]
    Negative,
    #[error("taxes {taxes} exceed the gross {gross}")]
    TaxesExceedGross { gross: i64, taxes: i64 },
    #[error("net {net} is not gross {gross} less taxes {taxes}")]
    NetMismatch { gross: i64, taxes: i64, net: i64 },
}

impl Withheld {
    pub fn new(gross: i64, taxes: TaxBreakdown) -> Result<Self, WithheldError> {
        if gross < 0 || taxes.income_tax < 0 || taxes.local_tax < 0 || taxes.rural_special_tax < 0 {
            return Err(WithheldError::Negative);
        }
        if taxes.total() > gross {
            return Err(WithheldError::TaxesExceedGross { gross, taxes: taxes.total() });
        }
        Ok(Self { gross, taxes })
    }

    /// As [`Withheld::new`], and `net` must be what is left.
    pub fn with_net(gross: i64, taxes: TaxBreakdown, net: i64) -> Result<Self, WithheldError> {
        let w = Self::new(gross, taxes)?;
        if w.net() != net {
            return Err(WithheldError::NetMismatch { gross, taxes: taxes.total(), net });
        }
        Ok(w)
    }

    pub fn gross(&self) -> i64 {
        self.gross
    }

    pub fn taxes(&self) -> TaxBreakdown {
        self.taxes
    }

    pub fn net(&self) -> i64 {
        self.gross - self.taxes.total()
    }
}

/// Totals over many payouts (a run, a report): still gross = net + taxes.
impl std::ops::Add for Withheld {
    type Output = Withheld;
    fn add(self, o: Withheld) -> Withheld {
        let t = TaxBreakdown {
            income_tax: self.taxes.income_tax + o.taxes.income_tax,
            local_tax: self.taxes.local_tax + o.taxes.local_tax,
            rural_special_tax: self.taxes.rural_special_tax + o.taxes.rural_special_tax,
        };
        Withheld { gross: self.gross + o.gross, taxes: t }
    }
}

impl std::iter::Sum for Withheld {
    fn sum<I: Iterator<Item = Withheld>>(iter: I) -> Self {
        iter.fold(Withheld::default(), |a, b| a + b)
    }
}

#[derive(Serialize, Deserialize)]
struct WithheldFields {
    gross: i64,
    #[serde(flatten)]
    taxes: TaxBreakdown,
    net: i64,
}

impl From<Withheld> for WithheldFields {
    fn from(w: Withheld) -> Self {
        Self { gross: w.gross, taxes: w.taxes, net: w.net() }
    }
}

impl TryFrom<WithheldFields> for Withheld {
    type Error = WithheldError;
    fn try_from(f: WithheldFields) -> Result<Self, Self::Error> {
        Withheld::with_net(f.gross, f.taxes, f.net)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaxError {
    #[error("no tax rule for category {0} in force on {1}")]
    NoRule(&'static str, NaiveDate),
    #[error("tax rule for {0} names a component as its own or a later component's base")]
    BadBase(&'static str),
    #[error("tax rule rate must be between 0 and 100%")]
    BadRate,
    #[error("tax rule for {0} withholds more than the gross")]
    ExceedsGross(&'static str),
    #[error("tax rule for {0} names a component twice")]
    DuplicateComponent(&'static str),
}

/// Truncates to a multiple of 10 won (amounts below 10 won are not collected).
pub fn floor10(v: i64) -> i64 {
    v - v.rem_euclid(10)
}

impl TaxRule {
    /// A rule is usable when each rate is 0–100%, each component appears once with a base that
    /// is the gross or an earlier component, and all of them together can never withhold more
    /// than the gross (each component's share of the gross, exact, sums to at most one).
    pub fn validate(&self) -> Result<(), TaxError> {
        // Each component's share of the gross, as a fraction over 10^18 (three levels of
        // millionths at most: a base is an earlier component, of which there are at most two).
        const ONE: i128 = 1_000_000_000_000_000_000;
        let mut shares: Vec<(TaxComponent, i128)> = Vec::with_capacity(self.components.len());
        for c in &self.components {
            if !(0..=1_000_000).contains(&c.rate_millionths) {
                return Err(TaxError::BadRate);
            }
            if shares.iter().any(|(k, _)| *k == c.component) {
                return Err(TaxError::DuplicateComponent(self.category.as_str()));
            }
            let base = match c.base {
                TaxBase::Gross => ONE,
                TaxBase::Component(b) => match shares.iter().find(|(k, _)| *k == b) {
                    Some((_, share)) => *share,
                    None => return Err(TaxError::BadBase(self.category.as_str())),
                },
            };
            shares.push((c.component, base * i128::from(c.rate_millionths) / 1_000_000));
        }
        if shares.iter().map(|(_, s)| s).sum::<i128>() > ONE {
            return Err(TaxError::ExceedsGross(self.category.as_str()));
        }
        Ok(())
    }

    /// The taxes on `gross` (none on nothing), with the gross they were withheld from.
    pub fn withhold(&self, gross: i64) -> Result<Withheld, TaxError> {
        Withheld::new(gross.max(0), self.taxes_on(gross)).map_err(|_| TaxError::ExceedsGross(self.category.as_str()))
    }

    fn taxes_on(&self, gross: i64) -> TaxBreakdown {
        let mut out = TaxBreakdown::default();
        if gross <= 0 {
            return out;
        }
        for c in &self.components {
            let base = match c.base {
                TaxBase::Gross => gross,
                TaxBase::Component(b) => out.get(b),
            };
            let raw = (base as i128 * c.rate_millionths as i128 / 1_000_000) as i64;
            out.set(c.component, floor10(raw));
        }
        out
    }
}

/// Every category's rules over time.
#[derive(Debug, Clone, Default)]
pub struct TaxRules {
    rules: Vec<TaxRule>,
}

impl TaxRules {
    pub fn new(mut rules: Vec<TaxRule>) -> Result<Self, TaxError> {
        for r in &rules {
            r.validate()?;
        }
        rules.sort_by_key(|r| r.effective_from);
        Ok(Self { rules })
    }

    pub fn rule_for(&self, category: TaxCategory, on: NaiveDate) -> Result<&TaxRule, TaxError> {
        self.rules
            .iter()
            .rev()
            .find(|r| r.category == category && r.effective_from <= on)
            .ok_or(TaxError::NoRule(category.as_str(), on))
    }

    pub fn withhold(&self, category: TaxCategory, on: NaiveDate, gross: i64) -> Result<Withheld, TaxError> {
        self.rule_for(category, on)?.withhold(gross)
    }

    /// The rules in force in Korea since 2015 (the same data the interest migration seeds); for tests
    /// and tools that need rules without a database.
    pub fn korea_since_2015() -> Self {
        let from = NaiveDate::from_ymd_opt(2015, 1, 1).unwrap_or_default();
        let gross = TaxBase::Gross;
        let rule = |category, components| TaxRule { category, effective_from: from, components };
        let c = |component, base, rate_millionths| TaxComponentRule { component, base, rate_millionths };
        Self {
            rules: vec![
                rule(
                    TaxCategory::General,
                    vec![
                        c(TaxComponent::IncomeTax, gross, 140_000),
                        c(TaxComponent::LocalTax, TaxBase::Component(TaxComponent::IncomeTax), 100_000),
                    ],
                ),
                rule(TaxCategory::TaxFree, vec![]),
                rule(
                    TaxCategory::Preferential,
                    vec![c(TaxComponent::IncomeTax, gross, 90_000), c(TaxComponent::RuralSpecialTax, gross, 5_000)],
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taxes_too_large_to_add_are_refused_not_overflowed() {
        let huge = TaxBreakdown { income_tax: i64::MAX, local_tax: i64::MAX, rural_special_tax: 1 };
        assert_eq!(huge.total(), i64::MAX);
        assert!(matches!(Withheld::new(i64::MAX - 1, huge), Err(WithheldError::TaxesExceedGross { .. })));
    }

    #[test]
    fn published_general_figures() {
        let rules = TaxRules::korea_since_2015();
        let on = NaiveDate::from_ymd_opt(2023, 8, 14).unwrap();
        for (gross, income, local, net) in [(109, 10, 0, 99), (2739, 380, 30, 2329), (5479, 760, 70, 4649)] {
            let w = rules.withhold(TaxCategory::General, on, gross).unwrap();
            assert_eq!((w.taxes().income_tax, w.taxes().local_tax, w.net()), (income, local, net));
        }
    }

    #[test]
    fn withheld_amounts_balance_and_serialize_flat() {
        let taxes = TaxBreakdown { income_tax: 380, local_tax: 30, rural_special_tax: 0 };
        let w = Withheld::new(2739, taxes).unwrap();
        let json = serde_json::to_value(w).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"gross": 2739, "income_tax": 380, "local_tax": 30, "rural_special_tax": 0, "net": 2329})
        );
        assert_eq!(serde_json::from_value::<Withheld>(json.clone()).unwrap(), w);
        let mut wrong = json;
        wrong["net"] = 2330.into();
        assert!(serde_json::from_value::<Withheld>(wrong).is_err(), "net must be gross less taxes");
        assert_eq!(
            Withheld::new(100, TaxBreakdown { income_tax: 101, ..taxes }).map(|_| ()),
            Err(WithheldError::TaxesExceedGross { gross: 100, taxes: 131 })
        );
        assert!(Withheld::new(100, TaxBreakdown { income_tax: -1, ..Default::default() }).is_err());
        assert_eq!([w, w].into_iter().sum::<Withheld>().net(), 2 * 2329);
    }

    #[test]
    fn a_rule_withholding_more_than_the_gross_is_refused() {
        let c = |component, rate_millionths| TaxComponentRule { component, base: TaxBase::Gross, rate_millionths };
        let greedy = TaxRule {
            category: TaxCategory::General,
            effective_from: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            components: vec![c(TaxComponent::IncomeTax, 800_000), c(TaxComponent::LocalTax, 800_000)],
        };
        assert_eq!(greedy.withhold(1000), Err(TaxError::ExceedsGross("GENERAL")));
    }

    #[test]
    fn no_rule_before_first_effective_date() {
        let rules = TaxRules::korea_since_2015();
        let on = NaiveDate::from_ymd_opt(2010, 1, 1).unwrap();
        assert!(rules.withhold(TaxCategory::General, on, 100).is_err());
    }

    #[test]
    fn a_rule_is_refused_when_it_could_withhold_more_than_the_gross_or_names_a_component_twice() {
        let on = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let c = |component, base, rate_millionths| TaxComponentRule { component, base, rate_millionths };
        let rule = |components| TaxRule { category: TaxCategory::General, effective_from: on, components };
        let greedy = rule(vec![
            c(TaxComponent::IncomeTax, TaxBase::Gross, 800_000),
            c(TaxComponent::LocalTax, TaxBase::Gross, 800_000),
        ]);
        assert_eq!(greedy.validate(), Err(TaxError::ExceedsGross("GENERAL")));
        // 90% of the gross, and 100% of that again: 180% in all.
        let doubled = rule(vec![
            c(TaxComponent::IncomeTax, TaxBase::Gross, 900_000),
            c(TaxComponent::LocalTax, TaxBase::Component(TaxComponent::IncomeTax), 1_000_000),
        ]);
        assert_eq!(doubled.validate(), Err(TaxError::ExceedsGross("GENERAL")));
        let exactly_all = rule(vec![
            c(TaxComponent::IncomeTax, TaxBase::Gross, 500_000),
            c(TaxComponent::LocalTax, TaxBase::Component(TaxComponent::IncomeTax), 1_000_000),
        ]);
        assert_eq!(exactly_all.validate(), Ok(()));
        let twice = rule(vec![
            c(TaxComponent::IncomeTax, TaxBase::Gross, 10_000),
            c(TaxComponent::IncomeTax, TaxBase::Gross, 10_000),
        ]);
        assert_eq!(twice.validate(), Err(TaxError::DuplicateComponent("GENERAL")));
        for rules in [TaxRules::korea_since_2015()] {
            for r in &rules.rules {
                assert_eq!(r.validate(), Ok(()));
            }
        }
    }

    #[test]
    fn base_must_be_earlier_component() {
        let r = TaxRule {
            category: TaxCategory::General,
            effective_from: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap(),
            components: vec![TaxComponentRule {
                component: TaxComponent::LocalTax,
                base: TaxBase::Component(TaxComponent::IncomeTax),
                rate_millionths: 100_000,
            }],
        };
        assert!(r.validate().is_err());
    }
}
