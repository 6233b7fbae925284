//! Storage: untrusted bytes under string keys.
//!
//! This is tresor's bottom layer. A [`Backend`] knows nothing of encryption,
//! secrets or engines: it stores opaque values (ciphertext, written by the
//! barrier above) under plaintext keys, lists keys like a file system lists a
//! directory, and applies a [`Transaction`] atomically, which is what
//! check-and-set and counters above it need.
#![forbid(unsafe_code)]

mod embedded;
mod error;
mod listing;
mod lock;
mod memory;
mod txn;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use embedded::{Embedded, STORE_FILE_NAME};
pub use error::StorageError;
pub use lock::{DEFAULT_LOCK_WAIT, Locking};
pub use memory::Memory;
pub use txn::{Condition, Op, Outcome, Transaction};

/// What [`Backend::scan`] calls with each key and value.
pub type ScanVisitor<'a> = dyn FnMut(&str, &[u8]) -> Result<(), StorageError> + 'a;

/// A place that keeps bytes under keys.
///
/// Keys are `/`-separated paths. Every method is safe to call from many
/// threads at once; a `commit` that returns `Ok` is durable (for backends that
/// persist at all).
pub trait Backend: Send + Sync + 'static {
    /// Short name of the backend, for status output (`embedded`, `memory`, ...).
    fn kind(&self) -> &'static str;

    /// Whether reads are served from this machine (memory or a local file)
    /// in microseconds, so a caller may run them on an async worker; a
    /// networked backend waits on round trips and says no.
    fn reads_are_local(&self) -> bool {
        false
    }

    /// A number that moves with every commit, from a backend no other
    /// process can write (the embedded file, held under an exclusive lock;
    /// memory). While it stands still nothing stored has changed, so what a
    /// caller checked against the store at that number is still current
    /// without reading it again. `None` (PostgreSQL, where other servers
    /// write too): every check must read.
    fn generation(&self) -> Option<u64> {
        None
    }

    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError>;

    /// The entries directly under `prefix`, sorted: a key `prefix + "a"` is
    /// listed as `a`, and any key `prefix + "b/..."` as the folder `b/`
    /// (once). Only entries greater than `after` are returned, at most `limit`.
    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StorageError>;

    /// Applies the operations of `txn` all together if every condition holds,
    /// and none of them otherwise.
    fn commit(&self, txn: Transaction) -> Result<Outcome, StorageError>;

    /// Calls `visit` with every key and its value, in key order, all as
    /// they stood at one moment while commits go on (a snapshot). A backend
    /// that cannot read at one moment says so rather than mix moments.
    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<(), StorageError> {
        let _ = visit;
        Err(StorageError::Backend(format!(
            "the {} backend cannot read everything at one moment",
            self.kind()
        )))
    }

    /// Stores `value` under `key`, replacing what was there.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        self.commit(Transaction::new().put(key, value)).map(drop)
    }

    /// Removes `key`; removing a missing key is not an error.
    fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.commit(Transaction::new().delete(key)).map(drop)
    }
}
