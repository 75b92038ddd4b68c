//! SQL for payouts (which double as the tax-event outbox: `outbox` reads and marks these rows)
//! and the refusals kept against their keys. Every statement is checked against the schema at
//! compile time (`sqlx::query!` and friends, with the offline metadata in `.sqlx/`).

use chrono::{DateTime, NaiveDate, Utc};
use contracts::{InterestPosting, Payout};
use domain::{TaxBreakdown, TaxCategory, Withheld};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Tax event ids derive from the payout id so a payout recorded twice (fast path and recovery)
/// carries one event id.
pub fn tax_event_id(payout_id: Uuid) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("tax.withholding.v1/{payout_id}").as_bytes())
}

pub struct StoredPayout {
    pub payout: Payout,
    pub request_hash: String,
}

/// A row's `gross`, taxes and `net`, read back only if they balance.
pub fn amounts(gross: i64, taxes: TaxBreakdown, net: i64) -> Result<Withheld, sqlx::Error> {
    Withheld::with_net(gross, taxes, net).map_err(|e| sqlx::Error::Decode(e.into()))
}

/// A `payouts` row as the reads select it (every one selects these columns).
struct PayoutRow {
    payout_id: Uuid,
    account_id: Uuid,
    customer_id: Uuid,
    business_date: NaiveDate,
    period_from: NaiveDate,
    period_to: NaiveDate,
    gross: i64,
    income_tax: i64,
    local_tax: i64,
    rural_special_tax: i64,
    net: i64,
    tax_category: String,
    carry_units: i64,
    balance_after: i64,
    entry_id: Uuid,
    created_at: DateTime<Utc>,
    request_hash: String,
}

impl TryFrom<PayoutRow> for StoredPayout {
    type Error = sqlx::Error;

    fn try_from(r: PayoutRow) -> Result<Self, Self::Error> {
        let taxes =
            TaxBreakdown { income_tax: r.income_tax, local_tax: r.local_tax, rural_special_tax: r.rural_special_tax };
        Ok(StoredPayout {
            payout: Payout {
                payout_id: r.payout_id,
                account_id: r.account_id,
                customer_id: r.customer_id,
                business_date: r.business_date,
                period_from: r.period_from,
                period_to: r.period_to,
                amounts: amounts(r.gross, taxes, r.net)?,
                tax_category: TaxCategory::parse(&r.tax_category)
                    .ok_or_else(|| sqlx::Error::Decode(r.tax_category.into()))?,
                carry_units: r.carry_units,
                balance_after: r.balance_after,
                entry_id: r.entry_id,
                created_at: r.created_at,
            },
            request_hash: r.request_hash,
        })
    }
}

/// The payout of a row as selected.
fn to_payout(r: PayoutRow) -> Result<Payout, sqlx::Error> {
    StoredPayout::try_from(r).map(|p| p.payout)
}

/// A refused payout request, as first answered.
pub struct StoredRefusal {
    pub request_hash: String,
    pub status: i16,
    pub code: String,
    pub detail: String,
}

/// What a payout request with this Idempotency-Key was first answered, if anything was kept.
pub enum PriorOutcome {
    Paid(StoredPayout),
    Refused(StoredRefusal),
}

/// The row of [`prior_outcome`]: the key's first payout and its kept refusal, each NULL when there
/// is none (both sides are outer-joined to one row).
struct PriorRow {
    payout_id: Option<Uuid>,
    account_id: Option<Uuid>,
    customer_id: Option<Uuid>,
    business_date: Option<NaiveDate>,
    period_from: Option<NaiveDate>,
    period_to: Option<NaiveDate>,
    gross: Option<i64>,
    income_tax: Option<i64>,
    local_tax: Option<i64>,
    rural_special_tax: Option<i64>,
    net: Option<i64>,
    tax_category: Option<String>,
    carry_units: Option<i64>,
    balance_after: Option<i64>,
    entry_id: Option<Uuid>,
    created_at: Option<DateTime<Utc>>,
    request_hash: Option<String>,
    refused_hash: Option<String>,
    refused_status: Option<i16>,
    refused_code: Option<String>,
    refused_detail: Option<String>,
}

impl PriorRow {
    /// The payout's columns, all present (`None` if any is NULL: there is no payout).
    fn payout(&mut self) -> Option<PayoutRow> {
        Some(PayoutRow {
            payout_id: self.payout_id?,
            account_id: self.account_id?,
            customer_id: self.customer_id?,
            business_date: self.business_date?,
            period_from: self.period_from?,
            period_to: self.period_to?,
            gross: self.gross?,
            income_tax: self.income_tax?,
            local_tax: self.local_tax?,
            rural_special_tax: self.rural_special_tax?,
            net: self.net?,
            tax_category: self.tax_category.take()?,
            carry_units: self.carry_units?,
            balance_after: self.balance_after?,
            entry_id: self.entry_id?,
            created_at: self.created_at?,
            request_hash: self.request_hash.take()?,
        })
    }

    /// The refusal's columns, all present (`None` if any is NULL: there is no refusal).
    fn refusal(self) -> Option<StoredRefusal> {
        Some(StoredRefusal {
            request_hash: self.refused_hash?,
            status: self.refused_status?,
            code: self.refused_code?,
            detail: self.refused_detail?,
        })
    }
}

/// One lookup for both kinds of kept answer (a payout wins if, exceptionally, both exist; of two
/// payouts under one key — the legacy core reused a key of this system's — the first).
pub async fn prior_outcome(pool: &PgPool, account_id: Uuid, key: &str) -> Result<Option<PriorOutcome>, sqlx::Error> {
    let mut row = sqlx::query_as!(
        PriorRow,
        r#"SELECT p.payout_id AS "payout_id?", p.account_id AS "account_id?", p.customer_id AS "customer_id?",
                  p.business_date AS "business_date?", p.period_from AS "period_from?", p.period_to AS "period_to?",
                  p.gross AS "gross?", p.income_tax AS "income_tax?", p.local_tax AS "local_tax?",
                  p.rural_special_tax AS "rural_special_tax?", p.net AS "net?", p.tax_category AS "tax_category?",
                  p.carry_units AS "carry_units?", p.balance_after AS "balance_after?", p.entry_id AS "entry_id?",
                  p.created_at AS "created_at?", p.request_hash AS "request_hash?",
                  r.request_hash AS "refused_hash?", r.status AS "refused_status?", r.code AS "refused_code?",
                  r.detail AS "refused_detail?"
           FROM (SELECT 1) one
           LEFT JOIN (SELECT payout_id, account_id, customer_id, business_date, period_from, period_to, gross,
                             income_tax, local_tax, rural_special_tax, net, tax_category, carry_units, balance_after,
                             entry_id, created_at, idempotency_key, request_hash
                      FROM payouts WHERE account_id = $1 AND idempotency_key = $2
                      ORDER BY business_date LIMIT 1) p ON true
           LEFT JOIN payout_refusals r ON r.account_id = $1 AND r.idempotency_key = $2"#,
        account_id,
        key,
    )
    .fetch_one(pool)
    .await?;
    if row.payout_id.is_some() {
        let paid = row.payout().ok_or_else(|| sqlx::Error::Decode("payout with a NULL column".into()))?;
        return Ok(Some(PriorOutcome::Paid(paid.try_into()?)));
    }
    if row.refused_hash.is_none() {
        return Ok(None);
    }
    let refused = row.refusal().ok_or_else(|| sqlx::Error::Decode("refusal with a NULL column".into()))?;
    Ok(Some(PriorOutcome::Refused(refused)))
}

/// Keeps a refusal against its key; the first one kept stays.
pub async fn record_refusal(pool: &PgPool, account_id: Uuid, key: &str, r: &StoredRefusal) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO payout_refusals (account_id, idempotency_key, request_hash, status, code, detail)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        account_id,
        key,
        r.request_hash,
        r.status,
        r.code,
        r.detail,
    )
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn last_payout(pool: &PgPool, account_id: Uuid) -> Result<Option<Payout>, sqlx::Error> {
    sqlx::query_as!(
        PayoutRow,
        "SELECT payout_id, account_id, customer_id, business_date, period_from, period_to, gross, income_tax,
                local_tax, rural_special_tax, net, tax_category, carry_units, balance_after, entry_id, created_at,
                request_hash
         FROM payouts WHERE account_id = $1 ORDER BY business_date DESC LIMIT 1",
        account_id,
    )
    .fetch_optional(pool)
    .await?
    .map(to_payout)
    .transpose()
}

pub async fn payouts(pool: &PgPool, account_id: Uuid) -> Result<Vec<Payout>, sqlx::Error> {
    sqlx::query_as!(
        PayoutRow,
        "SELECT payout_id, account_id, customer_id, business_date, period_from, period_to, gross, income_tax,
                local_tax, rural_special_tax, net, tax_category, carry_units, balance_after, entry_id, created_at,
                request_hash
         FROM payouts WHERE account_id = $1 ORDER BY business_date DESC LIMIT 1000",
        account_id,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(to_payout)
    .collect()
}

/// Payouts with a business date in `[from, to]`, keyset-paged by payout id.
pub async fn payouts_between(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Payout>, sqlx::Error> {
    sqlx::query_as!(
        PayoutRow,
        "SELECT payout_id, account_id, customer_id, business_date, period_from, period_to, gross, income_tax,
                local_tax, rural_special_tax, net, tax_category, carry_units, balance_after, entry_id, created_at,
                request_hash
         FROM payouts
         WHERE business_date BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR payout_id > $3)
         ORDER BY payout_id LIMIT $4",
        from,
        to,
        after,
        limit,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(to_payout)
    .collect()
}

pub fn payout_from_posting(p: &InterestPosting) -> Payout {
    let r = &p.request;
    Payout {
        payout_id: r.payout_id,
        account_id: r.account_id,
        customer_id: r.customer_id,
        business_date: r.business_date,
        period_from: r.period_from,
        period_to: r.period_to,
        amounts: r.amounts,
        tax_category: r.tax_category,
        carry_units: r.carry_out_units,
        balance_after: p.balance_after,
        entry_id: p.entry_id,
        created_at: p.posted_at,
    }
}

/// Inserts a payout (and so its tax event) unless it is recorded already; the rows inserted.
pub async fn insert_payout(
    conn: &mut PgConnection,
    p: &InterestPosting,
    trace_headers: &serde_json::Value,
) -> Result<u64, sqlx::Error> {
    insert_payouts(conn, std::slice::from_ref(p), trace_headers).await
}

/// Inserts payouts (each also its tax event's outbox entry) in one statement; one already recorded
/// (the same payout id) is left as it is. Every payout the ledger booked is recorded, whatever key
/// it came with.
async fn insert_payouts(
    conn: &mut PgConnection,
    postings: &[InterestPosting],
    trace_headers: &serde_json::Value,
) -> Result<u64, sqlx::Error> {
    let col = |f: &dyn Fn(&InterestPosting) -> i64| postings.iter().map(f).collect::<Vec<i64>>();
    let reqs = || postings.iter().map(|p| &p.request);
    sqlx::query!(
        "INSERT INTO payouts (payout_id, account_id, customer_id, product_code, business_date, period_from, period_to,
            gross, income_tax, local_tax, rural_special_tax, net, tax_category, carry_in_units, carry_units,
            balance_after, entry_id, idempotency_key, request_hash, created_at, tax_event_id, trace_headers)
         SELECT *, $21::jsonb FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::date[], $6::date[],
            $7::date[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::text[], $14::int8[],
            $15::int8[], $16::int8[], $17::uuid[], $18::text[], $19::text[], $20::timestamptz[], $22::uuid[])
         ON CONFLICT (payout_id) DO NOTHING",
        &reqs().map(|r| r.payout_id).collect::<Vec<_>>(),
        &reqs().map(|r| r.account_id).collect::<Vec<_>>(),
        &reqs().map(|r| r.customer_id).collect::<Vec<_>>(),
        &reqs().map(|r| r.product_code.as_str()).collect::<Vec<_>>() as &[&str],
        &reqs().map(|r| r.business_date).collect::<Vec<_>>(),
        &reqs().map(|r| r.period_from).collect::<Vec<_>>(),
        &reqs().map(|r| r.period_to).collect::<Vec<_>>(),
        &col(&|p| p.request.amounts.gross()),
        &col(&|p| p.request.amounts.taxes().income_tax),
        &col(&|p| p.request.amounts.taxes().local_tax),
        &col(&|p| p.request.amounts.taxes().rural_special_tax),
        &col(&|p| p.request.amounts.net()),
        &reqs().map(|r| r.tax_category.as_str()).collect::<Vec<_>>() as &[&str],
        &col(&|p| p.request.carry_in_units),
        &col(&|p| p.request.carry_out_units),
        &col(&|p| p.balance_after),
        &postings.iter().map(|p| p.entry_id).collect::<Vec<_>>(),
        &reqs().map(|r| r.idempotency_key.as_str()).collect::<Vec<_>>() as &[&str],
        &reqs().map(|r| r.request_hash.as_str()).collect::<Vec<_>>() as &[&str],
        &postings.iter().map(|p| p.posted_at).collect::<Vec<_>>(),
        trace_headers,
        &reqs().map(|r| tax_event_id(r.payout_id)).collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map(|r| r.rows_affected())
}

/// Records payouts the ledger booked (each also its tax event) in one commit. Idempotent. The
/// commit need not be durable: if the database loses it, the recovery worker re-reads them from the
/// ledger's feed.
pub async fn record_payouts(
    pool: &PgPool,
    postings: &[InterestPosting],
    trace_headers: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    // BEGIN and the commit's mode in one round trip (one simple query).
    let mut tx = pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off").await?;
    insert_payouts(&mut tx, postings, trace_headers).await?;
    tx.commit().await
}

/// Which of `(account, key)` pairs already have an answer (a payout or a kept refusal).
pub async fn answered(pool: &PgPool, accounts: &[Uuid], keys: &[String]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT q.account_id AS "account_id!" FROM unnest($1::uuid[], $2::text[]) AS q(account_id, key)
         WHERE EXISTS (SELECT 1 FROM payouts p WHERE p.account_id = q.account_id AND p.idempotency_key = q.key)
            OR EXISTS (SELECT 1 FROM payout_refusals r WHERE r.account_id = q.account_id AND r.idempotency_key = q.key)"#,
        accounts,
        keys,
    )
    .fetch_all(pool)
    .await
}

/// The last recorded payout of each of `ids` that has one.
pub async fn last_payouts(pool: &PgPool, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, Payout>, sqlx::Error> {
    sqlx::query_as!(
        PayoutRow,
        "SELECT DISTINCT ON (account_id) payout_id, account_id, customer_id, business_date, period_from, period_to,
                gross, income_tax, local_tax, rural_special_tax, net, tax_category, carry_units, balance_after,
                entry_id, created_at, request_hash
         FROM payouts WHERE account_id = ANY($1)
         ORDER BY account_id, business_date DESC",
        ids,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| to_payout(r).map(|p| (p.account_id, p)))
    .collect()
}
