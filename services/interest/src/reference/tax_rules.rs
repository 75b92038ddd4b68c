//! Tax rules (SPEC §4: data with effective dates, not code constants): read by every quote, kept in
//! process at a revision, and changed only by scheduling a rule for a future business date (a law
//! change), audited by the gateway and kept here with who scheduled it and why.
//!
//! Race-free against payouts in flight, as rate schedules are: with the revision row locked and the
//! rule written but not committed, the ledger's fence of the category is raised to the new revision.
//! That waits for bookings in flight of the category, refuses the rule if a booked payout of the
//! category already has a business date it would govern, and from then on refuses bookings quoted
//! at an older revision of the rules (the 60-second cache and the day's cached estimate included);
//! only then does the rule commit here.

use contracts::problem::Code;
use contracts::{
    PayoutFence, ScheduleTaxRule, TaxBaseName, TaxComponentBody, TaxComponentName, TaxRuleView, TaxRulesView,
};
use domain::{AnnualRate, TaxBase, TaxComponent, TaxComponentRule, TaxRule};
use platform::db::GuardedBy;

use super::{store, Reference};
use crate::error::InterestError;

fn invalid(field: impl Into<String>, detail: impl Into<String>) -> InterestError {
    InterestError::Invalid { field: field.into(), detail: detail.into() }
}

fn component(name: TaxComponentName) -> TaxComponent {
    match name {
        TaxComponentName::IncomeTax => TaxComponent::IncomeTax,
        TaxComponentName::LocalTax => TaxComponent::LocalTax,
        TaxComponentName::RuralSpecialTax => TaxComponent::RuralSpecialTax,
    }
}

fn base(name: TaxBaseName) -> TaxBase {
    match name {
        TaxBaseName::Gross => TaxBase::Gross,
        TaxBaseName::IncomeTax => TaxBase::Component(TaxComponent::IncomeTax),
        TaxBaseName::LocalTax => TaxBase::Component(TaxComponent::LocalTax),
        TaxBaseName::RuralSpecialTax => TaxBase::Component(TaxComponent::RuralSpecialTax),
    }
}

/// A kept component as the API shows it.
fn to_body(c: &TaxComponentRule) -> TaxComponentBody {
    let component = match c.component {
        TaxComponent::IncomeTax => TaxComponentName::IncomeTax,
        TaxComponent::LocalTax => TaxComponentName::LocalTax,
        TaxComponent::RuralSpecialTax => TaxComponentName::RuralSpecialTax,
    };
    let base = match c.base {
        TaxBase::Gross => TaxBaseName::Gross,
        TaxBase::Component(TaxComponent::IncomeTax) => TaxBaseName::IncomeTax,
        TaxBase::Component(TaxComponent::LocalTax) => TaxBaseName::LocalTax,
        TaxBase::Component(TaxComponent::RuralSpecialTax) => TaxBaseName::RuralSpecialTax,
    };
    let rate = AnnualRate::from_millionths(c.rate_millionths).map_or_else(|_| "?".into(), |r| r.to_percent_string());
    TaxComponentBody { component, base, rate }
}

/// Parses a rule body into the domain's rule; errors name the offending field.
pub fn parse(body: &ScheduleTaxRule) -> Result<TaxRule, InterestError> {
    if body.components.len() > 3 {
        return Err(invalid("components", "at most 3 components (income, local, rural special tax)"));
    }
    let mut components = Vec::with_capacity(body.components.len());
    for (i, c) in body.components.iter().enumerate() {
        let rate =
            AnnualRate::parse_percent(&c.rate).map_err(|e| invalid(format!("components[{i}].rate"), e.to_string()))?;
        if rate.millionths() > 1_000_000 {
            return Err(invalid(format!("components[{i}].rate"), "a rate is at most 100 percent"));
        }
        components.push(TaxComponentRule {
            component: component(c.component),
            base: base(c.base),
            rate_millionths: rate.millionths(),
        });
    }
    let rule = TaxRule { category: body.category, effective_from: body.effective_from, components };
    rule.validate().map_err(|e| invalid("components", e.to_string()))?;
    let reason = body.reason.trim();
    if reason.is_empty() || body.reason.chars().count() > 500 {
        return Err(invalid("reason", "reason must be 1 to 500 characters, not only spaces"));
    }
    Ok(rule)
}

/// Every rule with who scheduled it, and the rules' revision.
pub async fn list(reference: &Reference) -> Result<TaxRulesView, InterestError> {
    let (rev, kept) = store::tax_rule_views(&reference.pool).await?;
    let rules = kept
        .into_iter()
        .map(|k| TaxRuleView {
            category: k.rule.category,
            effective_from: k.rule.effective_from,
            components: k.rule.components.iter().map(to_body).collect(),
            rev: k.rev,
            scheduled_by: k.scheduled_by,
            reason: k.reason,
            scheduled_at: k.scheduled_at,
        })
        .collect();
    Ok(TaxRulesView { rev, rules })
}

/// Schedules a rule from a future business date (see the module's doc); `by` is who asked (the
/// gateway's caller, or the service credential's holder).
pub async fn schedule(reference: &Reference, body: &ScheduleTaxRule, by: &str) -> Result<TaxRulesView, InterestError> {
    let rule = parse(body)?;
    let today = reference.clock.today().await?;
    if rule.effective_from <= today {
        return Err(invalid("effective_from", format!("a tax rule starts on a future business date, after {today}")));
    }
    let mut tx = reference.pool.begin().await?;
    let rev = store::lock_tax_rules(&mut tx).await?;
    let category = rule.category;
    if let Some(paid) = store::category_paid_on(&mut tx, category).await?.filter(|p| rule.effective_from <= *p) {
        return Err(affects_paid(category, paid));
    }
    let reason = body.reason.trim();
    store::insert_tax_rule(&mut tx, &rule, rev + 1, by, reason).await.guarded_by("tax_rules_pkey", || {
        InterestError::Rule(
            Code::TaxRuleExists,
            format!("{} already has a rule from {}", category.as_str(), rule.effective_from),
        )
    })?;
    let fence = PayoutFence {
        subject: contracts::fence::tax(category),
        rev: rev + 1,
        effective_from: Some(rule.effective_from),
    };
    let raised = match reference.ledger.raise_fence(&fence).await {
        Ok(f) => f,
        Err(e) if e.refusal() == Some(Code::TaxRuleAffectsPaidPeriod) => {
            return Err(InterestError::Rule(Code::TaxRuleAffectsPaidPeriod, format!("the ledger: {e}")))
        }
        Err(e) => return Err(e.into()),
    };
    // Higher only if an earlier change raised a fence and then failed to commit here.
    let rev = raised.rev.max(rev + 1);
    store::set_tax_rules_rev(&mut tx, rev).await?;
    platform::fault::point("tax.after_fence");
    tx.commit().await?;
    reference.revisions.publish(contracts::revision::tax_rules(), rev).await;
    tracing::warn!(category = category.as_str(), effective_from = %rule.effective_from, rev, by, "tax rule scheduled");
    list(reference).await
}

fn affects_paid(category: domain::TaxCategory, paid: chrono::NaiveDate) -> InterestError {
    InterestError::Rule(
        Code::TaxRuleAffectsPaidPeriod,
        format!("a {} payout has business date {paid}; a new rule must start after it", category.as_str()),
    )
}
