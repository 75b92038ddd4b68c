//! Customer and account states, and the eligibility rules for a payout (SPEC §5).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CustomerStatus {
    Active,
    IdentityTheft,
    HackingVictim,
    Deceased,
}

impl CustomerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::IdentityTheft => "IDENTITY_THEFT",
            Self::HackingVictim => "HACKING_VICTIM",
            Self::Deceased => "DECEASED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Self::Active),
            "IDENTITY_THEFT" => Some(Self::IdentityTheft),
            "HACKING_VICTIM" => Some(Self::HackingVictim),
            "DECEASED" => Some(Self::Deceased),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountStatus {
    Active,
    Dormant,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Dormant => "DORMANT",
            Self::Closed => "CLOSED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Self::Active),
            "DORMANT" => Some(Self::Dormant),
            "CLOSED" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// Why a payout is refused; the stable code is part of the API contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    CustomerRestricted(CustomerStatus),
    AccountNotActive(AccountStatus),
    DepositSuspended,
    AlreadyPaidToday,
    NothingToPay,
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Self::CustomerRestricted(_) => "CUSTOMER_RESTRICTED",
            Self::AccountNotActive(_) => "ACCOUNT_NOT_ACTIVE",
            Self::DepositSuspended => "DEPOSIT_SUSPENDED",
            Self::AlreadyPaidToday => "ALREADY_PAID_TODAY",
            Self::NothingToPay => "NOTHING_TO_PAY",
        }
    }

    pub fn detail(&self) -> String {
        match self {
            Self::CustomerRestricted(s) => format!("customer status is {}", s.as_str()),
            Self::AccountNotActive(s) => format!("account status is {}", s.as_str()),
            Self::DepositSuspended => "deposits to this account are suspended; a payout is a credit".into(),
            Self::AlreadyPaidToday => "interest was already paid on this business date".into(),
            Self::NothingToPay => "less than 1 won has accrued; the period is not consumed".into(),
        }
    }
}

/// The eligibility checks that come before any arithmetic, in SPEC §5 order.
pub fn check_eligibility(
    customer: CustomerStatus,
    account: AccountStatus,
    deposit_suspended: bool,
) -> Result<(), Refusal> {
    if customer != CustomerStatus::Active {
        return Err(Refusal::CustomerRestricted(customer));
    }
    if account != AccountStatus::Active {
        return Err(Refusal::AccountNotActive(account));
    }
    if deposit_suspended {
        return Err(Refusal::DepositSuspended);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every combination, with SPEC §5's order: the customer's status first, then the account's,
    /// then the deposit hold (a withdrawal hold never refuses a payout: it is a credit).
    #[test]
    fn every_combination_refuses_by_the_first_rule_it_breaks() {
        use AccountStatus as A;
        use CustomerStatus as C;
        for c in [C::Active, C::IdentityTheft, C::HackingVictim, C::Deceased] {
            for a in [A::Active, A::Dormant, A::Closed] {
                for held in [false, true] {
                    let want = if c != C::Active {
                        Err(Refusal::CustomerRestricted(c))
                    } else if a != A::Active {
                        Err(Refusal::AccountNotActive(a))
                    } else if held {
                        Err(Refusal::DepositSuspended)
                    } else {
                        Ok(())
                    };
                    assert_eq!(check_eligibility(c, a, held), want, "{c:?} {a:?} deposit hold {held}");
                }
            }
        }
    }

    #[test]
    fn eligibility_table() {
        use AccountStatus as A;
        use CustomerStatus as C;
        assert_eq!(check_eligibility(C::Active, A::Active, false), Ok(()));
        for c in [C::IdentityTheft, C::HackingVictim, C::Deceased] {
            assert_eq!(check_eligibility(c, A::Active, false).unwrap_err().code(), "CUSTOMER_RESTRICTED");
        }
        for a in [A::Dormant, A::Closed] {
            assert_eq!(check_eligibility(C::Active, a, false).unwrap_err().code(), "ACCOUNT_NOT_ACTIVE");
        }
        assert_eq!(check_eligibility(C::Active, A::Active, true).unwrap_err().code(), "DEPOSIT_SUSPENDED");
    }
}
