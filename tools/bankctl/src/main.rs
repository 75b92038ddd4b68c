//! `bankctl`: operations from the command line (and from cron).
//!
//! ```text
//! bankctl payout-run [--date YYYY-MM-DD] [--accounts FILE] [--no-progress]
//! bankctl payout-run --follow RUN_ID [--no-progress]
//! bankctl reconcile --from YYYY-MM-DD --to YYYY-MM-DD [--json]
//! bankctl token --key PEM --sub SUBJECT --scope "SCOPES" [--minutes N]
//! bankctl credentials generate --out DIR [--callers a,b]
//! bankctl credentials token --audience SERVICE [--seconds N]
//! bankctl verify --date YYYY-MM-DD (--accounts FILE | --all) [--out DIR] [--max-mismatches N]
//!                [--concurrency N] [--no-progress]
//! ```
//! The arguments are parsed by clap: `bankctl --help` and `bankctl COMMAND --help` list every
//! option with its default, the environment variables the command reads and its exit codes;
//! `bankctl --version` prints the version. A usage error exits 2 with clap's message on stderr.
//!
//! `payout-run` starts today's payout run (every account, or the ids in FILE, one per line),
//! follows it with a progress bar until it ends, and prints the summary. If a run for that date and
//! scope already exists, follows that one. Exit code: 0 completed with no failed account, 1
//! completed with failures, expired or cancelled, 2 could not start or follow. `reconcile` compares interest
//! payouts, ledger postings and withholding records (exit 0 clean, 1 differences, 2 could not
//! read). `INTEREST_URL`, `ACCOUNTING_URL`, `TAX_URL` (default the local ports); every call to
//! an internal service carries the operators' service credential (`SERVICE_KEY`, `SERVICE_TRUST`,
//! see `credentials`). `credentials generate` makes the keys of every caller and the trust set;
//! `credentials token` prints a credential for one service (for curl). `token` signs a bearer token for
//! the gateway (ES256) with a local issuer's private key — for demos and local tests; production
//! tokens come from the bank's identity provider (`AUTH_ISSUER`, `AUTH_AUDIENCE`). `verify`
//! compares every account's figures with the legacy core's (`LEGACY_CORE_URL`; also
//! `ACCOUNT_INFO_URL`, `CUSTOMER_URL`) in estimate mode and writes `DIR/mismatches.csv` and
//! `DIR/summary.json` (exit 0 within `--max-mismatches`, default 0; 1 above; 2 could not run).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use contracts::{PayoutRun, StartPayoutRun};
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

mod credentials;
mod services;
mod verify;

/// Operations from the command line (and from cron): payout runs, reconciliation, demo tokens and
/// batch verification against the legacy core
#[derive(Parser, Debug)]
#[command(name = "bankctl", version, args_override_self = true, after_help = top_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    PayoutRun(PayoutRunArgs),
    Reconcile(ReconcileArgs),
    Token(TokenArgs),
    Credentials(credentials::CredentialsArgs),
    Verify(verify::VerifyArgs),
}

/// Start a payout run, or follow one, until it ends
///
/// Starts today's payout run (every account, or the ids in --accounts), follows it with a progress
/// bar until it ends and prints the summary. If a run for that date and scope already exists,
/// follows that one.
#[derive(Args, Debug)]
#[command(after_help = command_help(
    &[&INTEREST_URL, &SERVICE_KEY, &SERVICE_TRUST],
    &[
        "the run completed with no failed account",
        "it completed with failures, expired (the business date ended first) or was cancelled",
        "it could not be started or followed",
    ],
))]
struct PayoutRunArgs {
    /// Business date of the run [default: the interest service's today]
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: Option<NaiveDate>,
    /// Pay only the accounts whose ids are in FILE, one per line (blank lines skipped) [default:
    /// every account]
    #[arg(long, value_name = "FILE")]
    accounts: Option<PathBuf>,
    /// Follow the existing run RUN_ID instead of starting one (--date and --accounts are then
    /// ignored)
    #[arg(long, value_name = "RUN_ID")]
    follow: Option<Uuid>,
    /// Do not draw the progress bar
    #[arg(long)]
    no_progress: bool,
}

/// Compare interest payouts, ledger postings and withholding records
///
/// For the payouts with a business date from --from to --to: what the interest service recorded,
/// what the ledger booked and what the tax service withheld. Reports missing, duplicated and
/// mismatched items.
#[derive(Args, Debug)]
#[command(after_help = command_help(
    &[&INTEREST_URL, &ACCOUNTING_URL, &TAX_URL, &SERVICE_KEY, &SERVICE_TRUST],
    &["clean: nothing missing, duplicated or mismatched", "differences", "a source could not be read"],
))]
struct ReconcileArgs {
    /// First business date
    #[arg(long, value_name = "YYYY-MM-DD")]
    from: NaiveDate,
    /// Last business date (included)
    #[arg(long, value_name = "YYYY-MM-DD")]
    to: NaiveDate,
    /// Print the report as JSON instead of text
    #[arg(long)]
    json: bool,
}

/// Sign a bearer token for the gateway (demos and local tests)
///
/// Signs a token (ES256) with a local issuer's private key and prints it; for demos and local
/// tests. Production tokens come from the bank's identity provider.
#[derive(Args, Debug)]
#[command(after_help = command_help(
    &[&AUTH_ISSUER, &AUTH_AUDIENCE],
    &["the token was printed", "", "it could not be signed (unreadable or wrong key)"],
))]
struct TokenArgs {
    /// The issuer's private key: an EC P-256 key, PKCS#8 PEM
    #[arg(long, value_name = "PEM")]
    key: PathBuf,
    /// The token's subject (sub): a customer id, or who an ops or batch token is for
    #[arg(long, value_name = "SUBJECT")]
    sub: String,
    /// The token's scopes, space-separated: customer, ops:read, ops:write, batch
    #[arg(long, value_name = "SCOPES")]
    scope: String,
    /// Minutes until the token expires (the gateway refuses tokens living longer than its
    /// AUTH_MAX_TOKEN_LIFETIME_SECS, an hour by default)
    #[arg(long, value_name = "N", default_value_t = 60, allow_negative_numbers = true)]
    minutes: i64,
}

/// An environment variable bankctl reads, and what it falls back to when unset.
pub(crate) struct EnvVar {
    name: &'static str,
    default: Option<&'static str>,
    what: &'static str,
}

pub(crate) const INTEREST_URL: EnvVar =
    EnvVar { name: "INTEREST_URL", default: Some("http://127.0.0.1:8084"), what: "the interest service" };
const ACCOUNTING_URL: EnvVar = EnvVar {
    name: "ACCOUNTING_URL",
    default: Some("http://127.0.0.1:8083"),
    what: "the accounting service (the ledger)",
};
const TAX_URL: EnvVar =
    EnvVar { name: "TAX_URL", default: Some("http://127.0.0.1:8085"), what: "the tax service (withholding records)" };
pub(crate) const LEGACY_CORE_URL: EnvVar =
    EnvVar { name: "LEGACY_CORE_URL", default: Some("http://127.0.0.1:8090"), what: "the legacy core" };
pub(crate) const ACCOUNT_INFO_URL: EnvVar = EnvVar {
    name: "ACCOUNT_INFO_URL",
    default: Some("http://127.0.0.1:8082"),
    what: "the account-info service (lists the accounts)",
};
pub(crate) const CUSTOMER_URL: EnvVar =
    EnvVar { name: "CUSTOMER_URL", default: Some("http://127.0.0.1:8081"), what: "the customer service" };
pub(crate) const SERVICE_KEY: EnvVar = EnvVar {
    name: "SERVICE_KEY_FILE",
    default: None,
    what: "the ops service key (or SERVICE_KEY inline; deploy/up.sh exports it)",
};
pub(crate) const SERVICE_TRUST: EnvVar =
    EnvVar { name: "SERVICE_TRUST_FILE", default: None, what: "the trust set listing it (or SERVICE_TRUST inline)" };
const AUTH_ISSUER: EnvVar =
    EnvVar { name: "AUTH_ISSUER", default: Some("interest-bank"), what: "the token's issuer (iss)" };
const AUTH_AUDIENCE: EnvVar =
    EnvVar { name: "AUTH_AUDIENCE", default: Some("interest-bank-api"), what: "the token's audience (aud)" };

const ALL_VARS: [&EnvVar; 10] = [
    &INTEREST_URL,
    &ACCOUNTING_URL,
    &TAX_URL,
    &SERVICE_KEY,
    &SERVICE_TRUST,
    &LEGACY_CORE_URL,
    &ACCOUNT_INFO_URL,
    &CUSTOMER_URL,
    &AUTH_ISSUER,
    &AUTH_AUDIENCE,
];

fn env_lines(vars: &[&EnvVar]) -> String {
    let mut s = String::from("Environment:\n");
    for v in vars {
        s.push_str(&format!("  {:<18}{}", v.name, v.what));
        if let Some(d) = v.default {
            s.push_str(&format!(" [default: {d}]"));
        }
        s.push('\n');
    }
    s
}

/// A command's help epilogue: the environment variables it reads and what its exit codes 0, 1
/// and 2 mean (an empty text: a code the command does not use); 2 is also a usage error's.
fn command_help(vars: &[&EnvVar], exit: &[&str; 3]) -> String {
    let mut s = env_lines(vars);
    s.push_str("\nExit status:");
    for (code, what) in exit.iter().enumerate().filter(|(_, w)| !w.is_empty()) {
        s.push_str(&format!("\n  {code}  {what}"));
    }
    s.push_str(", or a usage error (clap's message on stderr)");
    s
}

fn top_help() -> String {
    format!(
        "{}\nEach command's --help lists the variables it reads and its exit codes; a usage error exits 2.",
        env_lines(&ALL_VARS)
    )
}

/// The variable's value, or its default when it is unset (or not unicode).
fn url(var: &EnvVar) -> String {
    std::env::var(var.name).unwrap_or_else(|_| var.default.unwrap_or_default().to_string())
}

fn main() -> ExitCode {
    // Usage errors exit 2 with clap's message on stderr; --help and --version exit 0.
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bankctl: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[tokio::main]
async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Command::PayoutRun(a) => payout_run(a).await,
        Command::Reconcile(a) => reconcile_cmd(a).await,
        Command::Token(a) => token_cmd(a),
        Command::Credentials(a) => credentials::run(a),
        Command::Verify(a) => verify::verify(a).await,
    }
}

fn token_cmd(a: TokenArgs) -> anyhow::Result<bool> {
    let pem = std::fs::read(&a.key).with_context(|| format!("cannot read {}", a.key.display()))?;
    let claims = serde_json::json!({
        "sub": a.sub,
        "scope": a.scope,
        "iss": url(&AUTH_ISSUER),
        "aud": url(&AUTH_AUDIENCE),
        "iat": chrono::Utc::now().timestamp(),
        "exp": chrono::Utc::now().timestamp() + 60 * a.minutes,
    });
    let key =
        jsonwebtoken::EncodingKey::from_ec_pem(&pem).context("the key must be an EC P-256 private key (PKCS#8 PEM)")?;
    println!("{}", jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256), &claims, &key)?);
    Ok(true)
}

async fn reconcile_cmd(a: ReconcileArgs) -> anyhow::Result<bool> {
    let urls = reconcile::Urls { interest: url(&INTEREST_URL), accounting: url(&ACCOUNTING_URL), tax: url(&TAX_URL) };
    let services = services::services(Duration::from_secs(60))?;
    let credential = |audience: &str| services.signer().token_for(audience).ok().map(|t| t.to_string());
    let sources = reconcile::Sources { http: services.http(), urls: &urls, credential: &credential };
    let report = reconcile::reconcile(sources, a.from, a.to).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(report.clean())
}

async fn payout_run(a: PayoutRunArgs) -> anyhow::Result<bool> {
    let base = url(&INTEREST_URL);
    let http = services::services(Duration::from_secs(30))?;
    let run_id = match a.follow {
        Some(id) => id,
        None => start(&http, &base, &a).await?,
    };
    let bar = if !a.no_progress { ProgressBar::new(1) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} accounts ({per_sec}) {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let run = loop {
        let run = read(&http, &base, run_id).await?;
        bar.set_length(run.accounts.max(1) as u64);
        bar.set_position((run.accounts - run.pending) as u64);
        bar.set_message(format!(
            "paid {} skipped {} failed {}",
            run.paid,
            run.skipped.values().sum::<i64>(),
            run.failed
        ));
        if run.state != contracts::RunState::Running {
            break run;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    bar.finish();
    print_summary(&run);
    Ok(run.state == contracts::RunState::Completed && run.failed == 0)
}

/// Account ids from a file, one per line (blank lines skipped).
fn account_ids_from(file: &Path) -> anyhow::Result<Vec<Uuid>> {
    std::fs::read_to_string(file)
        .with_context(|| format!("cannot read {}", file.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse::<Uuid>().with_context(|| format!("not an account id: {l}")))
        .collect()
}

async fn start(http: &services::Services, base: &str, a: &PayoutRunArgs) -> anyhow::Result<Uuid> {
    let account_ids = match &a.accounts {
        None => None,
        Some(f) => Some(account_ids_from(f)?),
    };
    let body = StartPayoutRun { business_date: a.date, account_ids };
    let r = http.post(format!("{base}/v1/interest/payout-runs")).json(&body).send().await?;
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    if status.as_u16() == 409 && v["code"] == "RUN_EXISTS" {
        let id = v["instance"].as_str().and_then(|i| i.rsplit('/').next()).and_then(|s| s.parse().ok());
        let id = id.context("409 without the existing run")?;
        eprintln!("a run for this date and scope exists: following {id}");
        return Ok(id);
    }
    if !status.is_success() {
        bail!("starting the run: HTTP {status}: {v}");
    }
    let id = v["run_id"].as_str().and_then(|s| s.parse().ok()).context("no run_id in the answer")?;
    eprintln!("started payout run {id}");
    Ok(id)
}

async fn read(http: &services::Services, base: &str, id: Uuid) -> anyhow::Result<PayoutRun> {
    // A restarting interest service is not a reason to give up following.
    let mut last = None;
    for _ in 0..60 {
        match http.get(format!("{base}/v1/interest/payout-runs/{id}")).send().await {
            Ok(r) if r.status().is_success() => return Ok(r.json().await?),
            Ok(r) if r.status().as_u16() == 404 => bail!("no payout run {id}"),
            Ok(r) => last = Some(format!("HTTP {}", r.status())),
            Err(e) => last = Some(e.to_string()),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("cannot read run {id}: {}", last.unwrap_or_default())
}

fn print_summary(run: &PayoutRun) {
    println!("payout run {} for {} ({}): {}", run.run_id, run.business_date, run.scope, run.state);
    println!("  accounts  {}", run.accounts);
    println!("  paid      {}", run.paid);
    for (reason, n) in &run.skipped {
        println!("  skipped   {n}  {reason}");
    }
    println!("  failed    {}", run.failed);
    let (a, t) = (&run.totals, run.totals.taxes());
    println!(
        "  gross {} = net {} + income tax {} + local tax {} + rural special tax {}",
        a.gross(),
        a.net(),
        t.income_tax,
        t.local_tax,
        t.rural_special_tax
    );
    if let Some(f) = run.finished_at {
        let secs = (f - run.started_at).num_milliseconds() as f64 / 1000.0;
        println!("  took {secs:.1} s ({:.0} accounts/s)", run.accounts as f64 / secs.max(0.001));
    }
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("bankctl").chain(args.iter().copied()))
    }

    fn kind(args: &[&str]) -> ErrorKind {
        match parse(args) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(e) => e.kind(),
        }
    }

    fn verify_args(args: &[&str]) -> verify::VerifyArgs {
        match parse(&[&["verify"], args].concat()) {
            Ok(Cli { command: Command::Verify(v) }) => v,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_help_which_exits_0_and_names_its_options_and_environment() {
        let cases: [(&[&str], &[&str]); 5] = [
            (&[], &["payout-run", "reconcile", "token", "verify", "INTEREST_URL", "AUTH_AUDIENCE", "CUSTOMER_URL"]),
            (
                &["payout-run"],
                &["--date <YYYY-MM-DD>", "--accounts <FILE>", "--follow <RUN_ID>", "--no-progress", "INTEREST_URL"],
            ),
            (&["reconcile"], &["--from <YYYY-MM-DD>", "--to <YYYY-MM-DD>", "--json", "ACCOUNTING_URL", "TAX_URL"]),
            (&["token"], &["--key <PEM>", "--sub <SUBJECT>", "--scope <SCOPES>", "--minutes <N>", "AUTH_ISSUER"]),
            (
                &["verify"],
                &[
                    "--date <YYYY-MM-DD>",
                    "--accounts <FILE>",
                    "--all",
                    "--out <DIR>",
                    "--max-mismatches <N>",
                    "--concurrency <N>",
                    "--no-progress",
                    "LEGACY_CORE_URL",
                    "[default: 32]",
                ],
            ),
        ];
        for (command, expected) in cases {
            for flag in ["--help", "-h"] {
                let args = [command, &[flag]].concat();
                let e = parse(&args).expect_err("help is an error carrying the text");
                assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{args:?}");
                assert_eq!(e.exit_code(), 0, "{args:?}");
                let text = e.render().to_string();
                for s in expected {
                    assert!(text.contains(s), "{args:?}: no {s} in\n{text}");
                }
            }
        }
        // `bankctl help COMMAND` too.
        assert_eq!(kind(&["help", "verify"]), ErrorKind::DisplayHelp);
    }

    #[test]
    fn version_prints_the_crate_version_and_exits_0() {
        for flag in ["--version", "-V"] {
            let e = parse(&[flag]).expect_err("version is an error carrying the text");
            assert_eq!(e.kind(), ErrorKind::DisplayVersion);
            assert_eq!(e.exit_code(), 0);
            assert_eq!(e.render().to_string(), format!("bankctl {}\n", env!("CARGO_PKG_VERSION")));
        }
    }

    #[test]
    fn usage_errors_are_of_their_kind_and_exit_2() {
        let cases: [(&[&str], ErrorKind); 10] = [
            (&[], ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand),
            (&["frobnicate"], ErrorKind::InvalidSubcommand),
            (&["reconcile", "--from", "2024-03-01"], ErrorKind::MissingRequiredArgument),
            (&["reconcile", "--to", "2024-03-01"], ErrorKind::MissingRequiredArgument),
            (&["token", "--key", "k.pem", "--sub", "ops"], ErrorKind::MissingRequiredArgument),
            (&["verify", "--all"], ErrorKind::MissingRequiredArgument),
            (&["verify", "--date", "2024-03-02", "--all", "--bogus"], ErrorKind::UnknownArgument),
            (&["payout-run", "--help-me"], ErrorKind::UnknownArgument),
            (&["reconcile", "--from"], ErrorKind::InvalidValue),
            (&["verify", "--date", "2024-03-02", "--all", "--max-mismatches", "-1"], ErrorKind::UnknownArgument),
        ];
        for (args, expected) in cases {
            let e = parse(args).expect_err("a usage error");
            assert_eq!(e.kind(), expected, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn verify_needs_exactly_one_of_accounts_and_all() {
        assert_eq!(kind(&["verify", "--date", "2024-03-02"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            kind(&["verify", "--date", "2024-03-02", "--accounts", "ids.txt", "--all"]),
            ErrorKind::ArgumentConflict
        );
        let v = verify_args(&["--date", "2024-03-02", "--accounts", "ids.txt"]);
        assert_eq!((v.accounts.as_deref(), v.all), (Some(Path::new("ids.txt")), false));
        let v = verify_args(&["--date", "2024-03-02", "--all"]);
        assert_eq!((v.accounts, v.all), (None, true));
    }

    #[test]
    fn dates_and_run_ids_are_validated() {
        for date in ["2024-13-01", "2023-02-29", "03/02/2024", "yesterday", ""] {
            assert_eq!(kind(&["payout-run", "--date", date]), ErrorKind::ValueValidation, "{date}");
            assert_eq!(kind(&["reconcile", "--from", date, "--to", "2024-03-01"]), ErrorKind::ValueValidation);
            assert_eq!(kind(&["reconcile", "--from", "2024-03-01", "--to", date]), ErrorKind::ValueValidation);
            assert_eq!(kind(&["verify", "--date", date, "--all"]), ErrorKind::ValueValidation, "{date}");
        }
        for id in ["not-a-uuid", "1234", "0190f0f0-0000-7000-8000-00000000000"] {
            assert_eq!(kind(&["payout-run", "--follow", id]), ErrorKind::ValueValidation, "{id}");
        }
        for n in ["many", "1.5"] {
            assert_eq!(
                kind(&["token", "--key", "k", "--sub", "s", "--scope", "batch", "--minutes", n]),
                ErrorKind::ValueValidation
            );
            assert_eq!(
                kind(&["verify", "--date", "2024-03-02", "--all", "--concurrency", n]),
                ErrorKind::ValueValidation
            );
        }
        let e = parse(&["verify", "--date", "2024-02-30", "--all"]).expect_err("no such day");
        assert!(e.to_string().contains("invalid value '2024-02-30' for '--date <YYYY-MM-DD>'"), "{e}");
    }

    #[test]
    fn options_parse_into_their_types_with_the_old_defaults() {
        let Cli { command: Command::PayoutRun(p) } = parse(&["payout-run"]).unwrap() else { panic!() };
        assert_eq!((p.date, p.accounts, p.follow, p.no_progress), (None, None, None, false));
        let id = "0190f0f0-0000-7000-8000-000000000001";
        let Cli { command: Command::PayoutRun(p) } =
            parse(&["payout-run", "--date", "2024-02-29", "--accounts", "ids.txt", "--follow", id, "--no-progress"])
                .unwrap()
        else {
            panic!()
        };
        assert_eq!(p.date, NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(p.accounts.as_deref(), Some(Path::new("ids.txt")));
        assert_eq!(p.follow, Some(id.parse().unwrap()));
        assert!(p.no_progress);

        let Cli { command: Command::Reconcile(r) } =
            parse(&["reconcile", "--from", "2024-03-01", "--to", "2024-03-31"]).unwrap()
        else {
            panic!()
        };
        assert_eq!((r.from.to_string(), r.to.to_string(), r.json), ("2024-03-01".into(), "2024-03-31".into(), false));

        let Cli { command: Command::Token(t) } =
            parse(&["token", "--key", "k.pem", "--sub", "ops-demo", "--scope", "ops:read ops:write"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (t.key, t.sub.as_str(), t.scope.as_str(), t.minutes),
            ("k.pem".into(), "ops-demo", "ops:read ops:write", 60)
        );
        // A token that has already expired, as before (the value was any integer).
        let Cli { command: Command::Token(t) } =
            parse(&["token", "--key", "k", "--sub", "s", "--scope", "batch", "--minutes", "-5"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(t.minutes, -5);

        let v = verify_args(&["--date", "2024-03-02", "--all"]);
        assert_eq!((v.out, v.max_mismatches, v.concurrency, v.no_progress), (None, 0, 32, false));
        // As with the old parser, a repeated option's last value counts.
        let v = verify_args(&[
            "--date",
            "2024-03-01",
            "--all",
            "--concurrency",
            "4",
            "--date",
            "2024-03-02",
            "--concurrency",
            "8",
        ]);
        assert_eq!((v.date.to_string(), v.concurrency), ("2024-03-02".into(), 8));
    }

    /// Every invocation of bankctl elsewhere in the repository (deploy/*.sh, tests/, docs, README)
    /// still parses.
    #[test]
    fn the_repositorys_invocations_still_parse() {
        let run = "0190f0f0-0000-7000-8000-000000000001";
        let invocations: [&[&str]; 13] = [
            // deploy/demo-data.sh
            &["token", "--key", "state/auth/issuer.key.pem", "--minutes", "60", "--sub", "kim", "--scope", "customer"],
            &[
                "token",
                "--key",
                "issuer.key.pem",
                "--minutes",
                "60",
                "--sub",
                "ops-demo",
                "--scope",
                "ops:read ops:write",
            ],
            &["verify", "--date", "2024-03-02", "--all", "--no-progress", "--out", "state/verify-2024-03-02"],
            // tests/src/lib.rs, tests/tests/runs.rs, tests/tests/legacy.rs
            &["reconcile", "--from", "2024-03-01", "--to", "2024-03-02", "--json"],
            &["payout-run", "--follow", run, "--no-progress"],
            &["verify", "--date", "2024-03-02", "--all", "--no-progress", "--max-mismatches", "1", "--out", "/tmp/v"],
            // deploy/docker/auth/README.md, docs/migration.md, docs/operations.md, README.md
            &["token", "--key", "issuer.key.pem", "--sub", "kim", "--scope", "customer"],
            &[
                "verify",
                "--date",
                "2024-03-02",
                "--all",
                "--out",
                "verify-2024-03-02",
                "--max-mismatches",
                "0",
                "--concurrency",
                "32",
            ],
            &["verify", "--date", "2024-03-02", "--accounts", "ids.txt"],
            &["reconcile", "--from", "2026-11-20", "--to", "2026-12-10"],
            &["payout-run"],
            &["payout-run", "--accounts", "ids.txt"],
            &["payout-run", "--date", "2024-03-02", "--accounts", "ids.txt", "--no-progress"],
        ];
        for args in invocations {
            if let Err(e) = parse(args) {
                panic!("{args:?}: {e}");
            }
        }
    }
}
