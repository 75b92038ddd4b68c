//! SQL for accounts.

use chrono::NaiveDate;
use contracts::Account;
use domain::AccountStatus;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

const COLUMNS: &str =
    "account_id, customer_id, product_code, opened_on, status, deposit_suspended, withdrawal_suspended, created_at, rev";

fn to_account(r: &sqlx::postgres::PgRow) -> Result<Account, sqlx::Error> {
    let status: String = r.try_get("status")?;
    Ok(Account {
        account_id: r.try_get("account_id")?,
        customer_id: r.try_get("customer_id")?,
        product_code: r.try_get("product_code")?,
        opened_on: r.try_get("opened_on")?,
        status: AccountStatus::parse(&status).ok_or_else(|| sqlx::Error::Decode(format!("status {status}").into()))?,
        deposit_suspended: r.try_get("deposit_suspended")?,
        withdrawal_suspended: r.try_get("withdrawal_suspended")?,
        created_at: r.try_get("created_at")?,
        rev: r.try_get("rev")?,
    })
}

pub async fn insert(
    pool: &PgPool,
    customer_id: Uuid,
    product_code: &str,
    opened_on: NaiveDate,
) -> Result<Account, sqlx::Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO accounts (account_id, customer_id, product_code, opened_on, status)
         VALUES ($1, $2, $3, $4, 'ACTIVE') RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(customer_id)
    .bind(product_code)
    .bind(opened_on)
    .fetch_one(pool)
    .await?;
    to_account(&row)
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts WHERE account_id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(to_account).transpose()
}

pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Account>, sqlx::Error> {
    let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM accounts WHERE account_id = ANY($1) ORDER BY account_id"))
        .bind(ids)
        .fetch_all(pool)
        .await?;
    rows.iter().map(to_account).collect()
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
            sqlx::query(&format!(
                "UPDATE accounts SET status = $2, rev = rev + 1, updated_at = now() WHERE account_id = $1
                 RETURNING {COLUMNS}"
            ))
            .bind(id)
            .bind(status.as_str())
            .fetch_optional(conn)
            .await?
        }
        Change::Holds { deposit, withdrawal } => {
            sqlx::query(&format!(
            "UPDATE accounts SET deposit_suspended = $2, withdrawal_suspended = $3, rev = rev + 1, updated_at = now()
                 WHERE account_id = $1 RETURNING {COLUMNS}"
        ))
            .bind(id)
            .bind(deposit)
            .bind(withdrawal)
            .fetch_optional(conn)
            .await?
        }
    };
    row.as_ref().map(to_account).transpose()
}

/// Keyset page ordered by account id: streams any number of accounts without OFFSET.
/// Which accounts a listing returns (every condition optional).
#[derive(Default)]
pub struct Filter<'a> {
    pub product_code: Option<&'a str>,
    pub status: Option<AccountStatus>,
    pub customer_id: Option<Uuid>,
}

pub async fn list(pool: &PgPool, f: &Filter<'_>, after: Option<Uuid>, limit: i64) -> Result<Vec<Account>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM accounts
         WHERE ($1::text IS NULL OR product_code = $1)
           AND ($2::text IS NULL OR status = $2)
           AND ($3::uuid IS NULL OR account_id > $3)
           AND ($5::uuid IS NULL OR customer_id = $5)
         ORDER BY account_id LIMIT $4"
    ))
    .bind(f.product_code)
    .bind(f.status.map(AccountStatus::as_str))
    .bind(after)
    .bind(limit)
    .bind(f.customer_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(to_account).collect()
}

/// Raises the revision to `rev` unless it is there already (waits for a change in progress);
/// returns the new revision if it moved.
pub async fn catch_up(conn: impl sqlx::PgExecutor<'_>, id: Uuid, rev: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("UPDATE accounts SET rev = $2 WHERE account_id = $1 AND rev < $2 RETURNING rev")
        .bind(id)
        .bind(rev)
        .fetch_optional(conn)
        .await
}

/// [`catch_up`] for many (a page of fences, subject ids with their fence revisions): answers the
/// revisions that moved.
pub async fn catch_up_many(pool: &PgPool, fences: &[(Uuid, i64)]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let ids: Vec<Uuid> = fences.iter().map(|f| f.0).collect();
    let revs: Vec<i64> = fences.iter().map(|f| f.1).collect();
    sqlx::query_as(
        "UPDATE accounts t SET rev = f.rev FROM unnest($1::uuid[], $2::int8[]) AS f(id, rev)
         WHERE t.account_id = f.id AND t.rev < f.rev RETURNING t.account_id, t.rev",
    )
    .bind(&ids)
    .bind(&revs)
    .fetch_all(pool)
    .await
}
