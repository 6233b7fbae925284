//! The core: a [`Store`] is an unsealed barrier plus its mount table, the
//! router that sends each path to the secrets engine mounted there.
//!
//! [`open`] is the one way in for an embedded store: it checks the unseal key
//! on a read-only handle before the file is opened for writing, so a wrong key
//! leaves the file exactly as it was.
#![forbid(unsafe_code)]

mod error;
mod migrate;
mod mounts;
mod on_demand;
mod open;
pub mod snapshot;
mod store;

#[cfg(test)]
mod tests;

pub use error::CoreError;
pub use migrate::{Copied, Summary, copy_store, summarize};
pub use mounts::{ListingVisibility, MountConfig, MountEntry, MountType, Tune};
pub use open::{
    Access, InitOptions, InitOutput, KmsConnector, Unseal, default_key_file, init, initialize,
    initialize_with_kms, migrate_seal, open, open_with, seal_config, unseal_key,
};
pub use store::Store;
pub use tresor_storage::{DEFAULT_LOCK_WAIT, Locking};
