//! SQL for customers.

use contracts::Customer;
use domain::{CustomerStatus, TaxCategory};
use sqlx::{PgPool, Row};
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
    })
}

const COLUMNS: &str = "customer_id, name, status, status_reason, tax_category, created_at";

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

/// Changes the status (with its history row); returns the customer and its new revision.
pub async fn set_status(
    pool: &PgPool,
    id: Uuid,
    status: CustomerStatus,
    reason: Option<&str>,
) -> Result<Option<(Customer, i64)>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row = sqlx::query(&format!(
        "UPDATE customers SET status = $2, status_reason = $3, rev = rev + 1, updated_at = now()
         WHERE customer_id = $1 RETURNING {COLUMNS}, rev"
    ))
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .fetch_optional(&mut *tx)
    .await?;
    if row.is_some() {
        sqlx::query("INSERT INTO customer_status_changes (customer_id, status, reason) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(status.as_str())
            .bind(reason)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    row.as_ref().map(|r| Ok((to_customer(r)?, r.try_get("rev")?))).transpose()
}
