//! Running work that may wait on disk or network from code that may be on an
//! async worker thread.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`; on a multi-threaded runtime's worker, first hands the worker's
/// other tasks to another thread so they are not stalled meanwhile.
pub fn may_block<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
