//! SQL for accounts. Every statement is checked against the schema at compile time (`sqlx::query!`
//! and friends, with the offline metadata in `.sqlx/`); rows come back as [`AccountRow`] and
//! become contract types through one mapping of the text-stored status.

use chrono::NaiveDate;
use contracts::Account;
use domain::AccountStatus;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// An `accounts` row as selected (every query returns these columns, in this order).
struct AccountRow {
    account_id: Uuid,
    customer_id: Uuid,
    product_code: String,
    opened_on: NaiveDate,
    status: String,
    deposit_suspended: bool,
    withdrawal_suspended: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    rev: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = sqlx::Error;

    fn try_from(r: AccountRow) -> Result<Self, Self::Error> {
        Ok(Account {
            status: AccountStatus::parse(&r.status)
                .ok_or_else(|| sqlx::Error::Decode(format!("status {}", r.status).into()))?,
            account_id: r.account_id,
            customer_id: r.customer_id,
            product_code: r.product_code,
            opened_on: r.opened_on,
            deposit_suspended: r.deposit_suspended,
            withdrawal_suspended: r.withdrawal_suspended,
            created_at: r.created_at,
            rev: r.rev,
        })
    }
}

pub async fn insert(
    pool: &PgPool,
    customer_id: Uuid,
    product_code: &str,
    opened_on: NaiveDate,
) -> Result<Account, sqlx::Error> {
    sqlx::query_as!(
        AccountRow,
        "INSERT INTO accounts (account_id, customer_id, product_code, opened_on, status)
         VALUES ($1, $2, $3, $4, 'ACTIVE')
         RETURNING account_id, customer_id, product_code, opened_on, status, deposit_suspended,
                   withdrawal_suspended, created_at, rev",
        Uuid::new_v4(),
        customer_id,
        product_code,
        opened_on,
    )
    .fetch_one(pool)
    .await?
    .try_into()
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as!(
        AccountRow,
        "SELECT account_id, customer_id, product_code, opened_on, status, deposit_suspended, withdrawal_suspended,
                created_at, rev
         FROM accounts WHERE account_id = $1",
        id,
    )
    .fetch_optional(pool)
    .await?
    .map(Account::try_from)
    .transpose()
}

pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Account>, sqlx::Error> {
    sqlx::query_as!(
        AccountRow,
        "SELECT account_id, customer_id, product_code, opened_on, status, deposit_suspended, withdrawal_suspended,
                created_at, rev
         FROM accounts WHERE account_id = ANY($1) ORDER BY account_id",
        ids,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Account::try_from)
    .collect()
}

/// The change a use case makes to an account's mutable state.
pub enum Change {
    Status(AccountStatus),
    Holds { deposit: bool, withdrawal: bool },
}

/// Applies the change and bumps the revision, leaving the row locked in `conn`'s transaction;
/// `None` if there is no such account.
pub async fn apply(conn: &mut PgConnection, id: Uuid, change: &Change) -> Result<Option<Account>, sqlx::Error> {
    let row = match change {
        Change::Status(status) => {
            sqlx::query_as!(
                AccountRow,
                "UPDATE accounts SET status = $2, rev = rev + 1, updated_at = now() WHERE account_id = $1
                 RETURNING account_id, customer_id, product_code, opened_on, status, deposit_suspended,
                           withdrawal_suspended, created_at, rev",
                id,
                status.as_str(),
            )
            .fetch_optional(conn)
            .await?
        }
        Change::Holds { deposit, withdrawal } => {
            sqlx::query_as!(
                AccountRow,
                "UPDATE accounts SET deposit_suspended = $2, withdrawal_suspended = $3, rev = rev + 1,
                        updated_at = now()
                 WHERE account_id = $1
                 RETURNING account_id, customer_id, product_code, opened_on, status, deposit_suspended,
                           withdrawal_suspended, created_at, rev",
                id,
                deposit,
                withdrawal,
            )
            .fetch_optional(conn)
            .await?
        }
    };
    row.map(Account::try_from).transpose()
}

/// Which accounts a listing returns (every condition optional).
#[derive(Default)]
pub struct Filter<'a> {
    pub product_code: Option<&'a str>,
    pub status: Option<AccountStatus>,
    pub customer_id: Option<Uuid>,
}

/// Keyset page ordered by account id: streams any number of accounts without OFFSET.
pub async fn list(pool: &PgPool, f: &Filter<'_>, after: Option<Uuid>, limit: i64) -> Result<Vec<Account>, sqlx::Error> {
    sqlx::query_as!(
        AccountRow,
        "SELECT account_id, customer_id, product_code, opened_on, status, deposit_suspended, withdrawal_suspended,
                created_at, rev
         FROM accounts
         WHERE ($1::text IS NULL OR product_code = $1)
           AND ($2::text IS NULL OR status = $2)
           AND ($3::uuid IS NULL OR account_id > $3)
           AND ($5::uuid IS NULL OR customer_id = $5)
         ORDER BY account_id LIMIT $4",
        f.product_code,
        f.status.map(AccountStatus::as_str),
        after,
        limit,
        f.customer_id,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Account::try_from)
    .collect()
}

/// Raises the revision to `rev` unless it is there already (waits for a change in progress);
/// returns the new revision if it moved.
pub async fn catch_up(conn: impl sqlx::PgExecutor<'_>, id: Uuid, rev: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!("UPDATE accounts SET rev = $2 WHERE account_id = $1 AND rev < $2 RETURNING rev", id, rev)
        .fetch_optional(conn)
        .await
}

/// [`catch_up`] for many (a page of fences, subject ids with their fence revisions): answers the
/// revisions that moved.
pub async fn catch_up_many(pool: &PgPool, fences: &[(Uuid, i64)]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let ids: Vec<Uuid> = fences.iter().map(|f| f.0).collect();
    let revs: Vec<i64> = fences.iter().map(|f| f.1).collect();
    let rows = sqlx::query!(
        "UPDATE accounts t SET rev = f.rev FROM unnest($1::uuid[], $2::int8[]) AS f(id, rev)
         WHERE t.account_id = f.id AND t.rev < f.rev RETURNING t.account_id, t.rev",
        &ids,
        &revs,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.account_id, r.rev)).collect())
}
