//! An embedded store that is opened for writing only when something is
//! written: commands that end up writing nothing (a refused check-and-set, a
//! path that names no mount) never open the file for writing at all.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use tresor_storage::{Backend, Embedded, Locking, Outcome, ScanVisitor, StorageError, Transaction};

pub(crate) struct WriteOnDemand {
    dir: PathBuf,
    locking: Locking,
    /// Empty only while the read-only handle is swapped for a writable one.
    handle: Mutex<Option<Embedded>>,
}

impl WriteOnDemand {
    pub(crate) fn new(dir: PathBuf, locking: Locking, read_only: Embedded) -> Self {
        Self {
            dir,
            locking,
            handle: Mutex::new(Some(read_only)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Embedded>> {
        // The handle is swapped whole, never left half-built: poison is harmless.
        self.handle.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Embedded) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let guard = self.lock();
        let handle = guard.as_ref().ok_or_else(|| StorageError::Missing {
            path: self.dir.clone(),
        })?;
        f(handle)
    }
}

impl Backend for WriteOnDemand {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn reads_are_local(&self) -> bool {
        true
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        self.with(|h| h.get(key))
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StorageError> {
        self.with(|h| h.list(prefix, after, limit))
    }

    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<(), StorageError> {
        self.with(|h| h.scan(visit))
    }

    fn commit(&self, txn: Transaction) -> Result<Outcome, StorageError> {
        let mut guard = self.lock();
        if guard.as_ref().is_none_or(Embedded::is_read_only) {
            // The read-only handle holds a shared lock: release it before
            // asking for the exclusive one.
            guard.take();
            match Embedded::open_with(&self.dir, &self.locking) {
                Ok(writable) => *guard = Some(writable),
                Err(error) => {
                    *guard = Embedded::open_read_only_with(&self.dir, &self.locking).ok();
                    return Err(error);
                }
            }
        }
        let handle = guard.as_ref().ok_or_else(|| StorageError::Missing {
            path: self.dir.clone(),
        })?;
        handle.commit(txn)
    }
}
