//! Money movements — deposits, withdrawals, transfers — decided under the balance-row lock on the
//! state that governs them when they commit (SPEC §7; docs/payout-design.md, "Which state governs
//! a movement"). The account's status and holds and its customer's status are read from their
//! owners (cached, revision-checked) before the transaction and verified under the lock against
//! the owners' fences, as a payout's quote is: a change an owner has answered raised its fence
//! before it committed, so a movement decided on the older state is decided again on the new one.
//! The business date is read under the lock. A key keeps its first answer, refusals included.

use std::collections::HashMap;

use chrono::NaiveDate;
use contracts::problem::Code;
use contracts::{Account, Customer, Posting, TransferPosting};
use domain::{AccountStatus, Amount, CustomerStatus};
use peers::directory::LookupError;
use serde::Serialize;
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::LedgerError;
use crate::journal::{Entry, EntryHeader, EntryKind, LedgerAccount, Line};
use crate::ledger::retrying;
use crate::state::AppState;
use crate::store;

/// A movement as the ledger understands it. Its canonical form — this, serialized — is what an
/// `Idempotency-Key` is bound to: the operation and the parsed request, not the bytes sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "operation", rename_all = "snake_case")]
pub enum Movement {
    Deposit { account_id: Uuid, amount: i64, value_date: Option<NaiveDate> },
    Withdrawal { account_id: Uuid, amount: i64, value_date: Option<NaiveDate> },
    Transfer { from_account_id: Uuid, to_account_id: Uuid, amount: i64 },
}

impl Movement {
    pub fn deposit(account_id: Uuid, amount: Amount, value_date: Option<NaiveDate>) -> Self {
        Self::Deposit { account_id, amount: amount.won(), value_date }
    }

    pub fn withdrawal(account_id: Uuid, amount: Amount, value_date: Option<NaiveDate>) -> Self {
        Self::Withdrawal { account_id, amount: amount.won(), value_date }
    }

    pub fn transfer(from_account_id: Uuid, to_account_id: Uuid, amount: Amount) -> Self {
        Self::Transfer { from_account_id, to_account_id, amount: amount.won() }
    }

    fn operation(&self) -> &'static str {
        match self {
            Self::Deposit { .. } => "deposit",
            Self::Withdrawal { .. } => "withdrawal",
            Self::Transfer { .. } => "transfer",
        }
    }

    /// The account the key is kept under: the one money leaves (or arrives in, for a deposit).
    fn key_account(&self) -> Uuid {
        match self {
            Self::Deposit { account_id, .. } | Self::Withdrawal { account_id, .. } => *account_id,
            Self::Transfer { from_account_id, .. } => *from_account_id,
        }
    }

    /// The accounts it touches, in lock order (id order: two opposite transfers cannot deadlock).
    fn accounts(&self) -> Vec<Uuid> {
        let mut ids = match self {
            Self::Deposit { account_id, .. } | Self::Withdrawal { account_id, .. } => vec![*account_id],
            Self::Transfer { from_account_id, to_account_id, .. } => vec![*from_account_id, *to_account_id],
        };
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The hash of the canonical request a key is bound to.
    pub fn request_hash(&self) -> String {
        platform::extract::hash(&serde_json::to_vec(self).unwrap_or_default())
    }
}

/// An answer kept under a key: the posting (201), or a business refusal (its status, and
/// `{"code", "detail"}`).
pub struct Response {
    pub status: u16,
    pub body: serde_json::Value,
}

/// What governs one account's side of a movement: the owners' state as read, and the balance row
/// as locked.
pub struct Governing<'a> {
    pub account: &'a Account,
    pub customer: &'a Customer,
    pub row: &'a store::LedgerAccount,
}

/// Money leaving an account (`Out`) or arriving in it (`In`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Leg {
    Out,
    In,
}

/// The refusal the owners' state gives one leg (SPEC §5, §7): a restricted customer moves no
/// money out (money in is still taken); an account that is not active moves none; the holds stop
/// their direction.
pub fn leg_refusal(leg: Leg, account: &Account, customer: &Customer) -> Option<(Code, String)> {
    let id = account.account_id;
    if leg == Leg::Out && customer.status != CustomerStatus::Active {
        let detail = format!(
            "customer {} is {}: no money leaves their accounts",
            customer.customer_id,
            customer.status.as_str()
        );
        return Some((Code::CustomerRestricted, detail));
    }
    if account.status != AccountStatus::Active {
        return Some((Code::AccountNotActive, format!("account {id} is {}", account.status.as_str())));
    }
    match leg {
        Leg::In if account.deposit_suspended => {
            Some((Code::DepositSuspended, format!("deposits to {id} are suspended")))
        }
        Leg::Out if account.withdrawal_suspended => {
            Some((Code::WithdrawalSuspended, format!("withdrawals from {id} are suspended")))
        }
        _ => None,
    }
}

/// A value date must be on or before today, not before the account opened, and after its last
/// paid interest period (SPEC §8).
pub fn check_value_date(
    row: &store::LedgerAccount,
    value_date: NaiveDate,
    today: NaiveDate,
) -> Result<(), LedgerError> {
    if value_date > today {
        return Err(LedgerError::Refused(
            Code::ValueDateInFuture,
            format!("value_date {value_date} is after today {today}"),
        ));
    }
    if value_date < row.opened_on {
        let detail = format!("value_date {value_date} is before the account opened on {}", row.opened_on);
        return Err(LedgerError::Refused(Code::ValueDateBeforeOpening, detail));
    }
    if let Some(paid) = row.paid_through.filter(|p| value_date <= *p) {
        let detail = format!("interest is already paid through {paid}; value_date must be later");
        return Err(LedgerError::Refused(Code::ValueDateInPaidPeriod, detail));
    }
    Ok(())
}

/// What a movement books once decided: its value date and each account's change and new balance.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub value_date: NaiveDate,
    /// `(account, delta, balance after)`, the paying account first.
    pub legs: Vec<(Uuid, i64, i64)>,
}

/// The most a balance may hold.
const MAX_BALANCE: i64 = domain::MAX_AMOUNT * 1000;

fn credit(row: &store::LedgerAccount, amount: i64) -> Result<i64, LedgerError> {
    row.balance
        .checked_add(amount)
        .filter(|b| *b <= MAX_BALANCE)
        .ok_or_else(|| LedgerError::Refused(Code::AmountTooLarge, "the balance would overflow".into()))
}

fn debit(row: &store::LedgerAccount, amount: i64) -> Result<i64, LedgerError> {
    if row.balance < amount {
        let detail = format!("balance {} is less than {amount}", row.balance);
        return Err(LedgerError::Refused(Code::InsufficientFunds, detail));
    }
    Ok(row.balance - amount)
}

fn refused(refusal: Option<(Code, String)>) -> Result<(), LedgerError> {
    refusal.map_or(Ok(()), |(code, detail)| Err(LedgerError::Refused(code, detail)))
}

/// The rules of a movement on the state that governs it — the one home of them, no I/O. Refusals
/// come in a fixed order: the owners' state, then the value date, then the amounts.
pub fn decide<'a>(
    m: &Movement,
    side: impl Fn(Uuid) -> Option<Governing<'a>>,
    today: NaiveDate,
) -> Result<Plan, LedgerError> {
    let get = |id: Uuid| side(id).ok_or(LedgerError::AccountNotFound(id));
    match *m {
        Movement::Deposit { account_id, amount, value_date } => {
            let g = get(account_id)?;
            refused(leg_refusal(Leg::In, g.account, g.customer))?;
            let value_date = value_date.unwrap_or(today);
            check_value_date(g.row, value_date, today)?;
            Ok(Plan { value_date, legs: vec![(account_id, amount, credit(g.row, amount)?)] })
        }
        Movement::Withdrawal { account_id, amount, value_date } => {
            let g = get(account_id)?;
            refused(leg_refusal(Leg::Out, g.account, g.customer))?;
            let value_date = value_date.unwrap_or(today);
            check_value_date(g.row, value_date, today)?;
            Ok(Plan { value_date, legs: vec![(account_id, -amount, debit(g.row, amount)?)] })
        }
        Movement::Transfer { from_account_id, to_account_id, amount } => {
            let (from, to) = (get(from_account_id)?, get(to_account_id)?);
            refused(leg_refusal(Leg::Out, from.account, from.customer))?;
            refused(leg_refusal(Leg::In, to.account, to.customer))?;
            // Dated today on both sides, so today must be after both accounts' paid periods.
            check_value_date(from.row, today, today)?;
            check_value_date(to.row, today, today)?;
            let legs = vec![
                (from_account_id, -amount, debit(from.row, amount)?),
                (to_account_id, amount, credit(to.row, amount)?),
            ];
            Ok(Plan { value_date: today, legs })
        }
    }
}

/// An account and its customer as their owners last answered (through the directory).
struct Party {
    account: Account,
    customer: Customer,
}

async fn parties(state: &AppState, ids: &[Uuid]) -> Result<HashMap<Uuid, Party>, LedgerError> {
    let mut out = HashMap::with_capacity(ids.len());
    for id in ids {
        let lookup = match state.directory.lookup(*id, |_| Vec::new()).await {
            Ok(l) => l,
            Err(LookupError::Dependency(e)) => return Err(e.into()),
            Err(LookupError::AccountNotFound(_)) => return Err(LedgerError::AccountNotFound(*id)),
            Err(LookupError::CustomerNotFound(c)) => {
                return Err(LedgerError::Inconsistent(format!("account {id} names customer {c}, who does not exist")))
            }
        };
        let customer = lookup.customer.ok_or_else(|| LedgerError::Inconsistent("no customer client".into()))?;
        out.insert(*id, Party { account: lookup.account, customer });
    }
    Ok(out)
}

/// Locks the account's balance row, opening it in the ledger if it never had a posting.
async fn lock_or_open(tx: &mut PgConnection, account: &Account) -> Result<store::LedgerAccount, LedgerError> {
    let id = account.account_id;
    if let Some(row) = store::lock_account(tx, id).await? {
        return Ok(row);
    }
    store::create_account(&mut *tx, id, account.opened_on).await?;
    store::lock_account(tx, id).await?.ok_or(LedgerError::AccountNotFound(id))
}

/// The first answer kept under this key, if the request is the same one (else 422).
fn replay(stored: store::StoredResponse, operation: &str, request_hash: &str) -> Result<Response, LedgerError> {
    if stored.operation != operation || stored.request_hash != request_hash {
        return Err(LedgerError::KeyReused);
    }
    if stored.status >= 400 {
        let text = |k: &str| stored.response.get(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let code = Code::parse(&text("code"))
            .ok_or_else(|| LedgerError::Inconsistent(format!("kept refusal with unknown code {}", text("code"))))?;
        return Err(LedgerError::Refused(code, text("detail")));
    }
    Ok(Response { status: stored.status as u16, body: stored.response })
}

/// Books a movement (or answers the first answer kept under its key).
pub async fn book(state: &AppState, m: &Movement, key: &str) -> Result<Response, LedgerError> {
    if let Movement::Transfer { from_account_id, to_account_id, .. } = m {
        if from_account_id == to_account_id {
            let detail = "from_account_id and to_account_id must differ";
            return Err(LedgerError::Refused(Code::SameAccount, detail.into()));
        }
    }
    let hash = m.request_hash();
    retrying(state, || attempt(state, m, key, &hash))
        .instrument(tracing::info_span!("movement", operation = m.operation()))
        .await
}

async fn attempt(state: &AppState, m: &Movement, key: &str, hash: &str) -> Result<Response, LedgerError> {
    let ids = m.accounts();
    let parties = parties(state, &ids).await?;
    let mut tx = store::begin_waiting_at_most(&state.pool, state.lock_timeout.as_millis()).await?;
    let mut rows = HashMap::with_capacity(ids.len());
    for id in &ids {
        let account = &parties.get(id).ok_or(LedgerError::AccountNotFound(*id))?.account;
        rows.insert(*id, lock_or_open(&mut tx, account).await?);
    }
    if let Some(stored) = store::find_idempotent(&mut tx, m.key_account(), key).await? {
        return replay(stored, m.operation(), hash);
    }
    let today = state.clock.today().await?;
    verify_owners(state, &mut tx, &parties).await?;
    let side = |id: Uuid| {
        let (p, row) = (parties.get(&id)?, rows.get(&id)?);
        Some(Governing { account: &p.account, customer: &p.customer, row })
    };
    match decide(m, side, today) {
        Err(LedgerError::Refused(code, detail)) => {
            // A business refusal is this key's answer from now on (one key, one answer).
            let body = serde_json::json!({ "code": code.as_str(), "detail": detail });
            store::save_idempotent(&mut tx, m.key_account(), key, m.operation(), hash, code.status() as i16, &body)
                .await?;
            tx.commit().await?;
            Err(LedgerError::Refused(code, detail))
        }
        Err(other) => Err(other),
        Ok(plan) => write(state, tx, m, key, hash, plan, today).await,
    }
}

/// Verifies, under the balance-row locks, that no owner changed what was read since: takes the
/// fences of the accounts and customers shared (an owner raising one waits for this movement,
/// and this movement for a raise in progress) and refuses, as stale, any fence above the revision
/// read. The movement is then decided again on a fresh read (`retrying`).
async fn verify_owners(
    state: &AppState,
    tx: &mut PgConnection,
    parties: &HashMap<Uuid, Party>,
) -> Result<(), LedgerError> {
    let mut read: Vec<(String, i64)> = parties
        .values()
        .flat_map(|p| {
            [
                (contracts::fence::account(p.account.account_id), p.account.rev),
                (contracts::fence::customer(p.customer.customer_id), p.customer.rev),
            ]
        })
        .collect();
    read.sort_unstable();
    read.dedup();
    let subjects: Vec<String> = read.iter().map(|(s, _)| s.clone()).collect();
    let fences: HashMap<String, i64> = store::hold_fences(tx, &subjects).await?.into_iter().collect();
    if let Some((subject, rev)) = read.iter().find(|(s, rev)| fences.get(s).is_some_and(|f| f > rev)) {
        for p in parties.values() {
            state.directory.forget(p.account.account_id, p.customer.customer_id).await;
        }
        let fence = fences.get(subject).copied().unwrap_or_default();
        return Err(LedgerError::Stale(format!("{subject} changed to revision {fence} since it was read at {rev}")));
    }
    Ok(())
}

/// Writes a decided movement: balances, one balanced entry, daily balances, the key's answer.
async fn write(
    state: &AppState,
    mut tx: sqlx::Transaction<'static, sqlx::Postgres>,
    m: &Movement,
    key: &str,
    hash: &str,
    plan: Plan,
    today: NaiveDate,
) -> Result<Response, LedgerError> {
    let entry_id = Uuid::new_v4();
    let back_dated = plan.value_date < today;
    let mut revised = Vec::new();
    for (id, _, balance_after) in &plan.legs {
        // Only a posting dated before today changes what an estimate (which ends yesterday) sees.
        let rev = store::set_balance(&mut tx, *id, *balance_after, None, back_dated).await?;
        if back_dated {
            revised.push((contracts::revision::ledger(*id), rev));
        }
    }
    for (id, delta, _) in &plan.legs {
        store::apply_to_daily_balances(&mut tx, *id, plan.value_date, *delta).await?;
    }
    let (kind, lines, body) = match *m {
        Movement::Deposit { account_id, amount, .. } | Movement::Withdrawal { account_id, amount, .. } => {
            let deposit = matches!(m, Movement::Deposit { .. });
            let (kind, lines) = if deposit {
                (
                    EntryKind::Deposit,
                    [Line::debit(LedgerAccount::Cash, amount), Line::credit_customer(account_id, amount)],
                )
            } else {
                (
                    EntryKind::Withdrawal,
                    [Line::credit(LedgerAccount::Cash, amount), Line::debit_customer(account_id, amount)],
                )
            };
            let posting = Posting {
                entry_id,
                account_id,
                kind: kind.code().into(),
                amount,
                value_date: plan.value_date,
                balance_after: plan.legs[0].2,
            };
            (kind, lines, serde_json::to_value(&posting))
        }
        Movement::Transfer { from_account_id, to_account_id, amount } => {
            let lines = [Line::debit_customer(from_account_id, amount), Line::credit_customer(to_account_id, amount)];
            let posting = TransferPosting {
                entry_id,
                from_account_id,
                to_account_id,
                amount,
                value_date: plan.value_date,
                from_balance_after: plan.legs[0].2,
                to_balance_after: plan.legs[1].2,
            };
            (EntryKind::Transfer, lines, serde_json::to_value(&posting))
        }
    };
    let body = body.map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let entry = Entry::new(kind, lines)?;
    let header = EntryHeader {
        entry_id,
        account_id: m.key_account(),
        business_date: today,
        value_date: plan.value_date,
        balance_after: plan.legs[0].2,
        payout: None,
    };
    store::insert_entry(&mut tx, &header, &entry).await?;
    store::save_idempotent(&mut tx, m.key_account(), key, m.operation(), hash, 201, &body).await?;
    tx.commit().await?;
    state.revisions.publish_all(revised).await;
    Ok(Response { status: 201, body })
}

#[cfg(test)]
#[path = "movements_tests.rs"]
mod tests;
