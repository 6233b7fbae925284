use std::path::PathBuf;
use tresor_storage::StorageError;

/// Why the barrier refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the store is sealed; unseal it with `tresor operator unseal` (or its key file)")]
    Sealed,
    #[error("the store is not initialized; run `tresor operator init`")]
    NotInitialized,
    #[error("the store is already initialized")]
    AlreadyInitialized,
    #[error(
        "the unseal key is wrong: it does not open this store's root key; check the key file or the shares"
    )]
    WrongUnsealKey,
    #[error(
        "the value stored at `{key}` failed its integrity check (tampered with or corrupted); restore it from a backup"
    )]
    Integrity { key: String },
    #[error("the store's seal configuration is unreadable ({0}); restore the store from a backup")]
    BadSealConfig(String),
    #[error("`{0}` is reserved for the barrier's own records")]
    Reserved(String),
    #[error("invalid seal settings: {0}")]
    InvalidSeal(String),
    #[error("invalid unseal share: {0}")]
    BadShare(String),
    #[error("key file {path}: {problem}")]
    KeyFile { path: PathBuf, problem: String },
    /// The KMS refused or could not be reached; the message says which.
    #[error("{0}")]
    Kms(String),
}
