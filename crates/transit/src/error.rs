use tresor_barrier::BarrierError;

/// Why a transit operation was refused or failed.
///
/// The messages of the variants a caller causes are Vault's own, so a
/// client that matches on them (hvac raises on the HTTP status, scripts grep
/// the text) sees the same words.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransitError {
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    /// No key of that name (Vault: 400 "encryption key not found").
    #[error("encryption key not found")]
    KeyNotFound(String),
    /// The request cannot be done as asked: a bad parameter, a version out
    /// of range, a ciphertext that does not open (Vault: 400).
    #[error("{0}")]
    Invalid(String),
    /// The key's `deletion_allowed` is false (Vault: 400).
    #[error("deletion is not allowed for this key")]
    DeletionNotAllowed,
    /// The key's `exportable` is false (Vault: 400).
    #[error("private key material is not exportable")]
    NotExportable,
    #[error("the transit key `{0}` kept changing while it was being written; try again")]
    Contended(String),
    #[error("the transit key record `{0}` is not valid; restore the store from a backup")]
    Corrupt(String),
}

impl TransitError {
    /// Whether the caller asked for something that cannot be done (a 4xx),
    /// rather than the store failing (a 5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            TransitError::Barrier(_) | TransitError::Contended(_) | TransitError::Corrupt(_)
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        TransitError::Invalid(message.into())
    }
}
