//! The options every command takes (`--store`, `--key-file`, `--address`,
//! `--lock-wait`, `--format`), and the unseal shares from the environment.

use crate::failure::Failure;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use tresor_barrier::seal::Share;
use tresor_core::Locking;
use zeroize::Zeroizing;

/// Where the store is and how to unseal it.
#[derive(Args)]
pub struct StoreArgs {
    /// The embedded store's directory.
    #[arg(long, global = true, env = "TRESOR_STORE", default_value = ".tresor")]
    pub store: PathBuf,
    /// The key file that unseals the store (default: the one recorded at init).
    #[arg(long, global = true, env = "TRESOR_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// The server to use instead of the embedded store (default: TRESOR_ADDR, then VAULT_ADDR).
    #[arg(long, global = true, value_name = "URL")]
    pub address: Option<String>,
    /// How long to wait for another command holding an embedded store (a
    /// `tresor apply`, a `kv put`) to let go of it: `10s`, `1m`, `0s`.
    #[arg(
        long,
        global = true,
        env = "TRESOR_LOCK_WAIT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub lock_wait: Duration,
}

/// A group of store commands, with the output format they share.
#[derive(Args)]
pub struct Group<C: clap::Subcommand> {
    /// Output format.
    #[arg(long, global = true, env = "TRESOR_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(subcommand)]
    pub command: C,
}

/// What every store command needs from the command line.
pub struct GlobalArgs {
    pub store: PathBuf,
    pub key_file: Option<PathBuf>,
    pub address: Option<String>,
    pub format: Format,
    /// How an embedded store is waited for, and how this command names
    /// itself to the others waiting.
    pub locking: Locking,
}

impl StoreArgs {
    /// The options of the command `holder` (`tresor kv put`: names only).
    pub fn with_format(&self, format: Format, holder: &str) -> GlobalArgs {
        GlobalArgs {
            store: self.store.clone(),
            key_file: self.key_file.clone(),
            address: self.address.clone(),
            format,
            locking: Locking {
                wait: self.lock_wait,
                holder: holder.to_owned(),
            },
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Shamir shares from `TRESOR_UNSEAL_KEYS`, separated by commas or spaces.
pub fn shares_from_env() -> Result<Vec<Share>, Failure> {
    let Some(text) = std::env::var_os("TRESOR_UNSEAL_KEYS") else {
        return Ok(Vec::new());
    };
    let text = Zeroizing::new(text.to_string_lossy().into_owned());
    parse_shares(&text)
}

pub fn parse_shares(text: &str) -> Result<Vec<Share>, Failure> {
    text.split([',', ' ', '\n', '\t'])
        .filter(|s| !s.trim().is_empty())
        .map(|s| Share::parse(s).map_err(Failure::usage))
        .collect()
}
