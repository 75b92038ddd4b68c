//! Rate tables and tax rules kept in process, so a payout or an estimate does not read them from
//! the database each time. Each is reused while the revision read from Redis with the request's
//! other revisions (the product's rates revision, the tax rules' revision) is the one it was
//! loaded at — never when Redis gave none: then the database is read. A stale table or rule cannot
//! reach the books: the ledger verifies the quote's revisions when it books, and a re-quote after
//! a stale booking reads the database (`fresh`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::{RateTable, TaxRules};
use platform::revision::Rev;
use sqlx::PgPool;

use super::{products, store, Reference};
use crate::error::InterestError;

struct Loaded<T> {
    value: Arc<T>,
    rev: i64,
}

#[derive(Default)]
pub struct Kept {
    rates: Mutex<HashMap<String, Loaded<RateTable>>>,
    tax: Mutex<Option<Loaded<TaxRules>>>,
}

fn count(what: &'static str, hit: bool) {
    let result = if hit { "hit" } else { "miss" };
    metrics::counter!("interest_reference_cache_total", "data" => what, "result" => result).increment(1);
}

impl Reference {
    /// The product's rate table and its revision. `known`: the revision Redis holds for it;
    /// `fresh`: read the database whatever it says.
    pub async fn rate_table(
        &self,
        code: &str,
        known: Rev,
        fresh: bool,
    ) -> Result<(Arc<RateTable>, i64), InterestError> {
        self.kept.rate_table(&self.pool, code, known, fresh).await
    }

    /// Every tax rule and their revision. `known`: the revision Redis holds for them; `fresh`:
    /// read the database whatever it says.
    pub async fn tax_rules(&self, known: Rev, fresh: bool) -> Result<(Arc<TaxRules>, i64), InterestError> {
        self.kept.tax_rules(&self.pool, known, fresh).await
    }
}

impl Kept {
    /// The product's rate table and its revision. `known`: the revision Redis holds for it.
    async fn rate_table(
        &self,
        pool: &PgPool,
        code: &str,
        known: Rev,
        fresh: bool,
    ) -> Result<(Arc<RateTable>, i64), InterestError> {
        if !fresh {
            let rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = rates.get(code) {
                if known == Some(l.rev) {
                    count("rates", true);
                    return Ok((l.value.clone(), l.rev));
                }
            }
        }
        count("rates", false);
        let (table, rev) = products::rate_table(pool, code).await?;
        let table = Arc::new(table);
        let loaded = Loaded { value: table.clone(), rev };
        self.rates.lock().unwrap_or_else(|p| p.into_inner()).insert(code.to_string(), loaded);
        Ok((table, rev))
    }

    /// Every tax rule and their revision. `known`: the revision Redis holds for them.
    async fn tax_rules(&self, pool: &PgPool, known: Rev, fresh: bool) -> Result<(Arc<TaxRules>, i64), InterestError> {
        if !fresh {
            let tax = self.tax.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = tax.as_ref().filter(|l| known == Some(l.rev)) {
                count("tax_rules", true);
                return Ok((l.value.clone(), l.rev));
            }
        }
        count("tax_rules", false);
        let (rules, rev) = store::tax_rules(pool).await?;
        let rules = Arc::new(rules);
        *self.tax.lock().unwrap_or_else(|p| p.into_inner()) = Some(Loaded { value: rules.clone(), rev });
        Ok((rules, rev))
    }
}
