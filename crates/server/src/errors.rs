//! How engine errors become Vault's status codes.

use crate::request::ApiError;
use tresor_barrier::BarrierError;
use tresor_core::CoreError;
use tresor_kv::KvError;

pub fn barrier(error: BarrierError) -> ApiError {
    match error {
        BarrierError::Sealed => ApiError::sealed(),
        BarrierError::NotInitialized => ApiError::new(501, "Vault is not initialized"),
        BarrierError::Storage(e) => storage_unavailable(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

fn storage_unavailable(message: String) -> ApiError {
    ApiError::new(503, format!("storage unavailable: {message}"))
}

pub fn kv(error: KvError) -> ApiError {
    match error {
        KvError::Barrier(e) => barrier(e),
        KvError::NotFound(_) => ApiError::not_found(),
        KvError::CasMismatch { .. } => {
            ApiError::bad_request("check-and-set parameter did not match the current version")
        }
        KvError::CasRequired => {
            ApiError::bad_request("check-and-set parameter required for this call")
        }
        e @ (KvError::MetadataCasMismatch { .. }
        | KvError::InvalidPath { .. }
        | KvError::Invalid(_)) => ApiError::bad_request(e.to_string()),
        e @ (KvError::Contended(_) | KvError::Corrupt(_)) => ApiError::internal(e.to_string()),
    }
}

pub fn core(error: CoreError) -> ApiError {
    match error {
        CoreError::Kv(e) => kv(e),
        CoreError::Barrier(e) => barrier(e),
        CoreError::Storage(e) => storage_unavailable(e.to_string()),
        e @ (CoreError::NoMount(_) | CoreError::InvalidMount(_)) => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}
