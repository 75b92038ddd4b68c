//! The rules of a booking, table-driven, no I/O: every refusal `check_request` and `decide` give,
//! every input of the quote basis that can be stale, and what books.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use chrono::{NaiveDate, Utc};
use contracts::problem::Code;
use contracts::{BalancePoint, InterestPosting, InterestPostingRequest, QuoteBasis};
use domain::{TaxBreakdown, TaxCategory, Withheld};
use uuid::Uuid;

use super::{balances_digest, check_request, decide, Decision};
use crate::error::LedgerError;
use crate::store::LedgerAccount;

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

const TODAY: &str = "2024-02-01";

fn points() -> Vec<BalancePoint> {
    vec![
        BalancePoint { date: d("2024-01-01"), balance: 1_000_000 },
        BalancePoint { date: d("2024-01-15"), balance: 2_000_000 },
    ]
}

/// A payout of January quoted on `points()`, at revision 4 of the account, 5 of the customer, 6
/// of the rates and 7 of the tax rules.
fn request() -> InterestPostingRequest {
    InterestPostingRequest {
        payout_id: Uuid::new_v4(),
        account_id: Uuid::new_v4(),
        customer_id: Uuid::new_v4(),
        product_code: "SAVE".into(),
        business_date: d(TODAY),
        period_from: d("2024-01-01"),
        period_to: d("2024-01-31"),
        amounts: Withheld::new(1000, TaxBreakdown { income_tax: 140, local_tax: 10, rural_special_tax: 0 }).unwrap(),
        carry_in_units: 0,
        carry_out_units: 0,
        tax_category: TaxCategory::General,
        idempotency_key: "k".into(),
        request_hash: "h".into(),
        basis: QuoteBasis {
            history_rev: 3,
            balances_digest: balances_digest(&points()),
            account_rev: 4,
            customer_rev: 5,
            rates_rev: 6,
            tax_rules_rev: Some(7),
        },
    }
}

fn row() -> LedgerAccount {
    LedgerAccount { balance: 2_000_000, opened_on: d("2024-01-01"), paid_through: None, history_rev: 3 }
}

fn posting(req: &InterestPostingRequest) -> InterestPosting {
    InterestPosting { request: req.clone(), entry_id: Uuid::new_v4(), balance_after: 0, posted_at: Utc::now(), seq: 1 }
}

/// What `decide` answers: `Ok("book")`, `Ok("replay")`, or the refusal's code.
fn outcome(r: Result<Decision<'_>, LedgerError>) -> Result<&'static str, Code> {
    match r {
        Ok(Decision::Book) => Ok("book"),
        Ok(Decision::Replay(_)) => Ok("replay"),
        Err(LedgerError::Refused(code, _)) => Err(code),
        Err(other) => panic!("not a refusal: {other}"),
    }
}

/// The fences as the ledger holds them: each subject of the request at `rev`.
fn fences(req: &InterestPostingRequest, rev: impl Fn(&str) -> i64) -> HashMap<String, i64> {
    req.fenced().into_iter().map(|(s, _)| (s.clone(), rev(&s))).collect()
}

#[test]
fn a_request_pays_something_for_a_period_before_a_business_date_not_after_today() {
    let today = d(TODAY);
    assert!(check_request(&request(), today).is_ok());
    let code = |r: &InterestPostingRequest| match check_request(r, today) {
        Err(LedgerError::Refused(code, _)) => Some(code),
        _ => None,
    };
    let mut nothing = request();
    nothing.amounts = Withheld::new(0, TaxBreakdown::default()).unwrap();
    assert_eq!(code(&nothing), Some(Code::UnbalancedPayout));
    let mut backwards = request();
    (backwards.period_from, backwards.period_to) = (d("2024-01-31"), d("2024-01-01"));
    assert_eq!(code(&backwards), Some(Code::UnbalancedPayout));
    let mut tomorrow = request();
    tomorrow.business_date = d("2024-02-02");
    assert_eq!(code(&tomorrow), Some(Code::BadPayoutDates));
    let mut through_today = request();
    through_today.period_to = d(TODAY);
    assert_eq!(code(&through_today), Some(Code::BadPayoutDates));
}

#[test]
fn every_rule_and_every_input_of_the_basis_decides_alone() {
    let today = d(TODAY);
    let base = request();
    let same_fences = fences(&base, |s| base.fenced().into_iter().find(|(f, _)| f == s).unwrap().1);
    type Case = (
        &'static str,
        fn(&mut InterestPostingRequest, &mut LedgerAccount, &mut Vec<BalancePoint>),
        Result<&'static str, Code>,
    );
    let cases: Vec<Case> = vec![
        ("as quoted", |_, _, _| {}, Ok("book")),
        ("booked on another business date", |r, _, _| r.business_date = d("2024-01-31"), Err(Code::QuoteStale)),
        (
            "the first period does not start at the opening",
            |_, a, _| a.opened_on = d("2023-12-01"),
            Err(Code::PayoutPeriodMismatch),
        ),
        ("a period already paid", |_, a, _| a.paid_through = Some(d("2024-01-10")), Err(Code::PayoutPeriodMismatch)),
        ("the history revision moved", |_, a, _| a.history_rev = 4, Err(Code::QuoteStale)),
        (
            "a balance point changed (no revision: dated today as the clock turned)",
            |_, _, p| p[1].balance += 1,
            Err(Code::QuoteStale),
        ),
        (
            "a balance point appeared",
            |_, _, p| p.push(BalancePoint { date: d("2024-01-20"), balance: 5 }),
            Err(Code::QuoteStale),
        ),
    ];
    for (name, change, want) in cases {
        let (mut req, mut acct, mut pts) = (base.clone(), row(), points());
        change(&mut req, &mut acct, &mut pts);
        let fences = fences(&req, |s| same_fences.get(s).copied().unwrap_or(0));
        assert_eq!(outcome(decide(&req, &acct, None, &pts, &fences, today)), want, "{name}");
    }
    // Each fence above the revision the quote saw makes it stale; at or below, it books.
    for (subject, _) in base.fenced() {
        for (delta, want) in [(1, Err(Code::QuoteStale)), (0, Ok("book")), (-1, Ok("book"))] {
            let moved = fences(&base, |s| same_fences[s] + if s == subject { delta } else { 0 });
            let got = outcome(decide(&base, &row(), None, &points(), &moved, today));
            assert_eq!(got, want, "{subject} fence at quoted {delta:+}");
        }
    }
    assert_eq!(base.fenced().len(), 4, "account, customer, rates, tax rules of its category");
    // A payout whose taxes are not the bank's (the legacy core's) is not fenced on the tax rules.
    let mut legacy = base.clone();
    legacy.basis.tax_rules_rev = None;
    assert_eq!(legacy.fenced().len(), 3);
    let tax_moved = fences(&base, |s| same_fences[s] + i64::from(s.starts_with("tax:")) * 100);
    assert_eq!(outcome(decide(&legacy, &row(), None, &points(), &tax_moved, today)), Ok("book"));
}

#[test]
fn a_payout_already_booked_is_replayed_under_its_key_and_refuses_any_other() {
    let today = d(TODAY);
    let req = request();
    let fences = fences(&req, |s| req.fenced().into_iter().find(|(f, _)| f == s).unwrap().1);
    let same_key = posting(&req);
    assert_eq!(outcome(decide(&req, &row(), Some(&same_key), &points(), &fences, today)), Ok("replay"));
    // Booked yesterday under this key: the same key is the same payout, whatever day (and whatever
    // changed since: nothing is checked but the key).
    let mut yesterday = req.clone();
    yesterday.business_date = d("2024-01-31");
    let mut stale_row = row();
    stale_row.history_rev = 99;
    let earlier = posting(&yesterday);
    assert_eq!(outcome(decide(&req, &stale_row, Some(&earlier), &[], &HashMap::new(), today)), Ok("replay"));
    let mut other = req.clone();
    other.idempotency_key = "another".into();
    let other_key = posting(&other);
    assert_eq!(outcome(decide(&req, &row(), Some(&other_key), &points(), &fences, today)), Err(Code::AlreadyPaidToday));
}
