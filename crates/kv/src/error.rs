use tresor_barrier::BarrierError;

/// Why a KV operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(
        "check-and-set parameter did not match the current version (expected {expected}, current {current})"
    )]
    CasMismatch { expected: u64, current: u64 },
    #[error("check-and-set parameter required for this call; pass `cas` with the current version")]
    CasRequired,
    #[error(
        "metadata check-and-set parameter did not match the current metadata version (expected {expected}, current {current}); read the metadata again and retry"
    )]
    MetadataCasMismatch { expected: u64, current: u64 },
    #[error("no secret at `{0}`")]
    NotFound(String),
    #[error("invalid path `{path}`: {problem}")]
    InvalidPath { path: String, problem: &'static str },
    #[error("{0}")]
    Invalid(String),
    #[error("`{0}` kept changing while it was being written; try again")]
    Contended(String),
    #[error("the record at `{0}` is not valid; restore the store from a backup")]
    Corrupt(String),
}

impl KvError {
    /// Whether the caller asked for something that cannot be done (as
    /// opposed to the store failing).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            KvError::Barrier(_) | KvError::Corrupt(_) | KvError::Contended(_)
        )
    }
}
