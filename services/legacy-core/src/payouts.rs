//! The legacy core's quote and payout for an account on a business date. Its inputs come from the
//! bank's feeds (account, customer, product rates, ledger balances and payouts) — as a legacy core
//! sees the data it shares with the new system during a migration — and its arithmetic and
//! withholding rates are its own. A payout is booked in the bank's ledger like every interest
//! payout, so the ledger's one-payout-per-account-per-business-date rule holds across both sides.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, Utc};
use contracts::legacy::{LegacyDeviations, LegacyPayout, LegacyQuote, LegacyTax};
use contracts::problem::Code;
use platform::client::{ClientError, ServiceClient};
use platform::clock::Clock;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::arithmetic::{accrued_units, parse_rate, settle, withhold, Band, Schedule};
use crate::error::LegacyError;
use crate::store;

// ---- the bank's data as the legacy core reads it (only the fields it uses) ----

#[derive(Deserialize)]
struct AccountFeed {
    customer_id: Uuid,
    product_code: String,
    opened_on: NaiveDate,
    status: String,
    deposit_suspended: bool,
    rev: i64,
}

#[derive(Deserialize)]
struct CustomerFeed {
    status: String,
    tax_category: String,
    rev: i64,
}

#[derive(Deserialize, Clone)]
struct BandFeed {
    from: i64,
    to: Option<i64>,
    rate: String,
}

#[derive(Deserialize, Clone)]
struct ScheduleFeed {
    effective_from: NaiveDate,
    bands: Vec<BandFeed>,
}

#[derive(Deserialize, Clone)]
struct ProductFeed {
    rate_schedules: Vec<ScheduleFeed>,
    #[serde(default)]
    rates_rev: i64,
}

#[derive(Deserialize)]
struct PointFeed {
    date: NaiveDate,
    balance: i64,
}

#[derive(Deserialize)]
struct PostedRequest {
    payout_id: Uuid,
    idempotency_key: String,
    business_date: NaiveDate,
    period_from: NaiveDate,
    period_to: NaiveDate,
    gross: i64,
    income_tax: i64,
    local_tax: i64,
    rural_special_tax: i64,
    net: i64,
    customer_id: Uuid,
    tax_category: String,
    carry_out_units: i64,
}

#[derive(Deserialize)]
struct PostingFeed {
    #[serde(flatten)]
    request: PostedRequest,
    entry_id: Uuid,
    balance_after: i64,
    posted_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct BalancesFeed {
    points: Vec<PointFeed>,
    last_interest_posting: Option<PostingFeed>,
    #[serde(default)]
    history_rev: i64,
    #[serde(default)]
    digest: String,
}

/// The ledger's interest-posting request, as the legacy core fills it in.
#[derive(Serialize)]
struct Booking<'a> {
    payout_id: Uuid,
    account_id: Uuid,
    customer_id: Uuid,
    product_code: &'a str,
    business_date: NaiveDate,
    period_from: NaiveDate,
    period_to: NaiveDate,
    gross: i64,
    income_tax: i64,
    local_tax: i64,
    rural_special_tax: i64,
    net: i64,
    carry_in_units: i64,
    carry_out_units: i64,
    tax_category: &'a str,
    idempotency_key: &'a str,
    request_hash: &'a str,
    basis: Basis<'a>,
}

#[derive(Serialize)]
struct Basis<'a> {
    history_rev: i64,
    balances_digest: &'a str,
    account_rev: i64,
    customer_rev: i64,
    rates_rev: i64,
}

/// The bank's services the legacy core reads and books through.
#[derive(Clone)]
pub struct Feeds {
    pub customer: ServiceClient,
    pub account_info: ServiceClient,
    pub accounting: ServiceClient,
    pub interest: ServiceClient,
    /// Product rates, kept a second (a booking's basis catches a change in between).
    products: Arc<Mutex<HashMap<String, (Instant, ProductFeed)>>>,
}

impl Feeds {
    pub fn new(
        customer: ServiceClient,
        account_info: ServiceClient,
        accounting: ServiceClient,
        interest: ServiceClient,
    ) -> Self {
        Self { customer, account_info, accounting, interest, products: Arc::default() }
    }

    async fn product(&self, code: &str) -> Result<ProductFeed, ClientError> {
        let cached = self.products.lock().unwrap_or_else(|p| p.into_inner()).get(code).cloned();
        if let Some((at, p)) = cached.filter(|(at, _)| at.elapsed() < Duration::from_secs(1)) {
            let _ = at;
            return Ok(p);
        }
        let p: ProductFeed = self.interest.get(&format!("/v1/interest/products/{code}")).await?;
        self.products.lock().unwrap_or_else(|p| p.into_inner()).insert(code.to_string(), (Instant::now(), p.clone()));
        Ok(p)
    }

    async fn balances(
        &self,
        id: Uuid,
        from: NaiveDate,
        to: NaiveDate,
        paid_before: Option<NaiveDate>,
    ) -> Result<BalancesFeed, ClientError> {
        let mut path = format!("/v1/ledger/accounts/{id}/daily-balances?from={from}&to={to}");
        if let Some(d) = paid_before {
            path.push_str(&format!("&paid_before={d}"));
        }
        self.accounting.get(&path).await
    }
}

/// What the quote and payout use cases need; its fields are theirs alone.
#[derive(Clone)]
pub struct Payouts {
    /// The simulator's own store: its withholding rates, its deviations, the payouts it made.
    pool: PgPool,
    /// The bank's business date (the manual clock in tests and demos), the only date it pays on.
    clock: Clock,
    /// The bank's services it reads its inputs from and books its payouts in.
    feeds: Feeds,
}

impl Payouts {
    pub fn new(pool: PgPool, clock: Clock, feeds: Feeds) -> Self {
        Self { pool, clock, feeds }
    }
}

/// A quote with what booking it needs.
struct Worked {
    quote: LegacyQuote,
    /// The last payout the ledger booked (before the date, with `as_if_unpaid`).
    last: Option<PostingFeed>,
    account: AccountFeed,
    customer: CustomerFeed,
    rates_rev: i64,
    carry_in: i64,
    carry_out: i64,
    history_rev: i64,
    digest: String,
}

fn schedules(p: &ProductFeed) -> Result<Vec<Schedule>, LegacyError> {
    p.rate_schedules
        .iter()
        .map(|s| {
            let bands = s
                .bands
                .iter()
                .map(|b| {
                    parse_rate(&b.rate)
                        .map(|rate| Band { from: b.from, to: b.to, rate })
                        .ok_or_else(|| LegacyError::Inconsistent(format!("unreadable rate {:?}", b.rate)))
                })
                .collect::<Result<_, _>>()?;
            Ok(Schedule { effective_from: s.effective_from, bands })
        })
        .collect()
}

/// The refusal, in SPEC §5's order, the legacy core gives.
fn refusal(a: &AccountFeed, c: &CustomerFeed, d: &LegacyDeviations, paid_today: bool, gross: i64) -> Option<Code> {
    if c.status != "ACTIVE" {
        Some(Code::CustomerRestricted)
    } else if a.status != "ACTIVE" {
        Some(Code::AccountNotActive)
    } else if a.deposit_suspended && !d.hold_ignored {
        Some(Code::DepositSuspended)
    } else if paid_today {
        Some(Code::AlreadyPaidToday)
    } else if gross < 1 {
        Some(Code::NothingToPay)
    } else {
        None
    }
}

async fn work(state: &Payouts, id: Uuid, today: NaiveDate, as_if_unpaid: bool) -> Result<Worked, LegacyError> {
    let feeds = &state.feeds;
    let account: AccountFeed = feeds.account_info.get(&format!("/v1/accounts/{id}")).await?;
    let (customer, product, head, deviations) = tokio::try_join!(
        async {
            feeds
                .customer
                .get::<CustomerFeed>(&format!("/v1/customers/{}", account.customer_id))
                .await
                .map_err(LegacyError::from)
        },
        async { feeds.product(&account.product_code).await.map_err(LegacyError::from) },
        async { feeds.balances(id, today, today, as_if_unpaid.then_some(today)).await.map_err(LegacyError::from) },
        async { Ok::<_, LegacyError>(store::deviations(&state.pool).await?.unwrap_or_default()) },
    )?;
    let head_rev = (head.history_rev, head.digest);
    let last_posting = head.last_interest_posting;
    let last = last_posting.as_ref().map(|p| &p.request);
    let paid_today = last.is_some_and(|l| l.business_date == today);
    let from = last.map_or(account.opened_on, |l| l.period_to + Days::new(1)).max(account.opened_on);
    let to = today - Days::new(1);
    let carry_in = last.map_or(0, |l| l.carry_out_units);
    let (units, history_rev, digest) = if from <= to {
        let period = feeds.balances(id, from, to, as_if_unpaid.then_some(today)).await?;
        let points: Vec<(NaiveDate, i64)> = period.points.iter().map(|p| (p.date, p.balance)).collect();
        let units = accrued_units(&schedules(&product)?, &points, from, to, deviations.rate_change_late);
        (units, period.history_rev, period.digest)
    } else {
        (0, head_rev.0, head_rev.1)
    };
    let (gross, carry_out) = settle(carry_in, units);
    let taxes = if gross >= 1 {
        let rates = store::withholding_rates(&state.pool, &customer.tax_category, today).await?;
        withhold(gross, rates, deviations.tax_rounding)
    } else {
        Vec::new()
    };
    let gross = gross.max(0);
    let net = gross - taxes.iter().map(|t| t.1).sum::<i64>();
    let code = refusal(&account, &customer, &deviations, paid_today, gross);
    let quote = LegacyQuote {
        account_id: id,
        business_date: today,
        period_from: from,
        period_to: to,
        gross,
        taxes: taxes.into_iter().map(|(c, a)| LegacyTax { component: c.into(), amount: a }).collect(),
        net,
        payable: code.is_none(),
        code: code.map(|c| c.as_str().to_string()),
    };
    let last = last_posting;
    Ok(Worked {
        quote,
        last,
        rates_rev: product.rates_rev,
        account,
        customer,
        carry_in,
        carry_out,
        history_rev,
        digest,
    })
}

async fn today_is(state: &Payouts, asked: NaiveDate) -> Result<NaiveDate, LegacyError> {
    let ours = state.clock.today().await?;
    if ours != asked {
        return Err(LegacyError::DateMismatch { ours, asked });
    }
    Ok(ours)
}

pub async fn quote(state: &Payouts, id: Uuid, date: NaiveDate, as_if_unpaid: bool) -> Result<LegacyQuote, LegacyError> {
    let today = today_is(state, date).await?;
    Ok(work(state, id, today, as_if_unpaid).await?.quote)
}

fn to_payout(p: PostingFeed, account_id: Uuid) -> LegacyPayout {
    let r = p.request;
    let taxes = [("income_tax", r.income_tax), ("local_tax", r.local_tax), ("rural_special_tax", r.rural_special_tax)]
        .into_iter()
        .filter(|(_, a)| *a != 0)
        .map(|(c, a)| LegacyTax { component: c.into(), amount: a })
        .collect();
    LegacyPayout {
        payout_id: r.payout_id,
        account_id,
        customer_id: r.customer_id,
        business_date: r.business_date,
        period_from: r.period_from,
        period_to: r.period_to,
        gross: r.gross,
        taxes,
        net: r.net,
        tax_category: r.tax_category,
        carry_units: r.carry_out_units,
        balance_after: p.balance_after,
        entry_id: p.entry_id,
        paid_at: p.posted_at,
    }
}

/// Pays on `date` (the legacy core's today) under `key`: the same key and request again answers
/// the same payout; the ledger books it (or refuses it: already paid that day by either side).
pub async fn pay(
    state: &Payouts,
    id: Uuid,
    date: NaiveDate,
    key: &str,
    hash: &str,
    channel_hash: Option<&str>,
) -> Result<LegacyPayout, LegacyError> {
    if let Some((stored_hash, payout)) = store::payout_by_key(&state.pool, id, key).await? {
        if stored_hash != hash {
            return Err(LegacyError::Refused(
                Code::IdempotencyKeyReused,
                "the key was used with another request".into(),
            ));
        }
        return Ok(payout);
    }
    let today = today_is(state, date).await?;
    for _ in 0..3 {
        let w = work(state, id, today, false).await?;
        // This key's payout booked today by the new system (a retry routed here): the same payout.
        if let Some(p) = w.last.filter(|p| p.request.business_date == today && p.request.idempotency_key == key) {
            return Ok(to_payout(p, id));
        }
        if let Some(code) = w.quote.code.as_deref().and_then(Code::parse) {
            return Err(LegacyError::Refused(code, format!("the legacy core does not pay {id} on {today}")));
        }
        let tax = |c: &str| w.quote.taxes.iter().filter(|t| t.component == c).map(|t| t.amount).sum::<i64>();
        let booking = Booking {
            payout_id: Uuid::new_v4(),
            account_id: id,
            customer_id: w.account.customer_id,
            product_code: &w.account.product_code,
            business_date: today,
            period_from: w.quote.period_from,
            period_to: w.quote.period_to,
            gross: w.quote.gross,
            income_tax: tax("income_tax"),
            local_tax: tax("local_tax"),
            rural_special_tax: tax("rural_special_tax"),
            net: w.quote.net,
            carry_in_units: w.carry_in,
            carry_out_units: w.carry_out,
            tax_category: &w.customer.tax_category,
            idempotency_key: key,
            request_hash: channel_hash.unwrap_or(hash),
            basis: Basis {
                history_rev: w.history_rev,
                balances_digest: &w.digest,
                account_rev: w.account.rev,
                customer_rev: w.customer.rev,
                rates_rev: w.rates_rev,
            },
        };
        match state.feeds.accounting.post::<_, PostingFeed>("/v1/ledger/interest-postings", &booking, &[]).await {
            Ok(posting) => {
                let payout = to_payout(posting, id);
                store::insert_payout(&state.pool, key, hash, &payout).await?;
                tracing::info!(account_id = %id, payout_id = %payout.payout_id, gross = payout.gross, "legacy payout booked");
                return Ok(payout);
            }
            Err(e) if e.refusal() == Some(Code::QuoteStale) => continue,
            Err(e) => match e.refusal() {
                Some(code) => return Err(LegacyError::Refused(code, e.to_string())),
                None => return Err(e.into()),
            },
        }
    }
    Err(LegacyError::Refused(Code::QuoteStale, format!("the inputs of {id} kept changing; try again")))
}
