//! Global options, and opening the store they name.

use crate::failure::Failure;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use tresor_barrier::seal::Share;
use tresor_core::{Access, Store, Unseal};
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
}

impl StoreArgs {
    pub fn with_format(&self, format: Format) -> GlobalArgs {
        GlobalArgs {
            store: self.store.clone(),
            key_file: self.key_file.clone(),
            address: self.address.clone(),
            format,
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

/// What unseals the store named by the global options: its key file, the
/// shares in TRESOR_UNSEAL_KEYS, or the KMS its seal record names.
pub fn unseal(global: &GlobalArgs) -> Result<Unseal, Failure> {
    Ok(Unseal {
        key_file: global.key_file.clone(),
        shares: shares_from_env()?,
        kms: kms_connector(),
    })
}

/// Opens and unseals the store named by the global options.
pub fn open(global: &GlobalArgs, access: Access) -> Result<Store, Failure> {
    Ok(tresor_core::open(&global.store, &unseal(global)?, access)?)
}

/// The AWS KMS client of a store's seal record. TRESOR_AWSKMS_KEY_ID and
/// TRESOR_AWSKMS_ENDPOINT override what the record says (a key re-created
/// under another id, a new VPC endpoint).
#[cfg(feature = "aws")]
pub fn kms_connector() -> Option<tresor_core::KmsConnector> {
    Some(std::sync::Arc::new(|record: &tresor_barrier::KmsSeal| {
        let mut settings = tresor_awskms::Settings::from_record(record).ok_or_else(|| {
            tresor_barrier::BarrierError::Kms(
                "the store names a KMS this tresor does not know".into(),
            )
        })?;
        if let Some(key_id) = std::env::var("TRESOR_AWSKMS_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty())
        {
            settings.key_id = key_id;
        }
        if let Some(endpoint) = std::env::var("TRESOR_AWSKMS_ENDPOINT")
            .ok()
            .filter(|v| !v.is_empty())
        {
            settings.endpoint = Some(endpoint);
        }
        let kms: std::sync::Arc<dyn tresor_barrier::Kms> =
            std::sync::Arc::new(tresor_awskms::AwsKms::new(settings)?);
        Ok(kms)
    }))
}

#[cfg(not(feature = "aws"))]
pub fn kms_connector() -> Option<tresor_core::KmsConnector> {
    None
}
