//! Every problem code the API answers with and its HTTP status — one table for all services, so
//! a code means one thing wherever it appears (SPEC §8: the `code` is stable). One rule beside the
//! table: a resource that is missing because a request *body* names it (opening an account for an
//! unknown customer) is `422` with the body field named, not the code's `404`.

use domain::Refusal;

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal => $status:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }

            /// The HTTP status every answer with this code has.
            pub fn status(self) -> u16 {
                match self {
                    $(Code::$variant => $status,)*
                }
            }

            pub fn parse(s: &str) -> Option<Code> {
                match s {
                    $($text => Some(Code::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // The request itself.
    MalformedBody = "MALFORMED_BODY" => 400,
    MalformedJson = "MALFORMED_JSON" => 400,
    MalformedPath = "MALFORMED_PATH" => 400,
    MalformedQuery = "MALFORMED_QUERY" => 400,
    IdempotencyKeyRequired = "IDEMPOTENCY_KEY_REQUIRED" => 400,
    IdempotencyKeyInvalid = "IDEMPOTENCY_KEY_INVALID" => 400,
    BodyTooLarge = "BODY_TOO_LARGE" => 413,
    UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE" => 415,
    ValidationFailed = "VALIDATION_FAILED" => 422,
    /// The same Idempotency-Key with a different request.
    IdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED" => 422,
    // Who asks (the gateway).
    /// No valid bearer token (missing, malformed, bad signature, expired, wrong issuer or audience).
    Unauthorized = "UNAUTHORIZED" => 401,
    /// A valid token without the scope the route needs.
    InsufficientScope = "INSUFFICIENT_SCOPE" => 403,
    /// An internal service's caller (a valid service credential) not granted this route.
    CallerNotAllowed = "CALLER_NOT_ALLOWED" => 403,
    /// Too many requests from one customer; `Retry-After` says when to try again.
    RateLimited = "RATE_LIMITED" => 429,
    // What the request names.
    NotFound = "NOT_FOUND" => 404,
    RouteNotFound = "ROUTE_NOT_FOUND" => 404,
    MethodNotAllowed = "METHOD_NOT_ALLOWED" => 405,
    CustomerNotFound = "CUSTOMER_NOT_FOUND" => 404,
    AccountNotFound = "ACCOUNT_NOT_FOUND" => 404,
    ProductNotFound = "PRODUCT_NOT_FOUND" => 404,
    RunNotFound = "RUN_NOT_FOUND" => 404,
    // Who may be paid or move money (SPEC §5): the customer's or the account's state forbids it.
    CustomerRestricted = "CUSTOMER_RESTRICTED" => 403,
    AccountNotActive = "ACCOUNT_NOT_ACTIVE" => 403,
    DepositSuspended = "DEPOSIT_SUSPENDED" => 403,
    WithdrawalSuspended = "WITHDRAWAL_SUSPENDED" => 403,
    AlreadyPaidToday = "ALREADY_PAID_TODAY" => 409,
    NothingToPay = "NOTHING_TO_PAY" => 422,
    // Money-movement rules.
    InsufficientFunds = "INSUFFICIENT_FUNDS" => 422,
    AmountTooLarge = "AMOUNT_TOO_LARGE" => 422,
    SameAccount = "SAME_ACCOUNT" => 422,
    ValueDateInFuture = "VALUE_DATE_IN_FUTURE" => 422,
    ValueDateBeforeOpening = "VALUE_DATE_BEFORE_OPENING" => 422,
    ValueDateInPaidPeriod = "VALUE_DATE_IN_PAID_PERIOD" => 422,
    UnbalancedPayout = "UNBALANCED_PAYOUT" => 422,
    BadPayoutDates = "BAD_PAYOUT_DATES" => 422,
    // Conflicts with what is already there.
    QuoteStale = "QUOTE_STALE" => 409,
    PayoutPeriodMismatch = "PAYOUT_PERIOD_MISMATCH" => 409,
    PayoutInProgress = "PAYOUT_IN_PROGRESS" => 409,
    RunExists = "RUN_EXISTS" => 409,
    RunFinished = "RUN_FINISHED" => 409,
    ProductExists = "PRODUCT_EXISTS" => 409,
    RateScheduleExists = "RATE_SCHEDULE_EXISTS" => 409,
    RateScheduleAffectsPaidPeriod = "RATE_SCHEDULE_AFFECTS_PAID_PERIOD" => 409,
    TaxRuleExists = "TAX_RULE_EXISTS" => 409,
    /// A tax rule would change the withholding of a business date a payout was booked on.
    TaxRuleAffectsPaidPeriod = "TAX_RULE_AFFECTS_PAID_PERIOD" => 409,
    /// The rollout serves the account's customer from the legacy core: a payout run skips it.
    RoutedToLegacy = "ROUTED_TO_LEGACY" => 409,
    /// The legacy core was asked about a business date other than its own.
    BusinessDateMismatch = "BUSINESS_DATE_MISMATCH" => 409,
    // Retry later: nothing was done.
    AccountBusy = "ACCOUNT_BUSY" => 503,
    ClockUnavailable = "CLOCK_UNAVAILABLE" => 503,
    DependencyUnavailable = "DEPENDENCY_UNAVAILABLE" => 503,
    NotReady = "NOT_READY" => 503,
    /// A bug; the detail says which.
    Internal = "INTERNAL" => 500,
}

impl From<&Refusal> for Code {
    fn from(r: &Refusal) -> Code {
        match r {
            Refusal::CustomerRestricted(_) => Code::CustomerRestricted,
            Refusal::AccountNotActive(_) => Code::AccountNotActive,
            Refusal::DepositSuspended => Code::DepositSuspended,
            Refusal::AlreadyPaidToday => Code::AlreadyPaidToday,
            Refusal::NothingToPay => Code::NothingToPay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_one_text_and_one_status() {
        let mut texts: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), Code::ALL.len(), "a code text appears twice");
        for c in Code::ALL {
            assert_eq!(Code::parse(c.as_str()), Some(*c));
            assert!((400..600).contains(&c.status()));
        }
        // A refusal's code is the domain's own text.
        let r = Refusal::AlreadyPaidToday;
        assert_eq!(Code::from(&r).as_str(), r.code());
    }
}
