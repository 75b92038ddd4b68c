//! SQL for withholding records, the consumer's positions and dead letters. Every statement is
//! checked against the schema at compile time (`sqlx::query!` and friends, with the offline
//! metadata in `.sqlx/`).

use chrono::NaiveDate;
use contracts::{MonthlyReport, TaxWithholdingEvent, Withholding};
use domain::{TaxBreakdown, TaxCategory};
use sqlx::PgPool;
use uuid::Uuid;

pub struct Source<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

/// Returns false when the payout already had its record (a redelivery).
pub async fn insert_withholding(pool: &PgPool, e: &TaxWithholdingEvent, src: &Source<'_>) -> Result<bool, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    Ok(insert_withholdings(&mut conn, &[(e.clone(), Source { ..*src })]).await? == 1)
}

/// Records the withholdings and moves the consumer's positions past their messages, atomically.
/// Returns how many were new (the rest were redeliveries).
pub async fn consume_withholdings(
    pool: &PgPool,
    records: &[(TaxWithholdingEvent, Source<'_>)],
) -> Result<usize, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let fresh = insert_withholdings(&mut tx, records).await? as usize;
    let mut last: std::collections::BTreeMap<(&str, i32), &Source<'_>> = std::collections::BTreeMap::new();
    for (_, src) in records {
        let at = last.entry((src.topic, src.partition)).or_insert(src);
        if src.offset > at.offset {
            *at = src;
        }
    }
    for src in last.values() {
        advance(&mut tx, src).await?;
    }
    tx.commit().await?;
    Ok(fresh)
}

async fn advance(conn: &mut sqlx::PgConnection, src: &Source<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO consumer_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)
         ON CONFLICT (topic, partition) DO UPDATE SET next_offset = GREATEST(consumer_offsets.next_offset, EXCLUDED.next_offset)",
        src.topic,
        src.partition,
        src.offset + 1,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Where to resume each of `partitions` (`(topic, partition)`); a partition never consumed has none.
pub async fn positions(
    pool: &PgPool,
    partitions: &[(String, i32)],
) -> Result<std::collections::HashMap<(String, i32), i64>, sqlx::Error> {
    let topics: Vec<String> = partitions.iter().map(|p| p.0.clone()).collect();
    let numbers: Vec<i32> = partitions.iter().map(|p| p.1).collect();
    let rows = sqlx::query!(
        "SELECT o.topic, o.partition, o.next_offset FROM consumer_offsets o
         JOIN unnest($1::text[], $2::int4[]) AS w(topic, partition) USING (topic, partition)",
        &topics,
        &numbers,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| ((r.topic, r.partition), r.next_offset)).collect())
}

/// Inserts the records in one statement; a payout that already has its record keeps it. Returns
/// how many were new.
async fn insert_withholdings(
    conn: &mut sqlx::PgConnection,
    records: &[(TaxWithholdingEvent, Source<'_>)],
) -> Result<u64, sqlx::Error> {
    let e = || records.iter().map(|(e, _)| e);
    let src = || records.iter().map(|(_, s)| s);
    sqlx::query!(
        "INSERT INTO withholdings (payout_id, event_id, account_id, customer_id, business_date, gross, income_tax,
            local_tax, rural_special_tax, tax_category, occurred_at, source_topic, source_partition, source_offset)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::date[], $6::int8[], $7::int8[],
            $8::int8[], $9::int8[], $10::text[], $11::timestamptz[], $12::text[], $13::int4[], $14::int8[])
         ON CONFLICT (payout_id) DO NOTHING",
        &e().map(|e| e.payout_id).collect::<Vec<_>>(),
        &e().map(|e| e.event_id).collect::<Vec<_>>(),
        &e().map(|e| e.account_id).collect::<Vec<_>>(),
        &e().map(|e| e.customer_id).collect::<Vec<_>>(),
        &e().map(|e| e.business_date).collect::<Vec<_>>(),
        &e().map(|e| e.gross).collect::<Vec<_>>(),
        &e().map(|e| e.taxes.income_tax).collect::<Vec<_>>(),
        &e().map(|e| e.taxes.local_tax).collect::<Vec<_>>(),
        &e().map(|e| e.taxes.rural_special_tax).collect::<Vec<_>>(),
        &e().map(|e| e.tax_category.as_str().to_string()).collect::<Vec<_>>(),
        &e().map(|e| e.occurred_at).collect::<Vec<_>>(),
        &src().map(|s| s.topic.to_string()).collect::<Vec<_>>(),
        &src().map(|s| s.partition).collect::<Vec<_>>(),
        &src().map(|s| s.offset).collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map(|r| r.rows_affected())
}

/// A `withholdings` row as selected.
struct WithholdingRow {
    payout_id: Uuid,
    event_id: Uuid,
    account_id: Uuid,
    customer_id: Uuid,
    business_date: NaiveDate,
    gross: i64,
    income_tax: i64,
    local_tax: i64,
    rural_special_tax: i64,
    tax_category: String,
    occurred_at: chrono::DateTime<chrono::Utc>,
    recorded_at: chrono::DateTime<chrono::Utc>,
}

impl TryFrom<WithholdingRow> for Withholding {
    type Error = sqlx::Error;

    fn try_from(r: WithholdingRow) -> Result<Self, Self::Error> {
        Ok(Withholding {
            tax_category: TaxCategory::parse(&r.tax_category)
                .ok_or_else(|| sqlx::Error::Decode(format!("tax_category {}", r.tax_category).into()))?,
            taxes: TaxBreakdown {
                income_tax: r.income_tax,
                local_tax: r.local_tax,
                rural_special_tax: r.rural_special_tax,
            },
            payout_id: r.payout_id,
            event_id: r.event_id,
            account_id: r.account_id,
            customer_id: r.customer_id,
            business_date: r.business_date,
            gross: r.gross,
            occurred_at: r.occurred_at,
            recorded_at: r.recorded_at,
        })
    }
}

pub async fn withholdings(
    pool: &PgPool,
    account: Option<Uuid>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Withholding>, sqlx::Error> {
    sqlx::query_as!(
        WithholdingRow,
        "SELECT payout_id, event_id, account_id, customer_id, business_date, gross, income_tax, local_tax,
                rural_special_tax, tax_category, occurred_at, recorded_at
         FROM withholdings
         WHERE ($1::uuid IS NULL OR account_id = $1) AND ($2::date IS NULL OR business_date >= $2)
           AND ($3::date IS NULL OR business_date <= $3) AND ($4::uuid IS NULL OR payout_id > $4)
         ORDER BY payout_id LIMIT $5",
        account,
        from,
        to,
        after,
        limit,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(Withholding::try_from)
    .collect()
}

pub async fn monthly(
    pool: &PgPool,
    month: &str,
    first: NaiveDate,
    next: NaiveDate,
    due: NaiveDate,
) -> Result<MonthlyReport, sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "payouts!", COALESCE(sum(gross), 0)::int8 AS "gross!",
                  COALESCE(sum(income_tax), 0)::int8 AS "income_tax!", COALESCE(sum(local_tax), 0)::int8 AS "local_tax!",
                  COALESCE(sum(rural_special_tax), 0)::int8 AS "rural_special_tax!"
           FROM withholdings WHERE business_date >= $1 AND business_date < $2"#,
        first,
        next,
    )
    .fetch_one(pool)
    .await?;
    let taxes =
        TaxBreakdown { income_tax: r.income_tax, local_tax: r.local_tax, rural_special_tax: r.rural_special_tax };
    Ok(MonthlyReport {
        month: month.to_string(),
        payouts: r.payouts,
        gross: r.gross,
        taxes,
        total_tax: taxes.total(),
        due_date: due,
    })
}

pub struct DeadLetter<'a> {
    pub source: Source<'a>,
    pub key: Option<&'a str>,
    pub payload: &'a str,
    pub headers: serde_json::Value,
    pub error: &'a str,
    pub attempts: i32,
}

/// Stores the dead letter and moves the consumer's position past it, atomically.
pub async fn insert_dead_letter(pool: &PgPool, d: &DeadLetter<'_>) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO dead_letters (source_topic, source_partition, source_offset, message_key, payload, headers, error, attempts)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8) ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING",
        d.source.topic,
        d.source.partition,
        d.source.offset,
        d.key,
        d.payload,
        &d.headers,
        d.error,
        d.attempts,
    )
    .execute(&mut *tx)
    .await?;
    advance(&mut tx, &d.source).await?;
    tx.commit().await
}

pub async fn dead_letters(pool: &PgPool, after_id: i64, limit: i64) -> Result<Vec<contracts::DeadLetter>, sqlx::Error> {
    let letters = sqlx::query_scalar!(
        r#"SELECT json_build_object('id', id, 'source_topic', source_topic, 'source_partition', source_partition,
            'source_offset', source_offset, 'key', message_key, 'payload', payload, 'headers', headers, 'error', error,
            'attempts', attempts, 'created_at', created_at, 'replayed_at', replayed_at, 'replayed_by', replayed_by,
            'replay_result', replay_result,
            'replays', (SELECT COALESCE(json_agg(json_build_object('replayed_by', r.replayed_by,
                          'replayed_at', r.replayed_at, 'result', r.result) ORDER BY r.replayed_at), '[]')
                        FROM dead_letter_replays r WHERE r.dead_letter_id = d.id)) AS "letter!"
         FROM dead_letters d WHERE id > $1 ORDER BY id LIMIT $2"#,
        after_id,
        limit,
    )
    .fetch_all(pool)
    .await?;
    letters.into_iter().map(|j| serde_json::from_value(j).map_err(|e| sqlx::Error::Decode(Box::new(e)))).collect()
}

pub struct StoredDeadLetter {
    pub id: i64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: String,
}

pub async fn dead_letters_for_replay(pool: &PgPool, ids: Option<&[i64]>) -> Result<Vec<StoredDeadLetter>, sqlx::Error> {
    sqlx::query_as!(
        StoredDeadLetter,
        r#"SELECT id, source_topic AS topic, source_partition AS partition, source_offset AS offset, payload
           FROM dead_letters WHERE ($1::int8[] IS NULL OR id = ANY($1)) ORDER BY id LIMIT 10000"#,
        ids,
    )
    .fetch_all(pool)
    .await
}

/// Records a replay in the history and as the letter's latest.
pub async fn mark_replayed(pool: &PgPool, id: i64, by: &str, result: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH h AS (INSERT INTO dead_letter_replays (dead_letter_id, replayed_by, result) VALUES ($1, $2, $3))
         UPDATE dead_letters SET replayed_at = now(), replayed_by = $2, replay_result = $3 WHERE id = $1",
        id,
        by,
        result,
    )
    .execute(pool)
    .await
    .map(|_| ())
}

/// Keeps the `tax_dead_letters_unreplayed` gauge (the "dead letters present" alert) current.
pub async fn count_dead_letters(pool: PgPool) {
    loop {
        let n = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM dead_letters WHERE replayed_at IS NULL"#)
            .fetch_one(&pool)
            .await;
        if let Ok(n) = n {
            metrics::gauge!("tax_dead_letters_unreplayed").set(n as f64);
        }
        tokio::time::sleep(std::time::Duration::from_secs(15)).await;
    }
}
