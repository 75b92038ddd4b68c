//! Ledger use cases. Each owns its transaction: lock only the balance row(s) it changes (with a
//! short lock timeout), write one balanced entry, and retry a busy row with backoff and jitter
//! inside a bounded budget.

use contracts::problem::Code;
use std::future::Future;
use std::time::Duration;

use chrono::NaiveDate;
use contracts::{Account, InterestPostingFeed, PayoutFence, Posting, TransferPosting};
use domain::{AccountStatus, Amount};
use peers::directory::LookupError;
use rand::Rng;
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
pub(crate) async fn retrying<T, F, Fut>(state: &AppState, mut attempt: F) -> Result<T, LedgerError>
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
