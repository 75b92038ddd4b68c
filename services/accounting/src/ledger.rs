//! Ledger use cases. Each owns its transaction: lock only the balance row(s) it changes (with a
//! short lock timeout), write one balanced entry, and retry a busy row with backoff and jitter
//! inside a bounded budget.

use contracts::problem::Code;
use platform::db::GuardedBy;
use std::future::Future;
use std::time::Duration;
use tracing::Instrument;

use chrono::NaiveDate;
use contracts::{
    Account, BalancePoint, DailyBalances, InterestPosting, InterestPostingFeed, InterestPostingRequest, PayoutFence,
    Posting, TransferPosting,
};
use domain::{AccountStatus, Amount};
use peers::directory::LookupError;
use rand::Rng;
use sqlx::Acquire;
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{Entry, EntryHeader, EntryKind, LedgerAccount, Line};
use crate::state::AppState;
use crate::store;

/// A money-moving response, fresh or replayed for a repeated Idempotency-Key.
pub struct Response {
    pub status: u16,
    pub body: serde_json::Value,
}

pub struct Idempotency<'a> {
    pub key: &'a str,
    pub request_hash: &'a str,
}

/// Runs `attempt` until it succeeds, fails for a non-retryable reason, or the budget runs out.
async fn retrying<T, F, Fut>(state: &AppState, mut attempt: F) -> Result<T, LedgerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, LedgerError>>,
{
    let deadline = tokio::time::Instant::now() + state.lock_budget;
    let mut backoff = Duration::from_millis(10);
    loop {
        match attempt().await {
            Err(e) if e.is_retryable() => {
                let now = tokio::time::Instant::now();
                if now >= deadline {
                    return Err(LedgerError::Busy);
                }
                let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64);
                tokio::time::sleep((backoff + Duration::from_millis(jitter)).min(deadline - now)).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Reads the account's current state (cached, see platform::directory) and makes sure the ledger
/// knows it.
async fn account_for_posting(state: &AppState, id: Uuid) -> Result<Account, LedgerError> {
    let account = match state.accounts.lookup(id, |_| Vec::new()).await {
        Ok(l) => l.account,
        Err(LookupError::Dependency(e)) => return Err(e.into()),
        Err(_) => return Err(LedgerError::AccountNotFound(id)),
    };
    if store::find_account(&state.pool, id).await?.is_none() {
        store::create_account(&state.pool, id, account.opened_on).await?;
    }
    Ok(account)
}

fn require_active(a: &Account) -> Option<(Code, String)> {
    (a.status != AccountStatus::Active)
        .then(|| (Code::AccountNotActive, format!("account {} is {}", a.account_id, a.status.as_str())))
}

/// A refusal decided before the transaction (from the account's status and holds), given only
/// after the idempotency key is looked up under the row lock: a retry of a movement already
/// booked gets its booked answer even if a hold was set since (found by the chaos workload).
fn refused(refusal: &Option<(Code, String)>) -> Result<(), LedgerError> {
    match refusal {
        Some((code, detail)) => Err(LedgerError::Refused(*code, detail.clone())),
        None => Ok(()),
    }
}

fn check_value_date(acct: &store::LedgerAccount, value_date: NaiveDate, today: NaiveDate) -> Result<(), LedgerError> {
    if value_date > today {
        return Err(LedgerError::Refused(
            Code::ValueDateInFuture,
            format!("value_date {value_date} is after today {today}"),
        ));
    }
    if value_date < acct.opened_on {
        return Err(LedgerError::Refused(
            Code::ValueDateBeforeOpening,
            format!("value_date {value_date} is before the account opened on {}", acct.opened_on),
        ));
    }
    if let Some(paid) = acct.paid_through {
        if value_date <= paid {
            return Err(LedgerError::Refused(
                Code::ValueDateInPaidPeriod,
                format!("interest is already paid through {paid}; value_date must be later"),
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Deposit,
    Withdrawal,
}

/// A deposit or withdrawal on one account.
pub async fn move_money(
    state: &AppState,
    account_id: Uuid,
    direction: Direction,
    amount: Amount,
    value_date: Option<NaiveDate>,
    idem: Idempotency<'_>,
) -> Result<Response, LedgerError> {
    let account = account_for_posting(state, account_id).await?;
    let refusal = require_active(&account).or_else(|| match direction {
        Direction::Deposit if account.deposit_suspended => {
            Some((Code::DepositSuspended, "deposits to this account are suspended".into()))
        }
        Direction::Withdrawal if account.withdrawal_suspended => {
            Some((Code::WithdrawalSuspended, "withdrawals from this account are suspended".into()))
        }
        _ => None,
    });
    let today = state.clock.today().await?;
    let value_date = value_date.unwrap_or(today);
    let (operation, kind) = match direction {
        Direction::Deposit => ("deposit", EntryKind::Deposit),
        Direction::Withdrawal => ("withdrawal", EntryKind::Withdrawal),
    };
    retrying(state, || async {
        let mut tx = state.pool.begin().await?;
        store::set_lock_timeout(&mut tx, state.lock_timeout.as_millis()).await?;
        let acct = store::lock_account(&mut tx, account_id).await?.ok_or(LedgerError::AccountNotFound(account_id))?;
        if let Some(stored) = store::find_idempotent(&mut tx, account_id, idem.key).await? {
            return replay(stored, idem.request_hash);
        }
        refused(&refusal)?;
        check_value_date(&acct, value_date, today)?;
        let delta = match direction {
            Direction::Deposit => amount.won(),
            Direction::Withdrawal => -amount.won(),
        };
        let balance_after = acct
            .balance
            .checked_add(delta)
            .filter(|b| *b <= domain::MAX_AMOUNT * 1000)
            .ok_or_else(|| LedgerError::Refused(Code::AmountTooLarge, "the balance would overflow".into()))?;
        if balance_after < 0 {
            return Err(LedgerError::Refused(
                Code::InsufficientFunds,
                format!("balance {} is less than {}", acct.balance, amount.won()),
            ));
        }
        let entry_id = Uuid::new_v4();
        let lines = match direction {
            Direction::Deposit => {
                [Line::debit(LedgerAccount::Cash, amount.won()), Line::credit_customer(account_id, amount.won())]
            }
            Direction::Withdrawal => {
                [Line::credit(LedgerAccount::Cash, amount.won()), Line::debit_customer(account_id, amount.won())]
            }
        };
        let entry = Entry::new(kind, lines)?;
        let history_rev = store::set_balance(&mut tx, account_id, balance_after, None, value_date < today).await?;
        let header =
            EntryHeader { entry_id, account_id, business_date: today, value_date, balance_after, payout: None };
        store::insert_entry(&mut tx, &header, &entry).await?;
        store::apply_to_daily_balances(&mut tx, account_id, value_date, delta).await?;
        let posting =
            Posting { entry_id, account_id, kind: kind.code().into(), amount: amount.won(), value_date, balance_after };
        let body = serde_json::to_value(&posting).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        store::save_idempotent(&mut tx, account_id, idem.key, operation, idem.request_hash, 201, &body).await?;
        tx.commit().await?;
        if value_date < today {
            state.revisions.publish(contracts::revision::ledger(account_id), history_rev).await;
        }
        Ok(Response { status: 201, body })
    })
    .await
}

fn replay(stored: store::StoredResponse, request_hash: &str) -> Result<Response, LedgerError> {
    if stored.request_hash != request_hash {
        return Err(LedgerError::KeyReused);
    }
    Ok(Response { status: stored.status as u16, body: stored.response })
}

/// A transfer between two customer accounts, dated today. Both balance rows are locked in account
/// id order, so two opposite transfers cannot deadlock.
pub async fn transfer(
    state: &AppState,
    from: Uuid,
    to: Uuid,
    amount: Amount,
    idem: Idempotency<'_>,
) -> Result<Response, LedgerError> {
    if from == to {
        return Err(LedgerError::Refused(Code::SameAccount, "from_account_id and to_account_id must differ".into()));
    }
    let (source, target) = tokio::try_join!(account_for_posting(state, from), account_for_posting(state, to))?;
    let refusal = require_active(&source).or_else(|| require_active(&target)).or_else(|| {
        if source.withdrawal_suspended {
            Some((Code::WithdrawalSuspended, "withdrawals from the source account are suspended".into()))
        } else if target.deposit_suspended {
            Some((Code::DepositSuspended, "deposits to the target account are suspended".into()))
        } else {
            None
        }
    });
    let today = state.clock.today().await?;
    retrying(state, || async {
        let mut tx = state.pool.begin().await?;
        store::set_lock_timeout(&mut tx, state.lock_timeout.as_millis()).await?;
        let (first, second) = if from < to { (from, to) } else { (to, from) };
        let a = store::lock_account(&mut tx, first).await?.ok_or(LedgerError::AccountNotFound(first))?;
        let b = store::lock_account(&mut tx, second).await?.ok_or(LedgerError::AccountNotFound(second))?;
        let (src, dst) = if from < to { (a, b) } else { (b, a) };
        if let Some(stored) = store::find_idempotent(&mut tx, from, idem.key).await? {
            return replay(stored, idem.request_hash);
        }
        refused(&refusal)?;
        if src.balance < amount.won() {
            return Err(LedgerError::Refused(
                Code::InsufficientFunds,
                format!("balance {} is less than {}", src.balance, amount.won()),
            ));
        }
        let from_after = src.balance - amount.won();
        let to_after = dst
            .balance
            .checked_add(amount.won())
            .ok_or_else(|| LedgerError::Refused(Code::AmountTooLarge, "the balance would overflow".into()))?;
        let entry_id = Uuid::new_v4();
        // Dated today: no estimate can see it yet, so no history revision.
        store::set_balance(&mut tx, from, from_after, None, false).await?;
        store::set_balance(&mut tx, to, to_after, None, false).await?;
        let lines = [Line::debit_customer(from, amount.won()), Line::credit_customer(to, amount.won())];
        let entry = Entry::new(EntryKind::Transfer, lines)?;
        let header = EntryHeader {
            entry_id,
            account_id: from,
            business_date: today,
            value_date: today,
            balance_after: from_after,
            payout: None,
        };
        store::insert_entry(&mut tx, &header, &entry).await?;
        store::apply_to_daily_balances(&mut tx, from, today, -amount.won()).await?;
        store::apply_to_daily_balances(&mut tx, to, today, amount.won()).await?;
        let posting = TransferPosting {
            entry_id,
            from_account_id: from,
            to_account_id: to,
            amount: amount.won(),
            value_date: today,
            from_balance_after: from_after,
            to_balance_after: to_after,
        };
        let body = serde_json::to_value(&posting).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        store::save_idempotent(&mut tx, from, idem.key, "transfer", idem.request_hash, 201, &body).await?;
        tx.commit().await?;
        Ok(Response { status: 201, body })
    })
    .await
}

/// Books an interest payout: the payout's one durable commit. At most one per account per business
/// date (today's), only for the period right after the last one, and only if nothing the quote was
/// computed from has changed since (`QUOTE_STALE` otherwise, nothing written); the same
/// idempotency key again returns the booked posting.
pub async fn book_interest(state: &AppState, req: &InterestPostingRequest) -> Result<InterestPosting, LedgerError> {
    // Gross = net + taxes holds by construction of the amounts; a payout pays something.
    if req.amounts.gross() < 1 || req.period_to < req.period_from {
        return Err(LedgerError::Refused(Code::UnbalancedPayout, "a payout's gross must be at least 1".into()));
    }
    let today = state.clock.today().await?;
    if req.business_date > today || req.period_to >= req.business_date {
        return Err(LedgerError::Refused(
            Code::BadPayoutDates,
            "the period must end before the business date, which is not after today".into(),
        ));
    }
    let id = req.account_id;
    // The booking transaction as a database client span (OpenTelemetry database conventions).
    let span = tracing::info_span!(
        "db.transaction",
        "otel.name" = "book_interest accounting",
        "otel.kind" = "client",
        "db.system" = "postgresql",
        "db.namespace" = "accounting",
        "db.operation.name" = "book_interest",
        payout_id = %req.payout_id,
    );
    retrying(state, || async {
        let mut tx = state.pool.begin().await?;
        store::set_lock_timeout(&mut tx, state.lock_timeout.as_millis()).await?;
        let acct = store::lock_account(&mut tx, id).await?.ok_or(LedgerError::AccountNotFound(id))?;
        if let Some(existing) = store::interest_posting_on(&mut tx, id, req.business_date).await? {
            // A retry of the same request (after a timeout or crash) gets the booked posting, whose
            // amounts the caller adopts; any other payout that day is refused.
            if existing.request.idempotency_key == req.idempotency_key {
                return Ok(existing);
            }
            return Err(LedgerError::Refused(
                Code::AlreadyPaidToday,
                format!("payout {} was booked on {}", existing.request.payout_id, req.business_date),
            ));
        }
        if req.business_date != today {
            return Err(stale(format!("quoted for business date {}, today is {today}", req.business_date)));
        }
        let expected_from = acct.paid_through.map_or(acct.opened_on, domain::next_day);
        if req.period_from != expected_from {
            return Err(LedgerError::Refused(
                Code::PayoutPeriodMismatch,
                format!("the next payout must start on {expected_from}, not {}", req.period_from),
            ));
        }
        verify_basis(&mut tx, req, acct.history_rev).await?;
        let (net, taxes) = (req.amounts.net(), req.amounts.taxes());
        let balance_after = acct.balance + net;
        let entry_id = Uuid::new_v4();
        // SPEC §6: Dr interest expense gross; Cr the customer net; Cr each tax payable.
        let entry = Entry::new(
            EntryKind::InterestPayout,
            [
                Line::debit(LedgerAccount::InterestExpense, req.amounts.gross()),
                Line::credit_customer(id, net),
                Line::credit(LedgerAccount::IncomeTaxPayable, taxes.income_tax),
                Line::credit(LedgerAccount::LocalTaxPayable, taxes.local_tax),
                Line::credit(LedgerAccount::RuralSpecialTaxPayable, taxes.rural_special_tax),
            ],
        )?;
        let history_rev = store::set_balance(&mut tx, id, balance_after, Some(req.period_to), true).await?;
        let header = EntryHeader {
            entry_id,
            account_id: id,
            business_date: req.business_date,
            value_date: req.business_date,
            balance_after,
            payout: Some(req),
        };
        // Checked above under the row lock; the unique index is the final guard of the rule.
        let (seq, posted_at) = store::insert_entry(&mut tx, &header, &entry)
            .await
            .guarded_by("journal_entries_one_payout_a_day", || {
                LedgerError::Refused(Code::AlreadyPaidToday, format!("{id} was already paid on {}", req.business_date))
            })?;
        store::apply_to_daily_balances(&mut tx, id, req.business_date, net).await?;
        tx.commit().await?;
        state.revisions.publish(contracts::revision::ledger(id), history_rev).await;
        Ok(InterestPosting { request: req.clone(), entry_id, balance_after, posted_at, seq })
    })
    .instrument(span)
    .await
}

fn stale(detail: String) -> LedgerError {
    LedgerError::Refused(Code::QuoteStale, format!("the payout's inputs changed since it was quoted: {detail}"))
}

/// A fingerprint of a period's end-of-day balance points: what a quote read, compared with what
/// the ledger holds when the payout is booked.
pub fn balances_digest(points: &[BalancePoint]) -> String {
    let text: String = points.iter().map(|p| format!("{}={};", p.date, p.balance)).collect();
    platform::extract::hash(text.as_bytes())
}

/// Under the balance-row lock: the period's balances are still those the quote saw (history
/// revision, then the points themselves — a posting dated "today" as the clock turned does not
/// bump the revision), and no owner fenced the account, customer or rates since the quote.
async fn verify_basis(
    tx: &mut sqlx::PgConnection,
    req: &InterestPostingRequest,
    history_rev: i64,
) -> Result<(), LedgerError> {
    let basis = &req.basis;
    if basis.history_rev != history_rev {
        return Err(stale(format!("ledger history revision {history_rev}, quoted at {}", basis.history_rev)));
    }
    let points = store::balance_points(tx, req.account_id, req.period_from, req.period_to).await?;
    if balances_digest(&points) != basis.balances_digest {
        return Err(stale(format!("end-of-day balances of {}..{} changed", req.period_from, req.period_to)));
    }
    let fenced = basis.fenced(req.account_id, req.customer_id, &req.product_code);
    let subjects: Vec<String> = fenced.iter().map(|(s, _)| s.clone()).collect();
    for (subject, rev) in store::hold_fences(tx, &subjects).await? {
        let quoted = fenced.iter().find(|(s, _)| *s == subject).map_or(0, |(_, r)| *r);
        if rev > quoted {
            return Err(stale(format!("{subject} is at revision {rev}, quoted at {quoted}")));
        }
    }
    Ok(())
}

/// Raises an owner's fence (see `contracts::PayoutFence`): waits for the bookings in flight on the
/// subject, refuses a rate schedule that starts inside a booked period, and from its commit on
/// refuses bookings quoted at an older revision.
pub async fn raise_fence(state: &AppState, fence: &PayoutFence) -> Result<PayoutFence, LedgerError> {
    if fence.subject.is_empty() || fence.subject.len() > 200 || fence.rev < 0 {
        let detail = "subject must be 1 to 200 characters and rev not negative";
        return Err(LedgerError::Invalid("subject", detail.into()));
    }
    let mut tx = state.pool.begin().await?;
    // Bookings hold the subject for one short transaction each; give up well before the owner's
    // HTTP timeout (3 s by default) so the owner learns the fence was not raised.
    store::set_lock_timeout(&mut tx, 2000).await?;
    store::lock_fence(&mut tx, &fence.subject).await?;
    if let (Some(product), Some(from)) = (contracts::fence::rates_product(&fence.subject), fence.effective_from) {
        if let Some(paid) = store::product_paid_through(&mut tx, product).await?.filter(|p| from <= *p) {
            return Err(LedgerError::Refused(
                Code::RateScheduleAffectsPaidPeriod,
                format!("interest of {product} is already paid through {paid}; a new schedule must start after it"),
            ));
        }
    }
    let rev = store::raise_fence(&mut tx, &fence.subject, fence.rev).await?;
    tx.commit().await?;
    Ok(PayoutFence { rev, ..fence.clone() })
}

/// Fences raised lately, for an owner catching its revisions up with them (a crash between raising
/// a fence and committing leaves the fence ahead).
pub async fn recent_fences(state: &AppState, prefix: &str, within_secs: i64) -> Result<Vec<PayoutFence>, LedgerError> {
    if !(1..=31 * 86_400).contains(&within_secs) {
        return Err(LedgerError::Invalid("within_secs", "within_secs must be 1 to 2678400".into()));
    }
    let fences = store::recent_fences(&state.pool, prefix, within_secs, 100_000).await?;
    Ok(fences.into_iter().map(|(subject, rev)| PayoutFence { subject, rev, effective_from: None }).collect())
}

/// Booked payouts in booking order after `after_seq`, for the interest service's recovery.
pub async fn interest_feed(state: &AppState, after_seq: i64, limit: i64) -> Result<InterestPostingFeed, LedgerError> {
    let limit = limit.clamp(1, 5000);
    Ok(InterestPostingFeed { postings: store::interest_feed(&state.pool, after_seq, limit).await? })
}

/// End-of-day balances for `[from, to]` and the last booked payout (with `paid_before`, the last
/// with an earlier business date), read in one snapshot.
pub async fn daily_balances(
    state: &AppState,
    id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
    paid_before: Option<NaiveDate>,
) -> Result<DailyBalances, LedgerError> {
    if to < from {
        return Err(LedgerError::Invalid("to", "to must not be before from".into()));
    }
    let mut conn = state.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY").execute(&mut *tx).await?;
    let history_rev = store::find_account(&mut *tx, id).await?.map_or(0, |a| a.history_rev);
    let points = store::balance_points(&mut tx, id, from, to).await?;
    let last = store::last_interest_posting(&mut tx, id, paid_before).await?;
    tx.commit().await?;
    let digest = balances_digest(&points);
    Ok(DailyBalances { account_id: id, from, to, points, last_interest_posting: last, history_rev, digest })
}
