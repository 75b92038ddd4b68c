//! SQL for customers.

use contracts::Customer;
use domain::{CustomerStatus, TaxCategory};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

fn to_customer(r: &sqlx::postgres::PgRow) -> Result<Customer, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let category: String = r.try_get("tax_category")?;
    Ok(Customer {
        customer_id: r.try_get("customer_id")?,
        name: r.try_get("name")?,
        status: CustomerStatus::parse(&status).ok_or_else(|| sqlx::Error::Decode(format!("status {status}").into()))?,
        status_reason: r.try_get("status_reason")?,
        tax_category: TaxCategory::parse(&category)
            .ok_or_else(|| sqlx::Error::Decode(format!("tax_category {category}").into()))?,
        created_at: r.try_get("created_at")?,
        rev: r.try_get("rev")?,
    })
}

const COLUMNS: &str = "customer_id, name, status, status_reason, tax_category, created_at, rev";

pub async fn insert(pool: &PgPool, name: &str, category: TaxCategory) -> Result<Customer, sqlx::Error> {
    let row = sqlx::query(&format!(
        "INSERT INTO customers (customer_id, name, status, tax_category) VALUES ($1, $2, 'ACTIVE', $3) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(name)
    .bind(category.as_str())
    .fetch_one(pool)
    .await?;
    to_customer(&row)
}

pub async fn find(pool: &PgPool, id: Uuid) -> Result<Option<Customer>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE customer_id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(to_customer).transpose()
}

pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Customer>, sqlx::Error> {
    let rows =
        sqlx::query(&format!("SELECT {COLUMNS} FROM customers WHERE customer_id = ANY($1) ORDER BY customer_id"))
            .bind(ids)
            .fetch_all(pool)
            .await?;
    rows.iter().map(to_customer).collect()
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
            sqlx::query(&format!(
                "UPDATE customers SET status = $2, status_reason = $3, rev = rev + 1, updated_at = now()
                 WHERE customer_id = $1 RETURNING {COLUMNS}"
            ))
            .bind(id)
            .bind(status.as_str())
            .bind(reason)
            .fetch_optional(&mut *conn)
            .await?
        }
        Change::TaxCategory(category) => {
            sqlx::query(&format!(
                "UPDATE customers SET tax_category = $2, rev = rev + 1, updated_at = now()
                 WHERE customer_id = $1 RETURNING {COLUMNS}"
            ))
            .bind(id)
            .bind(category.as_str())
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    let Some(row) = row else { return Ok(None) };
    if let Change::Status { status, reason } = change {
        sqlx::query("INSERT INTO customer_status_changes (customer_id, status, reason) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(status.as_str())
            .bind(reason)
            .execute(&mut *conn)
            .await?;
    }
    to_customer(&row).map(Some)
}

/// Raises the revision to `rev` unless it is there already (waits for a change in progress);
/// returns the new revision if it moved.
pub async fn catch_up(conn: impl sqlx::PgExecutor<'_>, id: Uuid, rev: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("UPDATE customers SET rev = $2 WHERE customer_id = $1 AND rev < $2 RETURNING rev")
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
        "UPDATE customers t SET rev = f.rev FROM unnest($1::uuid[], $2::int8[]) AS f(id, rev)
         WHERE t.customer_id = f.id AND t.rev < f.rev RETURNING t.customer_id, t.rev",
    )
    .bind(&ids)
    .bind(&revs)
    .fetch_all(pool)
    .await
}
