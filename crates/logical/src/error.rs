//! The core's errors, and how the engines' errors become them. The HTTP
//! edge alone maps them to status codes.

use tresor_audit::BrokerError;
use tresor_barrier::BarrierError;
use tresor_core::CoreError;
use tresor_kv::KvError;
use tresor_policy::PolicyStoreError;
use tresor_tokens::TokenError;

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No token, an unknown one, or one whose policies do not allow this.
    #[error("permission denied")]
    PermissionDenied,
    /// Refused for who the caller is, with the reason Vault gives (a 403).
    #[error("{0}")]
    Denied(String),
    /// No endpoint answers this path.
    #[error("no handler for route \"{0}\". route entry not found.")]
    UnsupportedPath(String),
    /// The endpoint exists but does not do this operation.
    #[error("unsupported operation")]
    UnsupportedOperation,
    /// The target does not exist.
    #[error("not found")]
    NotFound,
    /// The request asks for something that cannot be done.
    #[error("{0}")]
    BadRequest(String),
    #[error("Vault is sealed")]
    Sealed,
    #[error("Vault is not initialized")]
    NotInitialized,
    /// The store could not be reached.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// No audit device recorded the request, so it was refused.
    #[error(
        "internal error: no audit device could record the request, so it was refused; check the audit log's disk"
    )]
    AuditFailed,
    /// The seal's key service (a KMS) did not unwrap the key.
    #[error("{0}")]
    Seal(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::BadRequest(message.into())
    }

    /// Whether the caller was refused for who it is (counted against it).
    pub fn is_denial(&self) -> bool {
        matches!(self, Error::PermissionDenied | Error::Denied(_))
    }
}

impl From<BarrierError> for Error {
    fn from(error: BarrierError) -> Self {
        match error {
            BarrierError::Sealed => Error::Sealed,
            BarrierError::NotInitialized => Error::NotInitialized,
            BarrierError::Storage(e) => Error::Unavailable(e.to_string()),
            BarrierError::WrongUnsealKey => Error::bad_request(
                "the unseal key is wrong: it does not open this store's root key",
            ),
            e @ (BarrierError::AlreadyInitialized
            | BarrierError::InvalidSeal(_)
            | BarrierError::BadShare(_)) => Error::BadRequest(e.to_string()),
            BarrierError::Kms(why) => Error::Seal(why),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<KvError> for Error {
    fn from(error: KvError) -> Self {
        match error {
            KvError::Barrier(e) => e.into(),
            KvError::NotFound(_) => Error::NotFound,
            KvError::CasMismatch { .. } => {
                Error::bad_request("check-and-set parameter did not match the current version")
            }
            KvError::CasRequired => {
                Error::bad_request("check-and-set parameter required for this call")
            }
            e if e.is_client_error() => Error::BadRequest(e.to_string()),
            e => Error::Internal(e.to_string()),
        }
    }
}

impl From<CoreError> for Error {
    fn from(error: CoreError) -> Self {
        match error {
            CoreError::Kv(e) => e.into(),
            CoreError::Transit(e) => e.into(),
            CoreError::Barrier(e) => e.into(),
            CoreError::Storage(e) => Error::Unavailable(e.to_string()),
            e @ (CoreError::NoMount(_) | CoreError::InvalidMount(_)) => {
                Error::BadRequest(e.to_string())
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<TokenError> for Error {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Barrier(e) => e.into(),
            e if e.is_client_error() => Error::BadRequest(e.to_string()),
            e => Error::Internal(e.to_string()),
        }
    }
}

impl From<tresor_transit::TransitError> for Error {
    fn from(error: tresor_transit::TransitError) -> Self {
        match error {
            tresor_transit::TransitError::Barrier(e) => e.into(),
            e if e.is_client_error() => Error::BadRequest(e.to_string()),
            e => Error::Internal(e.to_string()),
        }
    }
}

impl From<PolicyStoreError> for Error {
    fn from(error: PolicyStoreError) -> Self {
        match error {
            PolicyStoreError::Barrier(e) => e.into(),
            PolicyStoreError::Invalid(e) => {
                Error::bad_request(format!("failed to parse policy: {e}"))
            }
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<BrokerError> for Error {
    fn from(error: BrokerError) -> Self {
        match error {
            BrokerError::Barrier(e) => e.into(),
            BrokerError::NotRecorded => Error::AuditFailed,
            e @ (BrokerError::Invalid(_)
            | BrokerError::ApiDisabled
            | BrokerError::OutsideApiDir { .. }
            | BrokerError::Declared(_)
            | BrokerError::BadChainId
            | BrokerError::Open { .. }) => Error::BadRequest(e.to_string()),
            other => Error::Internal(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
