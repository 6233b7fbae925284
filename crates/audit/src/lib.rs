//! Audit logging for tresor, shaped like Vault's file audit device.
//!
//! [`AuditEntry`] values are written as JSON lines with every token, accessor and data string
//! replaced by `hmac-sha256:<hex>` under a per-device [`Salt`]. Each line carries the SHA-256
//! of the previous line, so [`verify`] detects edited, deleted, inserted or reordered lines.
//! [`FileDevice`] writes from a dedicated thread and fails a caller after a bounded wait
//! instead of hanging on a stuck disk. The format is described in `docs/audit.md`.
#![forbid(unsafe_code)]

mod broker;
mod chain;
mod device;
mod entry;
mod error;
mod salt;
mod verify;

pub use broker::{AuditBroker, BrokerConfig, BrokerError, DeclaredDevice, Queued, load_checkpoint};
pub use chain::Checkpoint;
pub use device::{FileDevice, FileDeviceConfig, FsyncPolicy, Opened, Pending};
pub use entry::{AuditEntry, AuthInfo, EntryKind, RequestInfo, ResponseInfo};
pub use error::{AuditError, ChainProblem};
pub use salt::{HASH_PREFIX, Salt};
pub use verify::{VerifyReport, verify, verify_with_checkpoint};
