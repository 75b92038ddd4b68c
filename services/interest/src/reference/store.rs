//! SQL for products, rate schedules and tax rules, and their revisions.

use chrono::NaiveDate;
use contracts::RateScheduleBody;
use domain::{TaxCategory, TaxComponentRule, TaxRule, TaxRules};
use sqlx::{PgConnection, PgPool, Row};

// ---- products and schedules ----

pub async fn insert_product(pool: &PgPool, code: &str, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO products (code, name) VALUES ($1, $2)")
        .bind(code)
        .bind(name)
        .execute(pool)
        .await
        .map(|_| ())
}

pub async fn product_name(pool: &PgPool, code: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM products WHERE code = $1").bind(code).fetch_optional(pool).await
}

pub async fn product_codes(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query("SELECT code, name FROM products ORDER BY code").fetch_all(pool).await?;
    rows.iter().map(|r| Ok((r.try_get("code")?, r.try_get("name")?))).collect()
}

fn to_schedule(r: &sqlx::postgres::PgRow) -> Result<RateScheduleBody, sqlx::Error> {
    let bands: serde_json::Value = r.try_get("bands")?;
    Ok(RateScheduleBody {
        effective_from: r.try_get("effective_from")?,
        bands: serde_json::from_value(bands).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

/// The product's schedules and their revision, read in one snapshot (a quote carries the revision).
pub async fn schedules_at_rev(pool: &PgPool, code: &str) -> Result<(i64, Vec<RateScheduleBody>), sqlx::Error> {
    let rows = sqlx::query(
        "SELECT p.rates_rev, s.effective_from, s.bands FROM products p
         JOIN rate_schedules s ON s.product_code = p.code WHERE p.code = $1 ORDER BY s.effective_from",
    )
    .bind(code)
    .fetch_all(pool)
    .await?;
    let rev = rows.first().map(|r| r.try_get("rates_rev")).transpose()?.unwrap_or(0);
    Ok((rev, rows.iter().map(to_schedule).collect::<Result<_, _>>()?))
}

/// Locks the product row (serialising its schedule changes) and returns its rates revision.
pub async fn lock_product_rates(conn: &mut PgConnection, code: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("SELECT rates_rev FROM products WHERE code = $1 FOR UPDATE")
        .bind(code)
        .fetch_optional(conn)
        .await
}

pub async fn set_rates_rev(conn: &mut PgConnection, code: &str, rev: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE products SET rates_rev = $2 WHERE code = $1")
        .bind(code)
        .bind(rev)
        .execute(conn)
        .await
        .map(|_| ())
}

/// The last day covered by a payout of the product recorded here (the ledger's booked payouts
/// are checked by its fence).
pub async fn product_paid_through(conn: &mut PgConnection, code: &str) -> Result<Option<NaiveDate>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(period_to) FROM payouts WHERE product_code = $1").bind(code).fetch_one(conn).await
}

/// Inserts a schedule; `false` if the product has one for that date already.
pub async fn insert_schedule(conn: &mut PgConnection, code: &str, s: &RateScheduleBody) -> Result<bool, sqlx::Error> {
    let bands = serde_json::to_value(&s.bands).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let inserted = sqlx::query(
        "INSERT INTO rate_schedules (product_code, effective_from, bands) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(code)
    .bind(s.effective_from)
    .bind(bands)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Raises each product's rates revision to its fence where it is behind; the revisions that moved.
pub async fn catch_up_rates(pool: &PgPool, fences: &[(String, i64)]) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let codes: Vec<&str> = fences.iter().map(|f| f.0.as_str()).collect();
    let revs: Vec<i64> = fences.iter().map(|f| f.1).collect();
    sqlx::query_as(
        "UPDATE products p SET rates_rev = f.rev FROM unnest($1::text[], $2::int8[]) AS f(code, rev)
         WHERE p.code = f.code AND p.rates_rev < f.rev RETURNING p.code, p.rates_rev",
    )
    .bind(&codes)
    .bind(&revs)
    .fetch_all(pool)
    .await
}

pub async fn rates_revisions(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as("SELECT code, rates_rev FROM products").fetch_all(pool).await
}

// ---- tax rules ----

fn to_tax_rule(r: &sqlx::postgres::PgRow) -> Result<TaxRule, sqlx::Error> {
    let category: String = r.try_get("category")?;
    let components: serde_json::Value = r.try_get("components")?;
    Ok(TaxRule {
        category: TaxCategory::parse(&category).ok_or_else(|| sqlx::Error::Decode(category.into()))?,
        effective_from: r.try_get("effective_from")?,
        components: serde_json::from_value::<Vec<TaxComponentRule>>(components)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

const TAX_RULES: &str = "SELECT v.rev AS rules_rev, t.category, t.effective_from, t.components, t.rev, t.scheduled_by,
        t.reason, t.scheduled_at
     FROM tax_rules_revision v LEFT JOIN tax_rules t ON true ORDER BY t.category, t.effective_from";

/// Every tax rule and their revision, read in one statement (a quote carries the revision).
pub async fn tax_rules(pool: &PgPool) -> Result<(TaxRules, i64), sqlx::Error> {
    let rows = sqlx::query(TAX_RULES).fetch_all(pool).await?;
    let rev = rows.first().map(|r| r.try_get("rules_rev")).transpose()?.unwrap_or(0);
    let mut rules = Vec::new();
    for r in rows.iter().filter(|r| r.try_get::<Option<String>, _>("category").ok().flatten().is_some()) {
        rules.push(to_tax_rule(r)?);
    }
    Ok((TaxRules::new(rules).map_err(|e| sqlx::Error::Decode(Box::new(e)))?, rev))
}

/// A tax rule as kept: who scheduled it, why and when, at which revision of the rules.
pub struct KeptRule {
    pub rule: TaxRule,
    pub rev: i64,
    pub scheduled_by: Option<String>,
    pub reason: Option<String>,
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
}

/// Every tax rule as kept (who scheduled it and why), and their revision.
pub async fn tax_rule_views(pool: &PgPool) -> Result<(i64, Vec<KeptRule>), sqlx::Error> {
    let rows = sqlx::query(TAX_RULES).fetch_all(pool).await?;
    let rev = rows.first().map(|r| r.try_get("rules_rev")).transpose()?.unwrap_or(0);
    let mut rules = Vec::new();
    for r in rows.iter().filter(|r| r.try_get::<Option<String>, _>("category").ok().flatten().is_some()) {
        rules.push(KeptRule {
            rule: to_tax_rule(r)?,
            rev: r.try_get("rev")?,
            scheduled_by: r.try_get("scheduled_by")?,
            reason: r.try_get("reason")?,
            scheduled_at: r.try_get("scheduled_at")?,
        });
    }
    Ok((rev, rules))
}

/// Locks the rules' revision (serialising rule changes) and returns it.
pub async fn lock_tax_rules(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT rev FROM tax_rules_revision WHERE id = 1 FOR UPDATE").fetch_one(conn).await
}

pub async fn set_tax_rules_rev(conn: &mut PgConnection, rev: i64) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tax_rules_revision SET rev = $1 WHERE id = 1").bind(rev).execute(conn).await.map(|_| ())
}

/// Raises the rules' revision to `rev` unless it is there already (waits for a change in
/// progress); the new revision if it moved.
pub async fn catch_up_tax_rules(pool: &PgPool, rev: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar("UPDATE tax_rules_revision SET rev = $1 WHERE id = 1 AND rev < $1 RETURNING rev")
        .bind(rev)
        .fetch_optional(pool)
        .await
}

pub async fn insert_tax_rule(
    conn: &mut PgConnection,
    rule: &TaxRule,
    rev: i64,
    by: &str,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let components = serde_json::to_value(&rule.components).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO tax_rules (category, effective_from, components, rev, scheduled_by, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(rule.category.as_str())
    .bind(rule.effective_from)
    .bind(components)
    .bind(rev)
    .bind(by)
    .bind(reason)
    .execute(conn)
    .await
    .map(|_| ())
}

/// The last business date this service recorded a payout of the tax category on.
pub async fn category_paid_on(
    conn: &mut PgConnection,
    category: TaxCategory,
) -> Result<Option<NaiveDate>, sqlx::Error> {
    sqlx::query_scalar("SELECT max(business_date) FROM payouts WHERE tax_category = $1")
        .bind(category.as_str())
        .fetch_one(conn)
        .await
}
