//! The KV version 2 secrets engine: versioned secrets with check-and-set,
//! soft delete, undelete, destroy, metadata and pagination, as HashiCorp
//! Vault's `kv-v2`, plus check-and-set on metadata writes; and [`KvV1`],
//! Vault's unversioned `kv` (also every token's cubbyhole).
//!
//! One [`KvEngine`] serves one mount. Everything it keeps lives under the
//! mount's storage prefix, behind the barrier:
//! - `config`: the mount's settings;
//! - `meta/<path>`: a secret's metadata, one record per path (lists read these);
//! - `versions/<sha256 of path>/<n>`: the data of version `n`.
#![forbid(unsafe_code)]

mod duration;
mod engine;
mod error;
mod merge;
mod model;
mod secret;
mod time;
mod v1;

#[cfg(test)]
mod tests;

pub use duration::{format_duration, parse_duration};
pub use engine::{Clock, KvEngine, MetadataCache, SystemClock};
pub use error::KvError;
pub use model::{
    Config, ConfigUpdate, MetadataUpdate, MetadataView, SubkeysRead, VersionInfo, VersionRead,
    VersionSummary,
};
pub use secret::{SecretMap, wipe_json};
pub use time::Timestamp;
pub use v1::KvV1;
