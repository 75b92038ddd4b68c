//! SQL for the ledger. Functions take a connection inside the caller's transaction. Every
//! statement is checked against the schema at compile time (`sqlx::query!` and friends, with the
//! offline metadata in `.sqlx/`), except the journal's lookups by account and key, which the plan
//! tests in `store_plans.rs` also run (their text is shared: `query_as` into [`PostingRow`]).

use chrono::NaiveDate;
use contracts::{BalancePoint, Entry, EntryLine, InterestPosting, InterestPostingRequest};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::journal::{Entry as JournalEntry, EntryHeader};

#[derive(Clone)]
pub struct LedgerAccount {
    pub balance: i64,
    pub opened_on: NaiveDate,
    pub paid_through: Option<NaiveDate>,
    /// Bumped by every posting that changes a past day's balance and by every payout.
    pub history_rev: i64,
}

/// Begins a transaction whose lock waits (rows, fences) give up after `ms` (and are retried by the
/// caller): `BEGIN` and the timeout in one round trip (one simple query). READ COMMITTED whatever
/// the server's default: each read after a lock wait must see what committed during the wait.
pub async fn begin_waiting_at_most(
    pool: &sqlx::PgPool,
    ms: u128,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with(format!("BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = '{ms}ms'")).await
}

/// Begins a read-only transaction that sees one snapshot throughout (the balances a quote is made
/// of), in one round trip.
pub async fn begin_snapshot(pool: &sqlx::PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await
}

/// Locks the balance row; `None` if the ledger has never seen the account.
pub async fn lock_account(conn: &mut PgConnection, id: Uuid) -> Result<Option<LedgerAccount>, sqlx::Error> {
    sqlx::query_as!(
        LedgerAccount,
        "SELECT balance, opened_on, paid_through, history_rev FROM ledger_accounts WHERE account_id = $1 FOR UPDATE",
        id,
    )
    .fetch_optional(conn)
    .await
}

pub async fn find_account(conn: impl sqlx::PgExecutor<'_>, id: Uuid) -> Result<Option<LedgerAccount>, sqlx::Error> {
    sqlx::query_as!(
        LedgerAccount,
        "SELECT balance, opened_on, paid_through, history_rev FROM ledger_accounts WHERE account_id = $1",
        id,
    )
    .fetch_optional(conn)
    .await
}

/// Opens the account in the ledger (its first posting); one already open is left as it is.
pub async fn create_account(
    conn: impl sqlx::PgExecutor<'_>,
    id: Uuid,
    opened_on: NaiveDate,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO ledger_accounts (account_id, opened_on) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        id,
        opened_on
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Sets the balance of record (and `paid_through` for a payout). `changes_history` marks a change
/// to a past day or a payout, which bumps the history revision; returns that revision.
pub async fn set_balance(
    conn: &mut PgConnection,
    id: Uuid,
    balance: i64,
    paid_through: Option<NaiveDate>,
    changes_history: bool,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "UPDATE ledger_accounts SET balance = $2, paid_through = COALESCE($3, paid_through), updated_at = now(),
                history_rev = history_rev + $4::bool::int,
                history_changed_at = CASE WHEN $4::bool THEN now() ELSE history_changed_at END
         WHERE account_id = $1 RETURNING history_rev",
        id,
        balance,
        paid_through,
        changes_history,
    )
    .fetch_one(conn)
    .await
}

/// History revisions changed in the last 25 hours: the most an estimate stays cached.
pub async fn recent_history_revisions(pool: &PgPool) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT account_id, history_rev FROM ledger_accounts WHERE history_changed_at > now() - interval '25 hours'"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|r| (r.account_id, r.history_rev)).collect())
}

pub async fn insert_entry(
    conn: &mut PgConnection,
    header: &EntryHeader<'_>,
    entry: &JournalEntry,
) -> Result<(i64, chrono::DateTime<chrono::Utc>), sqlx::Error> {
    let mut inserted = insert_entries(conn, &[(header, entry)]).await?;
    inserted.pop().ok_or(sqlx::Error::RowNotFound)
}

/// An entry's columns and its lines', flattened across entries (for `UNNEST`).
struct EntryRows {
    ids: Vec<Uuid>,
    kinds: Vec<String>,
    accounts: Vec<Uuid>,
    business_dates: Vec<NaiveDate>,
    value_dates: Vec<NaiveDate>,
    balances: Vec<i64>,
    payout_ids: Vec<Option<Uuid>>,
    payout_keys: Vec<Option<String>>,
    payouts: Vec<Option<serde_json::Value>>,
    l_entries: Vec<Uuid>,
    l_nos: Vec<i16>,
    l_ledger: Vec<String>,
    l_accounts: Vec<Option<Uuid>>,
    l_debits: Vec<i64>,
    l_credits: Vec<i64>,
}

impl EntryRows {
    fn of(entries: &[(&EntryHeader<'_>, &JournalEntry)]) -> Result<Self, sqlx::Error> {
        let mut r = EntryRows {
            ids: Vec::new(),
            kinds: Vec::new(),
            accounts: Vec::new(),
            business_dates: Vec::new(),
            value_dates: Vec::new(),
            balances: Vec::new(),
            payout_ids: Vec::new(),
            payout_keys: Vec::new(),
            payouts: Vec::new(),
            l_entries: Vec::new(),
            l_nos: Vec::new(),
            l_ledger: Vec::new(),
            l_accounts: Vec::new(),
            l_debits: Vec::new(),
            l_credits: Vec::new(),
        };
        for (h, e) in entries {
            r.ids.push(h.entry_id);
            r.kinds.push(e.kind().code().to_string());
            r.accounts.push(h.account_id);
            r.business_dates.push(h.business_date);
            r.value_dates.push(h.value_date);
            r.balances.push(h.balance_after);
            r.payout_ids.push(h.payout.map(|p| p.payout_id));
            r.payout_keys.push(h.payout.map(|p| p.idempotency_key.clone()));
            r.payouts
                .push(h.payout.map(serde_json::to_value).transpose().map_err(|e| sqlx::Error::Encode(Box::new(e)))?);
            for (i, l) in e.lines().iter().enumerate() {
                r.l_entries.push(h.entry_id);
                r.l_nos.push(i as i16 + 1);
                r.l_ledger.push(l.account.code().to_string());
                r.l_accounts.push(l.customer_account);
                r.l_debits.push(l.debit);
                r.l_credits.push(l.credit);
            }
        }
        Ok(r)
    }

    /// Each entry's value from `by_id`, in the order given.
    fn in_order<T>(&self, mut by_id: std::collections::HashMap<Uuid, T>) -> Result<Vec<T>, sqlx::Error> {
        self.ids.iter().map(|id| by_id.remove(id).ok_or(sqlx::Error::RowNotFound)).collect()
    }
}

/// Inserts entries and all their lines in two statements; answers each entry's `(seq, created_at)`
/// in the order given. `created_at` is when the entry was written — under its row locks, decided,
/// just before the commit — not when its transaction began (it may have waited on a busy row).
pub async fn insert_entries(
    conn: &mut PgConnection,
    entries: &[(&EntryHeader<'_>, &JournalEntry)],
) -> Result<Vec<(i64, chrono::DateTime<chrono::Utc>)>, sqlx::Error> {
    let r = EntryRows::of(entries)?;
    let rows = sqlx::query!(
        "INSERT INTO journal_entries
            (entry_id, kind, account_id, business_date, value_date, balance_after, payout_id, payout, payout_key,
             created_at)
         SELECT u.*, clock_timestamp()
         FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::date[], $5::date[], $6::int8[], $7::uuid[], $8::jsonb[],
                     $9::text[]) u
         RETURNING entry_id, seq, created_at",
        &r.ids,
        &r.kinds,
        &r.accounts,
        &r.business_dates,
        &r.value_dates,
        &r.balances,
        &r.payout_ids as &[Option<Uuid>],
        &r.payouts as &[Option<serde_json::Value>],
        &r.payout_keys as &[Option<String>],
    )
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO journal_lines (entry_id, line_no, ledger_account, account_id, debit, credit)
         SELECT * FROM UNNEST($1::uuid[], $2::int2[], $3::text[], $4::uuid[], $5::int8[], $6::int8[])",
        &r.l_entries,
        &r.l_nos,
        &r.l_ledger,
        &r.l_accounts as &[Option<Uuid>],
        &r.l_debits,
        &r.l_credits,
    )
    .execute(&mut *conn)
    .await?;
    r.in_order(rows.into_iter().map(|row| (row.entry_id, (row.seq, row.created_at))).collect())
}

/// What a booked payout's statement answers for it.
pub struct PaidRow {
    pub seq: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The account's history revision after the payout.
    pub history_rev: i64,
}

/// A payout's change to its balance row and its end-of-day balances.
pub struct Paid {
    pub account_id: Uuid,
    pub balance_after: i64,
    pub paid_through: NaiveDate,
    /// The day the net amount is credited on (its value date).
    pub business_date: NaiveDate,
    pub net: i64,
}

/// Writes payouts (each account at most once) in one statement: each balance row's new balance,
/// paid-through date and history revision, the journal entries and all their lines, and the
/// end-of-day balances from the business date on (`apply_to_daily_balances`, called once, and its
/// count of points written checked). Answers each
/// entry's row in the order given. (The lines' references to their entries are checked at the
/// statement's end, when the entries exist.)
pub async fn book_payouts(
    conn: &mut PgConnection,
    paid: &[Paid],
    entries: &[(&EntryHeader<'_>, &JournalEntry)],
) -> Result<Vec<PaidRow>, sqlx::Error> {
    let ids: Vec<Uuid> = paid.iter().map(|c| c.account_id).collect();
    let balances: Vec<i64> = paid.iter().map(|c| c.balance_after).collect();
    let through: Vec<NaiveDate> = paid.iter().map(|c| c.paid_through).collect();
    let days: Vec<NaiveDate> = paid.iter().map(|c| c.business_date).collect();
    let nets: Vec<i64> = paid.iter().map(|c| c.net).collect();
    let r = EntryRows::of(entries)?;
    let rows = sqlx::query!(
        r#"WITH paid AS (
              UPDATE ledger_accounts a SET balance = u.balance, paid_through = u.paid, updated_at = now(),
                     history_rev = a.history_rev + 1, history_changed_at = now()
              FROM UNNEST($1::uuid[], $2::int8[], $3::date[]) AS u(id, balance, paid)
              WHERE a.account_id = u.id RETURNING a.account_id, a.history_rev),
           entries AS (
              INSERT INTO journal_entries
                  (entry_id, kind, account_id, business_date, value_date, balance_after, payout_id, payout,
                   payout_key, created_at)
              SELECT u.*, clock_timestamp()
              FROM UNNEST($4::uuid[], $5::text[], $6::uuid[], $7::date[], $8::date[], $9::int8[], $10::uuid[],
                          $11::jsonb[], $12::text[]) u
              RETURNING entry_id, account_id, seq, created_at),
           lines AS (
              INSERT INTO journal_lines (entry_id, line_no, ledger_account, account_id, debit, credit)
              SELECT * FROM UNNEST($13::uuid[], $14::int2[], $15::text[], $16::uuid[], $17::int8[], $18::int8[])),
           daily AS MATERIALIZED (SELECT apply_to_daily_balances($1, $19::date[], $20::int8[]) AS points)
           SELECT e.entry_id AS "entry_id!", e.seq AS "seq!", e.created_at AS "created_at!",
                  p.history_rev AS "history_rev!", daily.points AS "points!"
           FROM entries e JOIN paid p ON p.account_id = e.account_id CROSS JOIN daily"#,
        &ids,
        &balances,
        &through,
        &r.ids,
        &r.kinds,
        &r.accounts,
        &r.business_dates,
        &r.value_dates,
        &r.balances,
        &r.payout_ids as &[Option<Uuid>],
        &r.payouts as &[Option<serde_json::Value>],
        &r.payout_keys as &[Option<String>],
        &r.l_entries,
        &r.l_nos,
        &r.l_ledger,
        &r.l_accounts as &[Option<Uuid>],
        &r.l_debits,
        &r.l_credits,
        &days,
        &nets,
    )
    .fetch_all(&mut *conn)
    .await?;
    // Each payout writes at least its own day's point: fewer means the end-of-day balances were
    // not written (the transaction is then rolled back, not committed without them).
    if rows.iter().any(|row| row.points < paid.len() as i64) {
        return Err(sqlx::Error::Protocol("a payout's end-of-day balances were not written".into()));
    }
    r.in_order(
        rows.into_iter()
            .map(|row| {
                (row.entry_id, PaidRow { seq: row.seq, created_at: row.created_at, history_rev: row.history_rev })
            })
            .collect(),
    )
}

/// Applies `delta` to the end-of-day balances from `value_date` on.
pub async fn apply_to_daily_balances(
    conn: &mut PgConnection,
    id: Uuid,
    value_date: NaiveDate,
    delta: i64,
) -> Result<(), sqlx::Error> {
    apply_to_daily_balances_many(conn, &[(id, value_date, delta)]).await
}

/// [`apply_to_daily_balances`] for many accounts (each at most once) in one statement (the
/// function `apply_to_daily_balances`, migration 0008: the rule and why it is right are there).
pub async fn apply_to_daily_balances_many(
    conn: &mut PgConnection,
    changes: &[(Uuid, NaiveDate, i64)],
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = changes.iter().map(|c| c.0).collect();
    let days: Vec<NaiveDate> = changes.iter().map(|c| c.1).collect();
    let deltas: Vec<i64> = changes.iter().map(|c| c.2).collect();
    sqlx::query_scalar!(r#"SELECT apply_to_daily_balances($1, $2, $3) AS "points!""#, &ids, &days, &deltas)
        .fetch_one(conn)
        .await?;
    Ok(())
}

/// Whether [`lock_booking_inputs`] waits for a balance row another transaction holds.
#[derive(Clone, Copy)]
pub enum BusyRows {
    /// Waits (within the transaction's lock timeout): a booking alone.
    Wait,
    /// Leaves it out (`BookingInputs::busy`): a batch, which must not be held up by one account.
    Skip,
}

/// What bookings are decided on, read under their locks: the locked balance rows, the accounts
/// left out because another transaction holds them, the fences of the locked accounts (held
/// shared until the transaction ends), the payouts booked on each request's business date and
/// under each request's key, and the end-of-day balances of each request's period.
pub struct BookingInputs {
    pub accounts: std::collections::HashMap<Uuid, LedgerAccount>,
    pub busy: std::collections::HashSet<Uuid>,
    pub fences: std::collections::HashMap<String, i64>,
    /// The payout booked on the request's business date, by account.
    pub on: PostingsOf,
    /// The payout booked under the request's key (a key names one payout, whatever day), by account.
    pub under: PostingsOf,
    pub points: std::collections::HashMap<Uuid, Vec<BalancePoint>>,
}

/// Locks the balance rows of the requests' accounts (each account at most once), takes their
/// fences and reads what [`BookingInputs`] holds, in one round trip (the function
/// `booking_inputs`, migration 0008, whose reads follow the lock waits; each row is one of five
/// kinds, with that kind's columns).
pub async fn lock_booking_inputs(
    conn: &mut PgConnection,
    reqs: &[&InterestPostingRequest],
    busy: BusyRows,
) -> Result<BookingInputs, sqlx::Error> {
    let ids: Vec<Uuid> = reqs.iter().map(|r| r.account_id).collect();
    debug_assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), ids.len(), "each account once");
    let mut days: Vec<NaiveDate> = reqs.iter().map(|r| r.business_date).collect();
    days.sort_unstable();
    days.dedup();
    let mut keys: Vec<&str> = reqs.iter().map(|r| r.idempotency_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    let froms: Vec<NaiveDate> = reqs.iter().map(|r| r.period_from).collect();
    let tos: Vec<NaiveDate> = reqs.iter().map(|r| r.period_to).collect();
    let (subjects, subject_accounts): (Vec<String>, Vec<Uuid>) =
        reqs.iter().flat_map(|r| r.fenced().into_iter().map(|(s, _)| (s, r.account_id))).unzip();
    let rows = sqlx::query!(
        r#"SELECT kind AS "kind!", account_id, balance, opened_on, paid_through, history_rev, subject, rev, entry_id,
                  payout, created_at, seq, day
           FROM booking_inputs($1, $2, $3, $4, $5, $6, $7, $8)"#,
        &ids,
        matches!(busy, BusyRows::Skip),
        &days,
        &keys as &[&str],
        &froms,
        &tos,
        &subjects,
        &subject_accounts,
    )
    .fetch_all(conn)
    .await?;
    let mut inputs = BookingInputs {
        accounts: std::collections::HashMap::new(),
        busy: std::collections::HashSet::new(),
        fences: std::collections::HashMap::new(),
        on: PostingsOf::new(),
        under: PostingsOf::new(),
        points: std::collections::HashMap::new(),
    };
    let wanted: std::collections::HashMap<Uuid, &InterestPostingRequest> =
        reqs.iter().map(|r| (r.account_id, *r)).collect();
    let missing = |column: &str| sqlx::Error::ColumnNotFound(column.to_string());
    for r in rows {
        match r.kind.as_str() {
            "account" => {
                let row = LedgerAccount {
                    balance: r.balance.ok_or_else(|| missing("balance"))?,
                    opened_on: r.opened_on.ok_or_else(|| missing("opened_on"))?,
                    paid_through: r.paid_through,
                    history_rev: r.history_rev.ok_or_else(|| missing("history_rev"))?,
                };
                inputs.accounts.insert(r.account_id.ok_or_else(|| missing("account_id"))?, row);
            }
            "busy" => {
                inputs.busy.insert(r.account_id.ok_or_else(|| missing("account_id"))?);
            }
            "fence" => {
                inputs
                    .fences
                    .insert(r.subject.ok_or_else(|| missing("subject"))?, r.rev.ok_or_else(|| missing("rev"))?);
            }
            "posting" => {
                let account_id = r.account_id.ok_or_else(|| missing("account_id"))?;
                // Narrowed to the exact (account, day) and (account, key) pairs asked for.
                let Some(req) = wanted.get(&account_id) else { continue };
                let posting = InterestPosting::try_from(PostingRow {
                    entry_id: r.entry_id.ok_or_else(|| missing("entry_id"))?,
                    payout: r.payout.ok_or_else(|| missing("payout"))?,
                    balance_after: r.balance.ok_or_else(|| missing("balance"))?,
                    created_at: r.created_at.ok_or_else(|| missing("created_at"))?,
                    seq: r.seq.ok_or_else(|| missing("seq"))?,
                })?;
                if posting.request.idempotency_key == req.idempotency_key {
                    inputs.under.insert(account_id, posting.clone());
                }
                if posting.request.business_date == req.business_date {
                    inputs.on.insert(account_id, posting);
                }
            }
            "point" => {
                let point = BalancePoint {
                    date: r.day.ok_or_else(|| missing("day"))?,
                    balance: r.balance.ok_or_else(|| missing("balance"))?,
                };
                inputs.points.entry(r.account_id.ok_or_else(|| missing("account_id"))?).or_default().push(point);
            }
            other => return Err(sqlx::Error::Protocol(format!("booking_inputs answered a row of kind {other}"))),
        }
    }
    Ok(inputs)
}

/// Booked payouts by account.
pub type PostingsOf = std::collections::HashMap<Uuid, InterestPosting>;

/// Takes the fences of `subjects` shared until the transaction ends (a fence being raised waits
/// for this booking, and this booking for a fence being raised), then reads their revisions (0 for
/// a subject never fenced). The read is a separate statement so its snapshot follows the locks.
pub async fn hold_fences(conn: &mut PgConnection, subjects: &[String]) -> Result<Vec<(String, i64)>, sqlx::Error> {
    // (The locks' function returns nothing; the count is what a typed statement can answer.)
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "held!" FROM (SELECT pg_advisory_xact_lock_shared(hashtextextended(s, 0))
                                             FROM unnest($1::text[]) AS s) AS locks"#,
        subjects,
    )
    .fetch_one(&mut *conn)
    .await?;
    let rows = sqlx::query!(
        r#"SELECT s AS "subject!", COALESCE(f.rev, 0) AS "rev!"
           FROM unnest($1::text[]) AS s LEFT JOIN payout_fences f ON f.subject = s"#,
        subjects,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.subject, r.rev)).collect())
}

/// Waits for the bookings in flight on `subject`, then holds it exclusively until the transaction
/// ends.
pub async fn lock_fence(conn: &mut PgConnection, subject: &str) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "held!" FROM (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS lock"#,
        subject,
    )
    .fetch_one(conn)
    .await
    .map(|_| ())
}

/// Raises the fence (never lowers it), as the latest raise (`seq`); returns its revision.
pub async fn raise_fence(conn: &mut PgConnection, subject: &str, rev: i64) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO payout_fences (subject, rev) VALUES ($1, $2)
         ON CONFLICT (subject) DO UPDATE SET rev = GREATEST(payout_fences.rev, EXCLUDED.rev), changed_at = now(),
             seq = nextval('payout_fences_seq_seq')
         RETURNING rev",
        subject,
        rev,
    )
    .fetch_one(conn)
    .await
}

/// Fences of one kind (`customer:`, `account:`, `rates:`, `tax:`) raised after `after_seq`, in
/// raise order.
pub async fn fences_after(
    pool: &PgPool,
    prefix: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<contracts::RaisedFence>, sqlx::Error> {
    sqlx::query_as!(
        contracts::RaisedFence,
        "SELECT subject, rev, seq, changed_at FROM payout_fences
         WHERE seq > $2 AND starts_with(subject, $1) ORDER BY seq LIMIT $3",
        prefix,
        after_seq,
        limit,
    )
    .fetch_all(pool)
    .await
}

/// The last business date a payout of the tax category was booked on.
pub async fn category_paid_on(
    conn: &mut PgConnection,
    category: domain::TaxCategory,
) -> Result<Option<NaiveDate>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT business_date FROM journal_entries
         WHERE kind = 'INTEREST_PAYOUT' AND payout ->> 'tax_category' = $1
         ORDER BY business_date DESC LIMIT 1",
        category.as_str(),
    )
    .fetch_optional(conn)
    .await
}

/// The last day covered by a booked payout of the product.
pub async fn product_paid_through(
    conn: &mut PgConnection,
    product_code: &str,
) -> Result<Option<NaiveDate>, sqlx::Error> {
    let day = sqlx::query_scalar!(
        "SELECT payout ->> 'period_to' FROM journal_entries
         WHERE kind = 'INTEREST_PAYOUT' AND payout ->> 'product_code' = $1
         ORDER BY payout ->> 'period_to' DESC LIMIT 1",
        product_code,
    )
    .fetch_optional(conn)
    .await?
    .flatten();
    day.map(|d| d.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))).transpose()
}

/// A movement's first answer, kept under its key.
pub struct StoredResponse {
    pub operation: String,
    pub request_hash: String,
    pub status: i16,
    pub response: serde_json::Value,
}

pub async fn find_idempotent(
    conn: &mut PgConnection,
    account_id: Uuid,
    key: &str,
) -> Result<Option<StoredResponse>, sqlx::Error> {
    sqlx::query_as!(
        StoredResponse,
        "SELECT operation, request_hash, status, response FROM idempotency_keys WHERE account_id = $1 AND key = $2",
        account_id,
        key,
    )
    .fetch_optional(conn)
    .await
}

pub async fn save_idempotent(
    conn: &mut PgConnection,
    account_id: Uuid,
    key: &str,
    operation: &str,
    request_hash: &str,
    status: i16,
    response: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO idempotency_keys (account_id, key, operation, request_hash, status, response) VALUES ($1, $2, $3, $4, $5, $6)",
        account_id,
        key,
        operation,
        request_hash,
        status,
        response,
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A booked payout's journal row: the request it booked (`payout`) and what the booking added.
#[derive(sqlx::FromRow)]
pub struct PostingRow {
    entry_id: Uuid,
    payout: serde_json::Value,
    balance_after: i64,
    created_at: chrono::DateTime<chrono::Utc>,
    seq: i64,
}

/// A [`PostingRow`] with its account (lookups of many accounts).
#[derive(sqlx::FromRow)]
pub struct AccountPostingRow {
    account_id: Uuid,
    #[sqlx(flatten)]
    posting: PostingRow,
}

impl TryFrom<PostingRow> for InterestPosting {
    type Error = sqlx::Error;

    fn try_from(r: PostingRow) -> Result<Self, Self::Error> {
        let request: InterestPostingRequest =
            serde_json::from_value(r.payout).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        Ok(InterestPosting {
            request,
            entry_id: r.entry_id,
            balance_after: r.balance_after,
            posted_at: r.created_at,
            seq: r.seq,
        })
    }
}

// The journal's lookups of interest payouts by account. Each must probe the (account, business
// date) index per account whatever the statistics say: a freshly loaded ledger's say "no payouts"
// while a run books thousands, and then a join with the keys walked the whole index for every
// chunk (45 ms to 1 s a call at 70,000 payouts). Hence `account_id = ANY`, never a join, and the
// only partial index `kind = 'INTEREST_PAYOUT'` implies is that one (migration 0005). The tests
// in store_plans.rs plan them on such a ledger.
/// (`booking_inputs`, migration 0008, runs this statement with `$1`, `$2`, `$3` named `v_locked`,
/// `p_days`, `p_keys`; the plan test checks the function still holds it.)
/// Payouts of some accounts booked on some days, then payouts under some keys — the latter by the
/// key index alone (with the accounts in the index condition too it costed keys × accounts probes
/// and chose a scan), narrowed to exact (account, key) pairs in Rust.
#[cfg(test)]
const INTEREST_POSTINGS_ON_OR_UNDER: &str = "SELECT account_id, entry_id, payout, balance_after, created_at, seq
     FROM journal_entries WHERE kind = 'INTEREST_PAYOUT' AND account_id = ANY($1) AND business_date = ANY($2)
     UNION ALL
     SELECT account_id, entry_id, payout, balance_after, created_at, seq FROM journal_entries WHERE payout_key = ANY($3)";
/// An account's last payout, before a day or at all.
const LAST_INTEREST_POSTING: &str = "SELECT entry_id, payout, balance_after, created_at, seq FROM journal_entries
     WHERE kind = 'INTEREST_PAYOUT' AND account_id = $1 AND ($2::date IS NULL OR business_date < $2)
     ORDER BY business_date DESC LIMIT 1";
/// Each account's last payout.
const LAST_INTEREST_POSTINGS: &str =
    "SELECT DISTINCT ON (account_id) account_id, entry_id, payout, balance_after, created_at, seq
     FROM journal_entries WHERE kind = 'INTEREST_PAYOUT' AND account_id = ANY($1)
     ORDER BY account_id, business_date DESC";

pub async fn last_interest_posting(
    conn: &mut PgConnection,
    account_id: Uuid,
    before: Option<NaiveDate>,
) -> Result<Option<InterestPosting>, sqlx::Error> {
    let row: Option<PostingRow> =
        sqlx::query_as(LAST_INTEREST_POSTING).bind(account_id).bind(before).fetch_optional(conn).await?;
    row.map(InterestPosting::try_from).transpose()
}

pub async fn interest_feed(pool: &PgPool, after_seq: i64, limit: i64) -> Result<Vec<InterestPosting>, sqlx::Error> {
    sqlx::query_as!(
        PostingRow,
        r#"SELECT entry_id, payout AS "payout!", balance_after, created_at, seq FROM journal_entries
           WHERE payout_id IS NOT NULL AND seq > $1 ORDER BY seq LIMIT $2"#,
        after_seq,
        limit,
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(InterestPosting::try_from)
    .collect()
}

/// Change points for `[from, to]`: the balance in force on `from`, then every change after it.
pub async fn balance_points(
    conn: &mut PgConnection,
    id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<BalancePoint>, sqlx::Error> {
    sqlx::query_as!(
        BalancePoint,
        r#"(SELECT $2::date AS "date!", balance AS "balance!" FROM daily_balances WHERE account_id = $1 AND day <= $2
            ORDER BY daily_balances.day DESC LIMIT 1)
           UNION ALL
           (SELECT day, balance FROM daily_balances WHERE account_id = $1 AND day > $2 AND day <= $3 ORDER BY day)"#,
        id,
        from,
        to,
    )
    .fetch_all(conn)
    .await
}

pub async fn entries(pool: &PgPool, account_id: Uuid, limit: i64) -> Result<Vec<Entry>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"WITH e AS (
              SELECT DISTINCT je.seq, je.entry_id, je.kind, je.business_date, je.value_date, je.created_at
              FROM journal_lines jl JOIN journal_entries je ON je.entry_id = jl.entry_id
              WHERE jl.account_id = $1 ORDER BY je.seq DESC LIMIT $2)
           SELECT e.seq AS "seq!", e.entry_id AS "entry_id!", e.kind AS "kind!", e.business_date AS "business_date!",
                  e.value_date AS "value_date!", e.created_at AS "created_at!",
                  l.ledger_account, l.account_id, l.debit, l.credit
           FROM e JOIN journal_lines l ON l.entry_id = e.entry_id
           ORDER BY e.seq DESC, l.line_no"#,
        account_id,
        limit,
    )
    .fetch_all(pool)
    .await?;
    let mut out: Vec<Entry> = Vec::new();
    for r in rows {
        if out.last().map(|e| e.entry_id) != Some(r.entry_id) {
            out.push(Entry {
                entry_id: r.entry_id,
                kind: r.kind,
                business_date: r.business_date,
                value_date: r.value_date,
                created_at: r.created_at,
                lines: Vec::new(),
            });
        }
        if let Some(e) = out.last_mut() {
            e.lines.push(EntryLine {
                ledger_account: r.ledger_account,
                account_id: r.account_id,
                debit: r.debit,
                credit: r.credit,
            });
        }
    }
    Ok(out)
}

pub async fn history_revisions(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
    let rows = sqlx::query!("SELECT account_id, history_rev FROM ledger_accounts WHERE account_id = ANY($1)", ids)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.account_id, r.history_rev)).collect())
}

/// [`balance_points`] for many accounts and periods in one statement.
pub async fn balance_points_many(
    conn: &mut PgConnection,
    ranges: &[(Uuid, NaiveDate, NaiveDate)],
) -> Result<std::collections::HashMap<Uuid, Vec<BalancePoint>>, sqlx::Error> {
    let ids: Vec<Uuid> = ranges.iter().map(|r| r.0).collect();
    let froms: Vec<NaiveDate> = ranges.iter().map(|r| r.1).collect();
    let tos: Vec<NaiveDate> = ranges.iter().map(|r| r.2).collect();
    let rows = sqlx::query!(
        r#"SELECT q.account_id AS "account_id!", p.point_day AS "point_day!", p.balance AS "balance!"
           FROM unnest($1::uuid[], $2::date[], $3::date[]) AS q(account_id, f, t)
           CROSS JOIN LATERAL (
              (SELECT q.f AS point_day, d.balance FROM daily_balances d WHERE d.account_id = q.account_id AND d.day <= q.f
               ORDER BY d.day DESC LIMIT 1)
              UNION ALL
              (SELECT d.day, d.balance FROM daily_balances d
               WHERE d.account_id = q.account_id AND d.day > q.f AND d.day <= q.t)
           ) p
           ORDER BY q.account_id, p.point_day"#,
        &ids,
        &froms,
        &tos,
    )
    .fetch_all(conn)
    .await?;
    let mut out: std::collections::HashMap<Uuid, Vec<BalancePoint>> = std::collections::HashMap::new();
    for r in rows {
        out.entry(r.account_id).or_default().push(BalancePoint { date: r.point_day, balance: r.balance });
    }
    Ok(out)
}

/// The last booked payout of each of `ids` that has one.
pub async fn last_interest_postings(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, InterestPosting>, sqlx::Error> {
    let rows: Vec<AccountPostingRow> = sqlx::query_as(LAST_INTEREST_POSTINGS).bind(ids).fetch_all(conn).await?;
    rows.into_iter().map(|r| Ok((r.account_id, InterestPosting::try_from(r.posting)?))).collect()
}

#[cfg(test)]
#[path = "store_plans.rs"]
mod plans;
