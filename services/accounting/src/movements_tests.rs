//! The rules of a movement, table-driven, no I/O: every refusal of each kind of movement, in its
//! order, and what an accepted one books.
#![allow(clippy::unwrap_used)]

use chrono::{NaiveDate, Utc};
use contracts::problem::Code;
use contracts::{Account, Customer};
use domain::{AccountStatus, CustomerStatus, TaxCategory};
use uuid::Uuid;

use super::{decide, Governing, Movement, Plan};
use crate::error::LedgerError;
use crate::store::LedgerAccount;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

const TODAY: &str = "2024-03-10";

/// One account's side: its owners' state and its balance row.
struct Side {
    account: Account,
    customer: Customer,
    row: LedgerAccount,
}

fn side(balance: i64) -> Side {
    let customer = Customer {
        customer_id: Uuid::new_v4(),
        name: "c".into(),
        status: CustomerStatus::Active,
        status_reason: None,
        tax_category: TaxCategory::General,
        created_at: Utc::now(),
        rev: 0,
    };
    let account = Account {
        account_id: Uuid::new_v4(),
        customer_id: customer.customer_id,
        product_code: "SAVE".into(),
        opened_on: d("2024-01-01"),
        status: AccountStatus::Active,
        deposit_suspended: false,
        withdrawal_suspended: false,
        created_at: Utc::now(),
        rev: 0,
    };
    let row =
        LedgerAccount { balance, opened_on: d("2024-01-01"), paid_through: Some(d("2024-02-29")), history_rev: 0 };
    Side { account, customer, row }
}

fn run(m: &Movement, sides: &[&Side]) -> Result<Plan, LedgerError> {
    decide(
        m,
        |id| {
            sides.iter().find(|s| s.account.account_id == id).map(|s| Governing {
                account: &s.account,
                customer: &s.customer,
                row: &s.row,
            })
        },
        d(TODAY),
    )
}

fn code(r: Result<Plan, LedgerError>) -> Option<Code> {
    match r {
        Err(LedgerError::Refused(code, _)) => Some(code),
        Ok(_) => None,
        Err(other) => panic!("not a refusal: {other}"),
    }
}

/// A change to one side's state.
type Change = fn(&mut Side);

fn restricted(s: &mut Side) {
    s.customer.status = CustomerStatus::HackingVictim;
}
fn deceased(s: &mut Side) {
    s.customer.status = CustomerStatus::Deceased;
}
fn dormant(s: &mut Side) {
    s.account.status = AccountStatus::Dormant;
}
fn closed(s: &mut Side) {
    s.account.status = AccountStatus::Closed;
}
fn no_deposits(s: &mut Side) {
    s.account.deposit_suspended = true;
}
fn no_withdrawals(s: &mut Side) {
    s.account.withdrawal_suspended = true;
}
fn unchanged(_: &mut Side) {}

#[test]
fn each_state_refuses_the_directions_it_governs() {
    /// What each movement answers: deposit, withdrawal, transfer out of it, transfer into it.
    type Answers = [Option<Code>; 4];
    const OK: Option<Code> = None;
    const RESTRICTED: Option<Code> = Some(Code::CustomerRestricted);
    const INACTIVE: Option<Code> = Some(Code::AccountNotActive);
    const NO_IN: Option<Code> = Some(Code::DepositSuspended);
    const NO_OUT: Option<Code> = Some(Code::WithdrawalSuspended);
    let table: [(&str, Change, Answers); 7] = [
        ("as opened", unchanged, [OK, OK, OK, OK]),
        ("hacking victim", restricted, [OK, RESTRICTED, RESTRICTED, OK]),
        ("deceased", deceased, [OK, RESTRICTED, RESTRICTED, OK]),
        ("dormant", dormant, [INACTIVE; 4]),
        ("closed", closed, [INACTIVE; 4]),
        ("deposits held", no_deposits, [NO_IN, OK, OK, NO_IN]),
        ("withdrawals held", no_withdrawals, [OK, NO_OUT, NO_OUT, OK]),
    ];
    for (name, change, [deposit, withdrawal, out_of, into]) in table {
        let mut s = side(10_000);
        change(&mut s);
        let other = side(10_000);
        let id = s.account.account_id;
        assert_eq!(
            code(run(&Movement::Deposit { account_id: id, amount: 100, value_date: None }, &[&s])),
            deposit,
            "{name}: deposit"
        );
        assert_eq!(
            code(run(&Movement::Withdrawal { account_id: id, amount: 100, value_date: None }, &[&s])),
            withdrawal,
            "{name}: withdrawal"
        );
        let out = Movement::Transfer { from_account_id: id, to_account_id: other.account.account_id, amount: 100 };
        assert_eq!(code(run(&out, &[&s, &other])), out_of, "{name}: transfer out");
        let inbound = Movement::Transfer { from_account_id: other.account.account_id, to_account_id: id, amount: 100 };
        assert_eq!(code(run(&inbound, &[&s, &other])), into, "{name}: transfer in");
    }
}

#[test]
fn the_owners_state_comes_before_the_dates_and_the_dates_before_the_amounts() {
    let mut s = side(0);
    s.customer.status = CustomerStatus::IdentityTheft;
    s.account.withdrawal_suspended = true;
    let id = s.account.account_id;
    // A restricted customer's held, empty account, withdrawing with a date in the future.
    let m = Movement::Withdrawal { account_id: id, amount: 100, value_date: Some(d("2024-03-11")) };
    assert_eq!(code(run(&m, &[&s])), Some(Code::CustomerRestricted));
    s.customer.status = CustomerStatus::Active;
    assert_eq!(code(run(&m, &[&s])), Some(Code::WithdrawalSuspended));
    s.account.withdrawal_suspended = false;
    assert_eq!(code(run(&m, &[&s])), Some(Code::ValueDateInFuture));
    let today = Movement::Withdrawal { account_id: id, amount: 100, value_date: None };
    assert_eq!(code(run(&today, &[&s])), Some(Code::InsufficientFunds));
}

#[test]
fn value_dates_are_checked_against_today_the_opening_and_the_paid_period() {
    let s = side(1_000);
    let id = s.account.account_id;
    let on = |day: &str| Movement::Deposit { account_id: id, amount: 100, value_date: Some(d(day)) };
    for (day, expected) in [
        ("2024-03-11", Some(Code::ValueDateInFuture)),
        ("2023-12-31", Some(Code::ValueDateBeforeOpening)),
        ("2024-02-29", Some(Code::ValueDateInPaidPeriod)),
        ("2024-01-15", Some(Code::ValueDateInPaidPeriod)),
        ("2024-03-01", None),
        (TODAY, None),
    ] {
        assert_eq!(code(run(&on(day), &[&s])), expected, "value date {day}");
    }
}

#[test]
fn a_transfer_is_dated_today_and_refused_into_or_out_of_a_period_paid_through_today() {
    let (mut a, b) = (side(1_000), side(0));
    let m =
        Movement::Transfer { from_account_id: a.account.account_id, to_account_id: b.account.account_id, amount: 400 };
    let plan = run(&m, &[&a, &b]).unwrap();
    assert_eq!(plan.value_date, d(TODAY));
    assert_eq!(plan.legs, vec![(a.account.account_id, -400, 600), (b.account.account_id, 400, 400)]);
    // A payout of today's business date covers yesterday; one whose date turned under a waiting
    // transfer would cover the transfer's day: refused, never booked into a paid period.
    a.row.paid_through = Some(d(TODAY));
    assert_eq!(code(run(&m, &[&a, &b])), Some(Code::ValueDateInPaidPeriod));
    let (a, mut b) = (side(1_000), side(0));
    b.row.paid_through = Some(d(TODAY));
    let m =
        Movement::Transfer { from_account_id: a.account.account_id, to_account_id: b.account.account_id, amount: 400 };
    assert_eq!(code(run(&m, &[&a, &b])), Some(Code::ValueDateInPaidPeriod));
}

#[test]
fn amounts_refuse_an_overdraft_and_an_overflow_and_book_the_rest_exactly() {
    let s = side(500);
    let id = s.account.account_id;
    let w = |amount| Movement::Withdrawal { account_id: id, amount, value_date: None };
    assert_eq!(run(&w(500), &[&s]).unwrap().legs, vec![(id, -500, 0)], "to exactly zero");
    assert_eq!(code(run(&w(501), &[&s])), Some(Code::InsufficientFunds));
    let full = side(domain::MAX_AMOUNT * 1000);
    let dep = Movement::Deposit { account_id: full.account.account_id, amount: 1, value_date: None };
    assert_eq!(code(run(&dep, &[&full])), Some(Code::AmountTooLarge));
    let back = Movement::Deposit { account_id: id, amount: 7, value_date: Some(d("2024-03-05")) };
    assert_eq!(run(&back, &[&s]).unwrap(), Plan { value_date: d("2024-03-05"), legs: vec![(id, 7, 507)] });
}

#[test]
fn a_key_is_bound_to_the_operation_and_the_parsed_request() {
    let id = Uuid::new_v4();
    let deposit = Movement::Deposit { account_id: id, amount: 1000, value_date: None };
    let withdrawal = Movement::Withdrawal { account_id: id, amount: 1000, value_date: None };
    assert_ne!(deposit.request_hash(), withdrawal.request_hash(), "same body, another operation");
    assert_eq!(deposit.request_hash(), deposit.clone().request_hash());
    let dated = Movement::Deposit { account_id: id, amount: 1000, value_date: Some(d(TODAY)) };
    assert_ne!(deposit.request_hash(), dated.request_hash());
    let other = Movement::Deposit { account_id: Uuid::new_v4(), amount: 1000, value_date: None };
    assert_ne!(deposit.request_hash(), other.request_hash(), "another account");
}
