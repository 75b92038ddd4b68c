//! Reference data every quote is computed from: products with their effective-dated rate
//! schedules, and the tax rules. Owns their SQL (`store`), the copies kept in process (`cache`),
//! the use cases that read and change them (`products`, `tax_rules`: a change is fenced in the
//! ledger before it commits here) and their revisions in Redis (`revisions`: republished at
//! start-up, healed when a fence is left ahead). The lowest capability: it names no other.

mod cache;
mod products;
mod revisions;
mod store;
mod tax_rules;

use std::sync::Arc;

use platform::clock::Clock;
use platform::revision::Publisher;
use platform::runtime::Infra;
use sqlx::PgPool;

pub use products::{add_schedule, create_product, product, products};
pub use revisions::{catch_up_rates, catch_up_tax_rules, republish};
pub use tax_rules::{list as tax_rules, schedule as schedule_tax_rule};

/// What the reference use cases need; its fields are theirs alone. Cheap to clone: payouts and
/// runs hold a clone and read rate tables and tax rules through it ([`Reference::rate_table`],
/// [`Reference::tax_rules`]).
#[derive(Clone)]
pub struct Reference {
    /// This service's database: products, schedules, tax rules and their revisions (and the
    /// recorded payouts' dates, which a change must not reach back into).
    pool: PgPool,
    /// Today's business date: a tax rule is scheduled only for a later one.
    clock: Clock,
    /// The ledger, where a change raises its rates or tax fence before it commits here.
    ledger: Arc<dyn peers::Ledger>,
    /// Publishes the rates and tax-rule revisions to Redis once a change commits (the estimate
    /// cache and the kept copies are keyed by them).
    revisions: Publisher,
    /// Rate tables and tax rules kept in process, shared by every clone; only `cache` reads and
    /// fills it.
    kept: Arc<cache::Kept>,
}

impl Reference {
    pub fn new(infra: &Infra, ledger: Arc<dyn peers::Ledger>, revisions: Publisher) -> Self {
        Self { pool: infra.pool.clone(), clock: infra.clock.clone(), ledger, revisions, kept: Arc::default() }
    }
}
