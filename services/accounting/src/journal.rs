//! The journal's shapes: ledger accounts, entry kinds, and a balanced entry — an [`Entry`] exists
//! only if its debits equal its credits, and only the customer-deposits account names a
//! customer's account (the same rules the `journal_lines` checks enforce, found here first).

use chrono::NaiveDate;
use contracts::InterestPostingRequest;
use uuid::Uuid;

/// The ledger's own accounts (`journal_lines.ledger_account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerAccount {
    /// Customers' deposit balances, one sub-account per customer account.
    CustomerDeposits,
    Cash,
    InterestExpense,
    IncomeTaxPayable,
    LocalTaxPayable,
    RuralSpecialTaxPayable,
}

impl LedgerAccount {
    pub fn code(self) -> &'static str {
        match self {
            Self::CustomerDeposits => "CUSTOMER_DEPOSITS",
            Self::Cash => "CASH",
            Self::InterestExpense => "INTEREST_EXPENSE",
            Self::IncomeTaxPayable => "INCOME_TAX_PAYABLE",
            Self::LocalTaxPayable => "LOCAL_TAX_PAYABLE",
            Self::RuralSpecialTaxPayable => "RURAL_SPECIAL_TAX_PAYABLE",
        }
    }
}

/// What an entry records (`journal_entries.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Deposit,
    Withdrawal,
    Transfer,
    InterestPayout,
}

impl EntryKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Deposit => "DEPOSIT",
            Self::Withdrawal => "WITHDRAWAL",
            Self::Transfer => "TRANSFER",
            Self::InterestPayout => "INTEREST_PAYOUT",
        }
    }
}

/// One side of one ledger account in an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    pub account: LedgerAccount,
    /// The customer account, for [`LedgerAccount::CustomerDeposits`] only.
    pub customer_account: Option<Uuid>,
    pub debit: i64,
    pub credit: i64,
}

impl Line {
    pub fn debit(account: LedgerAccount, amount: i64) -> Self {
        Self { account, customer_account: None, debit: amount, credit: 0 }
    }

    pub fn credit(account: LedgerAccount, amount: i64) -> Self {
        Self { account, customer_account: None, debit: 0, credit: amount }
    }

    /// Debits a customer's deposits (money leaves the account).
    pub fn debit_customer(account_id: Uuid, amount: i64) -> Self {
        Self { customer_account: Some(account_id), ..Self::debit(LedgerAccount::CustomerDeposits, amount) }
    }

    /// Credits a customer's deposits (money arrives in the account).
    pub fn credit_customer(account_id: Uuid, amount: i64) -> Self {
        Self { customer_account: Some(account_id), ..Self::credit(LedgerAccount::CustomerDeposits, amount) }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EntryError {
    #[error("unbalanced entry: debits {debits} ≠ credits {credits}")]
    Unbalanced { debits: i64, credits: i64 },
    #[error("a journal line has a negative amount or both a debit and a credit")]
    BadLine,
    #[error("only customer deposits name a customer account, and they always do")]
    CustomerAccount,
    #[error("an entry moves no money")]
    Empty,
}

/// A balanced entry: lines with zero amounts are dropped, the rest must balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    kind: EntryKind,
    lines: Vec<Line>,
}

impl Entry {
    pub fn new(kind: EntryKind, lines: impl IntoIterator<Item = Line>) -> Result<Self, EntryError> {
        let lines: Vec<Line> = lines.into_iter().filter(|l| l.debit != 0 || l.credit != 0).collect();
        if lines.is_empty() {
            return Err(EntryError::Empty);
        }
        for l in &lines {
            if l.debit < 0 || l.credit < 0 || (l.debit != 0 && l.credit != 0) {
                return Err(EntryError::BadLine);
            }
            if (l.account == LedgerAccount::CustomerDeposits) != l.customer_account.is_some() {
                return Err(EntryError::CustomerAccount);
            }
        }
        let debits: i64 = lines.iter().map(|l| l.debit).sum();
        let credits: i64 = lines.iter().map(|l| l.credit).sum();
        if debits != credits {
            return Err(EntryError::Unbalanced { debits, credits });
        }
        Ok(Self { kind, lines })
    }

    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    pub fn lines(&self) -> &[Line] {
        &self.lines
    }
}

/// What `journal_entries` keeps about an entry besides its lines.
pub struct EntryHeader<'a> {
    pub entry_id: Uuid,
    /// The customer account the entry is about (the paying one, for a transfer).
    pub account_id: Uuid,
    pub business_date: NaiveDate,
    pub value_date: NaiveDate,
    pub balance_after: i64,
    /// The booked payout request, for interest payouts (the payout feed reads it back).
    pub payout: Option<&'a InterestPostingRequest>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use LedgerAccount::*;

    #[test]
    fn an_entry_exists_only_balanced() {
        let a = Uuid::new_v4();
        let payout = [
            Line::debit(InterestExpense, 1000),
            Line::credit_customer(a, 850),
            Line::credit(IncomeTaxPayable, 140),
            Line::credit(LocalTaxPayable, 10),
            Line::credit(RuralSpecialTaxPayable, 0),
        ];
        let e = Entry::new(EntryKind::InterestPayout, payout).unwrap();
        assert_eq!(e.lines().len(), 4, "the zero line is dropped");
        let short = [Line::debit(InterestExpense, 1000), Line::credit_customer(a, 990)];
        assert_eq!(
            Entry::new(EntryKind::InterestPayout, short),
            Err(EntryError::Unbalanced { debits: 1000, credits: 990 })
        );
        assert_eq!(Entry::new(EntryKind::Deposit, [Line::debit(Cash, 0)]), Err(EntryError::Empty));
        let anonymous = [Line::debit(Cash, 5), Line::credit(CustomerDeposits, 5)];
        assert_eq!(Entry::new(EntryKind::Deposit, anonymous), Err(EntryError::CustomerAccount));
        let negative = [Line::debit(Cash, -5), Line::credit_customer(a, -5)];
        assert_eq!(Entry::new(EntryKind::Deposit, negative), Err(EntryError::BadLine));
    }
}
