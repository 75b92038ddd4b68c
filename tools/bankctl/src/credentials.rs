//! `bankctl credentials`: the service credentials' keys, made and used from the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use platform::credential::{Credentials, CALLERS, MAX_LIFETIME};

/// Make service keys, or sign a service credential
///
/// `generate` writes a private key per caller (DIR/<caller>.key.pem, mode 0600) and the trust set
/// every service reads (DIR/trust.jwks.json). `token` prints a credential for one service, signed
/// with SERVICE_KEY (or SERVICE_KEY_FILE) as listed in SERVICE_TRUST (or SERVICE_TRUST_FILE): for
/// curl, and for a scraper's credentials file.
#[derive(Args, Debug)]
pub(crate) struct CredentialsArgs {
    #[command(subcommand)]
    command: CredentialsCommand,
}

#[derive(Subcommand, Debug)]
enum CredentialsCommand {
    /// Write a new key for each caller and the trust set listing them
    Generate {
        /// Where to write the files (created if missing)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Only these callers (comma-separated) [default: every service and ops]
        #[arg(long, value_name = "CALLERS", value_delimiter = ',')]
        callers: Vec<String>,
    },
    /// Print a service credential for calls to one service
    Token {
        /// The service the credential is for (its aud): customer, account-info, accounting,
        /// interest, tax-consumer, legacy-core or gateway
        #[arg(long, value_name = "SERVICE")]
        audience: String,
        /// Seconds the credential lives (at most 900)
        #[arg(long, value_name = "N", default_value_t = 300)]
        seconds: u64,
    },
}

pub(crate) fn run(a: CredentialsArgs) -> anyhow::Result<bool> {
    match a.command {
        CredentialsCommand::Generate { out, callers } => {
            let callers: Vec<&str> =
                if callers.is_empty() { CALLERS.to_vec() } else { callers.iter().map(String::as_str).collect() };
            let (keys, trust) = platform::credential::generate(&callers)?;
            std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
            for (caller, pem) in keys {
                let file = out.join(format!("{caller}.key.pem"));
                write_private(&file, &pem).with_context(|| format!("cannot write {}", file.display()))?;
            }
            std::fs::write(out.join("trust.jwks.json"), trust)?;
            eprintln!("wrote {} keys and trust.jwks.json to {}", callers.len(), out.display());
            Ok(true)
        }
        CredentialsCommand::Token { audience, seconds } => {
            anyhow::ensure!(seconds <= MAX_LIFETIME.as_secs(), "at most {} seconds", MAX_LIFETIME.as_secs());
            let credentials = Credentials::from_env(&platform::config::Env::process())?;
            println!("{}", credentials.signer.mint(&audience, Duration::from_secs(seconds))?);
            Ok(true)
        }
    }
}

/// A private key readable by its owner only.
fn write_private(file: &std::path::Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(file)?.write_all(pem.as_bytes())
}
