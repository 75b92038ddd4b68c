//! The database's own limit for a payout's writes: `pgbench` running the SQL of the payout's two
//! transactions — the ledger's booking (lock the balance row, check the day, verify the quote's
//! basis — the period's balance points and the fences —, update the row, insert the entry, its
//! lines and the day's balance point; the one durable commit) and the interest
//! service's payout record (the outbox row, asynchronous commit) — against tables made by the
//! services' own migrations, in a scratch database on the same PostgreSQL.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::postgres::PgPoolOptions;
use sqlx::Executor;

use crate::load::Stats;
use crate::seed::Databases;

/// The statements of the payout's work (see services/accounting/src/store.rs and
/// services/interest/src/store.rs), with pgbench variables for the parameters, one round trip
/// each: the ledger now sends the booking's locks and reads as one call (`booking_inputs`,
/// migration 0008) and its writes as one statement, but the baseline stays the same plain SQL, so
/// that ratios measured before and after that change compare.
const SCRIPT: &str = r#"\set n random(1, :accounts)
\set d random(1, 1000000)
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SELECT balance, opened_on, paid_through, history_rev FROM ledger_accounts WHERE account_id = md5('base:' || :n::text)::uuid FOR UPDATE;
SELECT entry_id, payout, balance_after, created_at, seq FROM journal_entries WHERE kind = 'INTEREST_PAYOUT' AND account_id = md5('base:' || :n::text)::uuid AND business_date = date '2000-01-01' + :d::int;
SELECT account_id, entry_id, payout, balance_after, created_at, seq FROM journal_entries WHERE payout_key = ANY(ARRAY['base-' || :n || '-' || :d]);
(SELECT date '2000-01-01' + :d::int - 30 AS point_day, balance FROM daily_balances WHERE account_id = md5('base:' || :n::text)::uuid AND day <= date '2000-01-01' + :d::int - 30 ORDER BY day DESC LIMIT 1) UNION ALL (SELECT day, balance FROM daily_balances WHERE account_id = md5('base:' || :n::text)::uuid AND day > date '2000-01-01' + :d::int - 30 AND day <= date '2000-01-01' + :d::int - 1 ORDER BY day);
-- (fence subjects are written without ':', which pgbench would read as a variable)
SELECT pg_advisory_xact_lock_shared(hashtextextended(s, 0)) FROM unnest(ARRAY['account-' || :n, 'customer-' || :n, 'rates-BASELINE', 'tax-GENERAL']) AS s;
SELECT s, COALESCE(f.rev, 0) FROM unnest(ARRAY['account-' || :n, 'customer-' || :n, 'rates-BASELINE', 'tax-GENERAL']) AS s LEFT JOIN payout_fences f ON f.subject = s;
UPDATE ledger_accounts SET balance = balance + 8600, paid_through = COALESCE(date '2000-01-01' + :d::int - 1, paid_through), updated_at = now(), history_rev = history_rev + 1::int, history_changed_at = CASE WHEN true THEN now() ELSE history_changed_at END WHERE account_id = md5('base:' || :n::text)::uuid RETURNING history_rev;
INSERT INTO journal_entries (entry_id, kind, account_id, business_date, value_date, balance_after, payout_id, payout, payout_key) VALUES (gen_random_uuid(), 'INTEREST_PAYOUT', md5('base:' || :n::text)::uuid, date '2000-01-01' + :d::int, date '2000-01-01' + :d::int, 10008600, gen_random_uuid(), '{"payout_id":"00000000-0000-0000-0000-000000000000","account_id":"00000000-0000-0000-0000-000000000000","customer_id":"00000000-0000-0000-0000-000000000000","product_code":"BASELINE","business_date":"2024-03-10","period_from":"2024-02-10","period_to":"2024-03-09","gross":10000,"income_tax":1260,"local_tax":140,"rural_special_tax":0,"net":8600,"carry_in_units":0,"carry_out_units":123456,"tax_category":"GENERAL","idempotency_key":"00000000-0000-0000-0000-000000000000","request_hash":"0000000000000000000000000000000000000000000000000000000000000000"}', 'base-' || :n || '-' || :d) RETURNING seq, created_at, entry_id, payout_id \gset
INSERT INTO journal_lines (entry_id, line_no, ledger_account, account_id, debit, credit) SELECT :entry_id::uuid, * FROM UNNEST('{1,2,3,4}'::int2[], '{INTEREST_EXPENSE,CUSTOMER_DEPOSITS,INCOME_TAX_PAYABLE,LOCAL_TAX_PAYABLE}'::text[], ARRAY[NULL, md5('base:' || :n::text)::uuid, NULL, NULL]::uuid[], '{10000,0,0,0}'::int8[], '{0,8600,1260,140}'::int8[]);
INSERT INTO daily_balances (account_id, day, balance) VALUES (md5('base:' || :n::text)::uuid, date '2000-01-01' + :d::int, 10008600) ON CONFLICT (account_id, day) DO UPDATE SET balance = EXCLUDED.balance;
COMMIT;
BEGIN;
SET LOCAL synchronous_commit = off;
INSERT INTO payouts (payout_id, account_id, customer_id, product_code, business_date, period_from, period_to, gross, income_tax, local_tax, rural_special_tax, net, tax_category, carry_in_units, carry_units, balance_after, entry_id, idempotency_key, request_hash, created_at, tax_event_id, trace_headers) VALUES (:payout_id::uuid, md5('base:' || :n::text)::uuid, gen_random_uuid(), 'BASELINE', date '2000-01-01' + :d::int, date '2000-01-01' + :d::int - 30, date '2000-01-01' + :d::int - 1, 10000, 1260, 140, 0, 8600, 'GENERAL', 0, 123456, 10008600, :entry_id::uuid, gen_random_uuid()::text, '0000000000000000000000000000000000000000000000000000000000000000', now(), gen_random_uuid(), '{}') ON CONFLICT DO NOTHING;
COMMIT;
"#;

static ACCOUNTING: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/accounting");
static INTEREST: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/interest");

pub struct Baseline {
    db: String,
    accounts: i64,
    dir: std::path::PathBuf,
}

impl Baseline {
    /// A fresh scratch database with the ledger's and the interest service's tables (one schema
    /// each) and `accounts` balance rows.
    pub async fn prepare(dbs: &Databases, accounts: i64) -> anyhow::Result<Self> {
        let db = dbs.name("bench_baseline");
        let mut admin = dbs.connect("postgres").await?;
        admin.execute(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)").as_str()).await?;
        admin.execute(format!("CREATE DATABASE {db}").as_str()).await?;
        for (schema, migrator) in [("ledger", &ACCOUNTING), ("interest", &INTEREST)] {
            let options = dbs.options(&db)?.options([("search_path", schema)]);
            let pool = PgPoolOptions::new().max_connections(1).connect_with(options).await?;
            pool.execute(format!("CREATE SCHEMA IF NOT EXISTS {schema}").as_str()).await?;
            migrator.run(&pool).await.with_context(|| format!("migrating the baseline's {schema} schema"))?;
            if schema == "ledger" {
                sqlx::query(
                    "INSERT INTO ledger_accounts (account_id, opened_on, balance)
                     SELECT md5('base:' || i)::uuid, date '1999-01-01', 10000000 FROM generate_series(1, $1::int8) i",
                )
                .bind(accounts)
                .execute(&pool)
                .await?;
                pool.execute("ANALYZE ledger_accounts").await?;
            }
            pool.close().await;
        }
        let dir = std::env::temp_dir().join(format!("bench-pgbench-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("payout.sql"), SCRIPT)?;
        Ok(Self { db, accounts, dir })
    }

    /// pgbench at `clients` connections for `duration`; per-transaction latencies from its log.
    pub fn run(&self, dbs: &Databases, clients: usize, duration: Duration) -> anyhow::Result<Stats> {
        let opts = dbs.options(&self.db)?;
        for f in std::fs::read_dir(&self.dir)? {
            let f = f?.path();
            if f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log")) {
                std::fs::remove_file(f)?;
            }
        }
        let out = Command::new("pgbench")
            .env("PGPASSWORD", std::env::var("PGPASSWORD").unwrap_or_else(|_| password(&dbs.base)))
            .env("PGOPTIONS", "-c search_path=ledger,interest")
            .args(["-h", opts.get_host(), "-p", &opts.get_port().to_string(), "-U", opts.get_username()])
            .args(["-n", "-M", "prepared", "-c", &clients.to_string(), "-j", &clients.min(4).to_string()])
            .args(["-T", &duration.as_secs().max(1).to_string(), "-D", &format!("accounts={}", self.accounts)])
            .arg("-f")
            .arg(self.dir.join("payout.sql"))
            .arg("-l")
            .arg(format!("--log-prefix={}", self.dir.join("log").display()))
            .arg(&self.db)
            .output()
            .context("running pgbench (Debian: apt-get install postgresql-client)")?;
        if !out.status.success() {
            bail!("pgbench failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let failed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let mut s = Stats { errors: failed, elapsed: duration, ..Stats::default() };
        for f in std::fs::read_dir(&self.dir)? {
            let f = f?.path();
            if !f.file_name().is_some_and(|n| n.to_string_lossy().starts_with("log")) {
                continue;
            }
            // client_id transaction_no time_us script_no epoch epoch_us
            for line in std::fs::read_to_string(&f)?.lines() {
                if let Some(us) = line.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()) {
                    s.micros.push(us);
                }
            }
        }
        Ok(s)
    }

    pub async fn drop(self, dbs: &Databases) -> anyhow::Result<()> {
        let _ = std::fs::remove_dir_all(&self.dir);
        let mut admin = dbs.connect("postgres").await?;
        admin.execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db).as_str()).await?;
        Ok(())
    }
}

fn password(base: &str) -> String {
    // postgres://user:password@host:port
    base.split("://")
        .nth(1)
        .and_then(|rest| rest.split('@').next())
        .and_then(|userinfo| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string())
        .unwrap_or_default()
}
