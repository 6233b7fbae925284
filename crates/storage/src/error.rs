use std::path::PathBuf;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot access the store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the store at {path} is in use by another process; stop it (for example a running `tresor server`) or talk to it instead"
    )]
    Locked { path: PathBuf },
    #[error(
        "{path} is not a readable tresor store ({detail}); check the path, or restore the store from a backup"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error("no store at {path}; create one with `tresor operator init`")]
    Missing { path: PathBuf },
    #[error("the store at {path} was opened read-only")]
    ReadOnly { path: PathBuf },
    #[error("the storage backend failed: {0}")]
    Backend(String),
}
