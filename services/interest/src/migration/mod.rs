//! The migration off the legacy core (docs/migration.md): the adapter to it (`legacy`: its quote
//! and payout as this system's estimate and payout, for the customers the gateway's rollout keeps
//! there) and the shadow comparisons of this system's answers with its (`shadow`, with the
//! mismatches' SQL in `store`). Names `payout` (a key this system already answered is answered
//! again); runs offer their payouts to the comparisons.

mod legacy;
mod shadow;
mod store;

use platform::clock::Clock;
use platform::runtime::Infra;
use sqlx::PgPool;

use crate::payout::Payouts;

pub use legacy::LegacyCore;
pub(crate) use legacy::{estimate as legacy_estimate, pay as legacy_pay};
pub use shadow::{mismatches, parse_ratio, Answer, Shadow, ShadowSettings};

/// What the legacy core's use cases and the mismatches' listing need; its fields are theirs alone.
#[derive(Clone)]
pub struct Migration {
    /// The legacy core (`LEGACY_CORE_URL`), for the customers the rollout keeps there; `None`: not
    /// configured, and its routes answer 404.
    legacy: Option<LegacyCore>,
    /// Shadow comparisons of answers with the legacy core's (when it is configured): the routes
    /// and the payout runs offer their answers ([`Migration::shadow`]); its workers own the rest.
    shadow: Option<Shadow>,
    /// The business date the legacy core is asked to quote or pay on.
    clock: Clock,
    /// This service's database: the mismatches the comparisons stored.
    pool: PgPool,
    /// The answers kept here: a key this system already answered is not sent to the legacy core.
    payouts: Payouts,
}

impl Migration {
    pub fn new(infra: &Infra, legacy: Option<LegacyCore>, shadow: Option<Shadow>, payouts: Payouts) -> Self {
        Self { legacy, shadow, clock: infra.clock.clone(), pool: infra.pool.clone(), payouts }
    }

    /// The shadow comparisons, to offer an answer to (`None`: no legacy core, nothing compared).
    pub fn shadow(&self) -> Option<&Shadow> {
        self.shadow.as_ref()
    }
}
