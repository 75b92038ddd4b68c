//! SQL for customers. Every statement is checked against the schema at compile time (`sqlx::query!`
//! and friends, with the offline metadata in `.sqlx/`); rows come back as [`CustomerRow`] and
//! become contract types through one mapping of the text-stored enums.

use contracts::Customer;
use domain::{CustomerStatus, TaxCategory};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A `customers` row as selected (every query returns these columns, in this order).
struct CustomerRow {
    customer_id: Uuid,
    name: String,
    status: String,
    status_reason: Option<String>,
    tax_category: String,
    created_at: sqlx::types::chrono::DateTime<sqlx::types::chrono::Utc>,
    rev: i64,
}

impl TryFrom<CustomerRow> for Customer {
    type Error = sqlx::Error;

    fn try_from(r: CustomerRow) -> Result<Self, Self::Error> {
        let decode = |what: &str, v: &str| sqlx::Error::Decode(format!("{what} {v}").into());
        Ok(Customer {
            status: CustomerStatus::parse(&r.status).ok_or_else(|| decode("status", &r.status))?,
            tax_category: TaxCategory::parse(&r.tax_category).ok_or_else(|| decode("tax_category", &r.tax_category))?,
            customer_id: r.customer_id,
            name: r.name,
            status_reason: r.status_reason,
            created_at: r.created_at,
            rev: r.rev,
        })
    }
}

pub async fn insert(pool: &PgPool, name: &str, category: TaxCategory) -> Result<Customer, sqlx::Error> {
    sqlx::query_as!(
        CustomerRow,
        "INSERT INTO customers (customer_id, name, status, tax_category) VALUES ($1, $2, 'ACTIVE', $3)
         RETURNING customer_id, name, status, status_reason, tax_category, created_at, rev",
        Uuid::new_v4(),
        name,
        category.as_str(),
    )
    .fetch_one(pool)
    .await?
    .try_into()
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Customer>, sqlx::Error> {
    sqlx::query_as!(
        CustomerRow,
        "SELECT customer_id, name, status, status_reason, tax_category, created_at, rev FROM customers
         WHERE customer_id = $1",
        id,
    )
    .fetch_optional(pool)
    .await?
    .map(Customer::try_from)
    .transpose()
}

pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Customer>, sqlx::Error> {
    sqlx::query_as!(
        CustomerRow,
        "SELECT customer_id, name, status, status_reason, tax_category, created_at, rev FROM customers
         WHERE customer_id = ANY($1) ORDER BY customer_id",
        ids,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Customer::try_from)
    .collect()
}

/// The change a use case makes to a customer's mutable fields.
pub enum Change<'a> {
    Status { status: CustomerStatus, reason: Option<&'a str> },
    TaxCategory(TaxCategory),
}

/// Applies the change and bumps the revision, leaving the row locked in `tx`; `None` if there is
/// no such customer.
pub async fn apply(conn: &mut PgConnection, id: Uuid, change: &Change<'_>) -> Result<Option<Customer>, sqlx::Error> {
    let row = match change {
        Change::Status { status, reason } => {
            sqlx::query_as!(
                CustomerRow,
                "UPDATE customers SET status = $2, status_reason = $3, rev = rev + 1, updated_at = now()
                 WHERE customer_id = $1
                 RETURNING customer_id, name, status, status_reason, tax_category, created_at, rev",
                id,
                status.as_str(),
                *reason,
            )
            .fetch_optional(&mut *conn)
            .await?
        }
        Change::TaxCategory(category) => {
            sqlx::query_as!(
                CustomerRow,
                "UPDATE customers SET tax_category = $2, rev = rev + 1, updated_at = now()
                 WHERE customer_id = $1
                 RETURNING customer_id, name, status, status_reason, tax_category, created_at, rev",
                id,
                category.as_str(),
            )
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(row) = row else { return Ok(None) };
    if let Change::Status { status, reason } = change {
        sqlx::query!(
            "INSERT INTO customer_status_changes (customer_id, status, reason) VALUES ($1, $2, $3)",
            id,
            status.as_str(),
            *reason,
        )
        .execute(&mut *conn)
        .await?;
    }
    Customer::try_from(row).map(Some)
}

/// Raises the revision to `rev` unless it is there already (waits for a change in progress);
/// returns the new revision if it moved.
pub async fn catch_up(conn: impl sqlx::PgExecutor<'_>, id: Uuid, rev: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!("UPDATE customers SET rev = $2 WHERE customer_id = $1 AND rev < $2 RETURNING rev", id, rev)
        .fetch_optional(conn)
        .await
}

/// [`catch_up`] for many (a page of fences, subject ids with their fence revisions): answers the
/// revisions that moved.
pub async fn catch_up_many(pool: &PgPool, fences: &[(Uuid, i64)]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let ids: Vec<Uuid> = fences.iter().map(|f| f.0).collect();
    let revs: Vec<i64> = fences.iter().map(|f| f.1).collect();
    let rows = sqlx::query!(
        "UPDATE customers t SET rev = f.rev FROM unnest($1::uuid[], $2::int8[]) AS f(id, rev)
         WHERE t.customer_id = f.id AND t.rev < f.rev RETURNING t.customer_id, t.rev",
        &ids,
        &revs,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.customer_id, r.rev)).collect())
}
