//! Withholding tax (SPEC §4). Rules are data with effective dates: each category's rule is an
//! ordered list of components, each a rate applied to the gross or to an earlier component, and
//! truncated to a multiple of 10 won.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
pub struct TaxBreakdown {
    pub income_tax: i64,
    pub local_tax: i64,
    pub rural_special_tax: i64,
}

impl TaxBreakdown {
    pub fn total(&self) -> i64 {
        self.income_tax + self.local_tax + self.rural_special_tax
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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TaxError {
    #[error("no tax rule for category {0} in force on {1}")]
    NoRule(&'static str, NaiveDate),
    #[error("tax rule for {0} names a component as its own or a later component's base")]
    BadBase(&'static str),
    #[error("tax rule rate must be between 0 and 100%")]
    BadRate,
}

/// Truncates to a multiple of 10 won (amounts below 10 won are not collected).
pub fn floor10(v: i64) -> i64 {
    v - v.rem_euclid(10)
}

impl TaxRule {
    pub fn validate(&self) -> Result<(), TaxError> {
        for (i, c) in self.components.iter().enumerate() {
            if !(0..=1_000_000).contains(&c.rate_millionths) {
                return Err(TaxError::BadRate);
            }
            if let TaxBase::Component(base) = c.base {
                if !self.components[..i].iter().any(|e| e.component == base) {
                    return Err(TaxError::BadBase(self.category.as_str()));
                }
            }
        }
        Ok(())
    }

    pub fn withhold(&self, gross: i64) -> TaxBreakdown {
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

    pub fn withhold(&self, category: TaxCategory, on: NaiveDate, gross: i64) -> Result<TaxBreakdown, TaxError> {
        Ok(self.rule_for(category, on)?.withhold(gross))
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
    fn published_general_figures() {
        let rules = TaxRules::korea_since_2015();
        let on = NaiveDate::from_ymd_opt(2023, 8, 14).unwrap();
        let t = rules.withhold(TaxCategory::General, on, 109).unwrap();
        assert_eq!((t.income_tax, t.local_tax, 109 - t.total()), (10, 0, 99));
        let t = rules.withhold(TaxCategory::General, on, 2739).unwrap();
        assert_eq!((t.income_tax, t.local_tax, 2739 - t.total()), (380, 30, 2329));
        let t = rules.withhold(TaxCategory::General, on, 5479).unwrap();
        assert_eq!((t.income_tax, t.local_tax, 5479 - t.total()), (760, 70, 4649));
    }

    #[test]
    fn no_rule_before_first_effective_date() {
        let rules = TaxRules::korea_since_2015();
        let on = NaiveDate::from_ymd_opt(2010, 1, 1).unwrap();
        assert!(rules.withhold(TaxCategory::General, on, 100).is_err());
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
