//! SQL for payouts (which double as the tax-event outbox: `outbox` reads and marks these rows)
//! and the refusals kept against their keys.

use chrono::NaiveDate;
use contracts::{InterestPosting, Payout};
use domain::{TaxBreakdown, TaxCategory, Withheld};
use sqlx::{PgConnection, PgPool, Row};
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

const PAYOUT_COLUMNS: &str = "payout_id, account_id, customer_id, business_date, period_from, period_to, gross, income_tax,
    local_tax, rural_special_tax, net, tax_category, carry_units, balance_after, entry_id, created_at, idempotency_key, request_hash";

/// The taxes of a row with `income_tax`, `local_tax` and `rural_special_tax` columns.
pub fn taxes(r: &sqlx::postgres::PgRow) -> Result<TaxBreakdown, sqlx::Error> {
    Ok(TaxBreakdown {
        income_tax: r.try_get("income_tax")?,
        local_tax: r.try_get("local_tax")?,
        rural_special_tax: r.try_get("rural_special_tax")?,
    })
}

/// A row's `gross`, taxes and `net`, read back only if they balance.
pub fn amounts(r: &sqlx::postgres::PgRow) -> Result<Withheld, sqlx::Error> {
    Withheld::with_net(r.try_get("gross")?, taxes(r)?, r.try_get("net")?).map_err(|e| sqlx::Error::Decode(e.into()))
}

fn to_payout(r: &sqlx::postgres::PgRow) -> Result<StoredPayout, sqlx::Error> {
    let category: String = r.try_get("tax_category")?;
    Ok(StoredPayout {
        payout: Payout {
            payout_id: r.try_get("payout_id")?,
            account_id: r.try_get("account_id")?,
            customer_id: r.try_get("customer_id")?,
            business_date: r.try_get("business_date")?,
            period_from: r.try_get("period_from")?,
            period_to: r.try_get("period_to")?,
            amounts: amounts(r)?,
            tax_category: TaxCategory::parse(&category).ok_or_else(|| sqlx::Error::Decode(category.into()))?,
            carry_units: r.try_get("carry_units")?,
            balance_after: r.try_get("balance_after")?,
            entry_id: r.try_get("entry_id")?,
            created_at: r.try_get("created_at")?,
        },
        request_hash: r.try_get("request_hash")?,
    })
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

/// One lookup for both kinds of kept answer (a payout wins if, exceptionally, both exist; of two
/// payouts under one key — the legacy core reused a key of this system's — the first).
pub async fn prior_outcome(pool: &PgPool, account_id: Uuid, key: &str) -> Result<Option<PriorOutcome>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT p.*, r.request_hash AS refused_hash, r.status AS refused_status, r.code AS refused_code,
                r.detail AS refused_detail
         FROM (SELECT 1) one
         LEFT JOIN (SELECT {PAYOUT_COLUMNS} FROM payouts WHERE account_id = $1 AND idempotency_key = $2
                    ORDER BY business_date LIMIT 1) p ON true
         LEFT JOIN payout_refusals r ON r.account_id = $1 AND r.idempotency_key = $2"
    ))
    .bind(account_id)
    .bind(key)
    .fetch_one(pool)
    .await?;
    if row.try_get::<Option<Uuid>, _>("payout_id")?.is_some() {
        return Ok(Some(PriorOutcome::Paid(to_payout(&row)?)));
    }
    let Some(request_hash) = row.try_get::<Option<String>, _>("refused_hash")? else { return Ok(None) };
    Ok(Some(PriorOutcome::Refused(StoredRefusal {
        request_hash,
        status: row.try_get("refused_status")?,
        code: row.try_get("refused_code")?,
        detail: row.try_get("refused_detail")?,
    })))
}

/// Keeps a refusal against its key; the first one kept stays.
pub async fn record_refusal(pool: &PgPool, account_id: Uuid, key: &str, r: &StoredRefusal) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO payout_refusals (account_id, idempotency_key, request_hash, status, code, detail)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(account_id)
    .bind(key)
    .bind(&r.request_hash)
    .bind(r.status)
    .bind(&r.code)
    .bind(&r.detail)
    .execute(pool)
    .await
    .map(|_| ())
}

pub async fn last_payout(pool: &PgPool, account_id: Uuid) -> Result<Option<Payout>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE account_id = $1 ORDER BY business_date DESC LIMIT 1"
    ))
    .bind(account_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.as_ref().map(to_payout).transpose()?.map(|p| p.payout))
}

pub async fn payouts(pool: &PgPool, account_id: Uuid) -> Result<Vec<Payout>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts WHERE account_id = $1 ORDER BY business_date DESC LIMIT 1000"
    ))
    .bind(account_id)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| to_payout(r).map(|p| p.payout)).collect()
}

/// Payouts with a business date in `[from, to]`, keyset-paged by payout id.
pub async fn payouts_between(
    pool: &PgPool,
    from: NaiveDate,
    to: NaiveDate,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Payout>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {PAYOUT_COLUMNS} FROM payouts
         WHERE business_date BETWEEN $1 AND $2 AND ($3::uuid IS NULL OR payout_id > $3)
         ORDER BY payout_id LIMIT $4"
    ))
    .bind(from)
    .bind(to)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| to_payout(r).map(|p| p.payout)).collect()
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
    sqlx::query(
        "INSERT INTO payouts (payout_id, account_id, customer_id, product_code, business_date, period_from, period_to,
            gross, income_tax, local_tax, rural_special_tax, net, tax_category, carry_in_units, carry_units,
            balance_after, entry_id, idempotency_key, request_hash, created_at, tax_event_id, trace_headers)
         SELECT *, $21::jsonb FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::date[], $6::date[],
            $7::date[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], $13::text[], $14::int8[],
            $15::int8[], $16::int8[], $17::uuid[], $18::text[], $19::text[], $20::timestamptz[], $22::uuid[])
         ON CONFLICT (payout_id) DO NOTHING",
    )
    .bind(reqs().map(|r| r.payout_id).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.account_id).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.customer_id).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.product_code.as_str()).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.business_date).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.period_from).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.period_to).collect::<Vec<_>>())
    .bind(col(&|p| p.request.amounts.gross()))
    .bind(col(&|p| p.request.amounts.taxes().income_tax))
    .bind(col(&|p| p.request.amounts.taxes().local_tax))
    .bind(col(&|p| p.request.amounts.taxes().rural_special_tax))
    .bind(col(&|p| p.request.amounts.net()))
    .bind(reqs().map(|r| r.tax_category.as_str()).collect::<Vec<_>>())
    .bind(col(&|p| p.request.carry_in_units))
    .bind(col(&|p| p.request.carry_out_units))
    .bind(col(&|p| p.balance_after))
    .bind(postings.iter().map(|p| p.entry_id).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.idempotency_key.as_str()).collect::<Vec<_>>())
    .bind(reqs().map(|r| r.request_hash.as_str()).collect::<Vec<_>>())
    .bind(postings.iter().map(|p| p.posted_at).collect::<Vec<_>>())
    .bind(trace_headers)
    .bind(reqs().map(|r| tax_event_id(r.payout_id)).collect::<Vec<_>>())
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
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
    insert_payouts(&mut tx, postings, trace_headers).await?;
    tx.commit().await
}

/// Which of `(account, key)` pairs already have an answer (a payout or a kept refusal).
pub async fn answered(pool: &PgPool, accounts: &[Uuid], keys: &[String]) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT q.account_id FROM unnest($1::uuid[], $2::text[]) AS q(account_id, key)
         WHERE EXISTS (SELECT 1 FROM payouts p WHERE p.account_id = q.account_id AND p.idempotency_key = q.key)
            OR EXISTS (SELECT 1 FROM payout_refusals r WHERE r.account_id = q.account_id AND r.idempotency_key = q.key)",
    )
    .bind(accounts)
    .bind(keys)
    .fetch_all(pool)
    .await
}

/// The last recorded payout of each of `ids` that has one.
pub async fn last_payouts(pool: &PgPool, ids: &[Uuid]) -> Result<std::collections::HashMap<Uuid, Payout>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT DISTINCT ON (account_id) {PAYOUT_COLUMNS} FROM payouts WHERE account_id = ANY($1)
         ORDER BY account_id, business_date DESC"
    ))
    .bind(ids)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| to_payout(r).map(|p| (p.payout.account_id, p.payout))).collect()
}
