//! SQL for products, rate schedules and tax rules, and their revisions. Every statement is checked
//! against the schema at compile time (`sqlx::query!` and friends, with the offline metadata in
//! `.sqlx/`).

use chrono::NaiveDate;
use contracts::RateScheduleBody;
use domain::{TaxCategory, TaxComponentRule, TaxRule, TaxRules};
use sqlx::{PgConnection, PgPool};

// ---- products and schedules ----

pub async fn insert_product(pool: &PgPool, code: &str, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query!("INSERT INTO products (code, name) VALUES ($1, $2)", code, name).execute(pool).await.map(|_| ())
}

pub async fn product_name(pool: &PgPool, code: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("SELECT name FROM products WHERE code = $1", code).fetch_optional(pool).await
}

pub async fn product_codes(pool: &PgPool) -> Result<Vec<(String, String)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT code, name FROM products ORDER BY code").fetch_all(pool).await?;
    Ok(rows.into_iter().map(|r| (r.code, r.name)).collect())
}

/// A schedule's bands, read back from their JSON.
fn to_schedule(effective_from: NaiveDate, bands: serde_json::Value) -> Result<RateScheduleBody, sqlx::Error> {
    Ok(RateScheduleBody {
        effective_from,
        bands: serde_json::from_value(bands).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
    })
}

/// The product's schedules and their revision, read in one snapshot (a quote carries the revision).
pub async fn schedules_at_rev(pool: &PgPool, code: &str) -> Result<(i64, Vec<RateScheduleBody>), sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT p.rates_rev, s.effective_from, s.bands FROM products p
         JOIN rate_schedules s ON s.product_code = p.code WHERE p.code = $1 ORDER BY s.effective_from",
        code,
    )
    .fetch_all(pool)
    .await?;
    let rev = rows.first().map_or(0, |r| r.rates_rev);
    Ok((rev, rows.into_iter().map(|r| to_schedule(r.effective_from, r.bands)).collect::<Result<_, _>>()?))
}

/// Locks the product row (serialising its schedule changes) and returns its rates revision.
pub async fn lock_product_rates(conn: &mut PgConnection, code: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!("SELECT rates_rev FROM products WHERE code = $1 FOR UPDATE", code).fetch_optional(conn).await
}

pub async fn set_rates_rev(conn: &mut PgConnection, code: &str, rev: i64) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE products SET rates_rev = $2 WHERE code = $1", code, rev).execute(conn).await.map(|_| ())
}

/// The last day covered by a payout of the product recorded here (the ledger's booked payouts
/// are checked by its fence).
pub async fn product_paid_through(conn: &mut PgConnection, code: &str) -> Result<Option<NaiveDate>, sqlx::Error> {
    sqlx::query_scalar!("SELECT max(period_to) FROM payouts WHERE product_code = $1", code).fetch_one(conn).await
}

/// Inserts a schedule; `false` if the product has one for that date already.
pub async fn insert_schedule(conn: &mut PgConnection, code: &str, s: &RateScheduleBody) -> Result<bool, sqlx::Error> {
    let bands = serde_json::to_value(&s.bands).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let inserted = sqlx::query!(
        "INSERT INTO rate_schedules (product_code, effective_from, bands) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        code,
        s.effective_from,
        bands,
    )
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Raises each product's rates revision to its fence where it is behind; the revisions that moved.
pub async fn catch_up_rates(pool: &PgPool, fences: &[(String, i64)]) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let codes: Vec<&str> = fences.iter().map(|f| f.0.as_str()).collect();
    let revs: Vec<i64> = fences.iter().map(|f| f.1).collect();
    let rows = sqlx::query!(
        "UPDATE products p SET rates_rev = f.rev FROM unnest($1::text[], $2::int8[]) AS f(code, rev)
         WHERE p.code = f.code AND p.rates_rev < f.rev RETURNING p.code, p.rates_rev",
        &codes as &[&str],
        &revs,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.code, r.rates_rev)).collect())
}

pub async fn rates_revisions(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT code, rates_rev FROM products").fetch_all(pool).await?;
    Ok(rows.into_iter().map(|r| (r.code, r.rates_rev)).collect())
}

// ---- tax rules ----

/// A tax rule as kept: who scheduled it, why and when, at which revision of the rules.
pub struct KeptRule {
    pub rule: TaxRule,
    pub rev: i64,
    pub scheduled_by: Option<String>,
    pub reason: Option<String>,
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
}

/// A row of [`kept_rules`]: the rules' revision with one rule, or with none (no rule kept at all:
/// the rule's columns are NULL, from the outer join).
struct TaxRulesRow {
    rules_rev: i64,
    category: Option<String>,
    effective_from: Option<NaiveDate>,
    components: Option<serde_json::Value>,
    rev: Option<i64>,
    scheduled_by: Option<String>,
    reason: Option<String>,
    scheduled_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A value the outer join leaves NULL only when there is no rule (its row has a category).
fn joined<T>(v: Option<T>, column: &str) -> Result<T, sqlx::Error> {
    v.ok_or_else(|| sqlx::Error::Decode(format!("tax_rules.{column} is NULL").into()))
}

impl TaxRulesRow {
    /// The rule on this row, `None` on the row of no rule.
    fn kept(self) -> Result<Option<KeptRule>, sqlx::Error> {
        let Some(category) = self.category else { return Ok(None) };
        let components = joined(self.components, "components")?;
        let rule = TaxRule {
            category: TaxCategory::parse(&category).ok_or_else(|| sqlx::Error::Decode(category.into()))?,
            effective_from: joined(self.effective_from, "effective_from")?,
            components: serde_json::from_value::<Vec<TaxComponentRule>>(components)
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        };
        Ok(Some(KeptRule {
            rule,
            rev: joined(self.rev, "rev")?,
            scheduled_by: self.scheduled_by,
            reason: self.reason,
            scheduled_at: joined(self.scheduled_at, "scheduled_at")?,
        }))
    }
}

/// Every tax rule as kept and their revision, read in one statement (a quote carries the revision).
async fn kept_rules(pool: &PgPool) -> Result<(i64, Vec<KeptRule>), sqlx::Error> {
    let rows = sqlx::query_as!(
        TaxRulesRow,
        r#"SELECT v.rev AS rules_rev, t.category AS "category?", t.effective_from AS "effective_from?",
                  t.components AS "components?", t.rev AS "rev?", t.scheduled_by, t.reason,
                  t.scheduled_at AS "scheduled_at?"
           FROM tax_rules_revision v LEFT JOIN tax_rules t ON true ORDER BY t.category, t.effective_from"#
    )
    .fetch_all(pool)
    .await?;
    let rev = rows.first().map_or(0, |r| r.rules_rev);
    let mut rules = Vec::with_capacity(rows.len());
    for row in rows {
        rules.extend(row.kept()?);
    }
    Ok((rev, rules))
}

/// Every tax rule and their revision, read in one statement (a quote carries the revision).
pub async fn tax_rules(pool: &PgPool) -> Result<(TaxRules, i64), sqlx::Error> {
    let (rev, kept) = kept_rules(pool).await?;
    let rules =
        TaxRules::new(kept.into_iter().map(|k| k.rule).collect()).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok((rules, rev))
}

/// Every tax rule as kept (who scheduled it and why), and their revision.
pub async fn tax_rule_views(pool: &PgPool) -> Result<(i64, Vec<KeptRule>), sqlx::Error> {
    kept_rules(pool).await
}

/// Locks the rules' revision (serialising rule changes) and returns it.
pub async fn lock_tax_rules(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!("SELECT rev FROM tax_rules_revision WHERE id = 1 FOR UPDATE").fetch_one(conn).await
}

pub async fn set_tax_rules_rev(conn: &mut PgConnection, rev: i64) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE tax_rules_revision SET rev = $1 WHERE id = 1", rev).execute(conn).await.map(|_| ())
}

/// Raises the rules' revision to `rev` unless it is there already (waits for a change in
/// progress); the new revision if it moved.
pub async fn catch_up_tax_rules(pool: &PgPool, rev: i64) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar!("UPDATE tax_rules_revision SET rev = $1 WHERE id = 1 AND rev < $1 RETURNING rev", rev)
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
    sqlx::query!(
        "INSERT INTO tax_rules (category, effective_from, components, rev, scheduled_by, reason)
         VALUES ($1, $2, $3, $4, $5, $6)",
        rule.category.as_str(),
        rule.effective_from,
        components,
        rev,
        by,
        reason,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The last business date this service recorded a payout of the tax category on.
pub async fn category_paid_on(
    conn: &mut PgConnection,
    category: TaxCategory,
) -> Result<Option<NaiveDate>, sqlx::Error> {
    sqlx::query_scalar!("SELECT max(business_date) FROM payouts WHERE tax_category = $1", category.as_str())
        .fetch_one(conn)
        .await
}
