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
        "the store at {path} is in use by {holders}, still after waiting {}; stop it (for example a running `tresor server`) or talk to it instead",
        seconds(.waited)
    )]
    Locked {
        path: PathBuf,
        /// Who holds it, from their notes: `process 4242 (tresor kv put,
        /// writing since ...)`. Never a value.
        holders: String,
        waited: std::time::Duration,
    },
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

/// A duration as `10s` or `0.5s`.
fn seconds(d: &std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}
