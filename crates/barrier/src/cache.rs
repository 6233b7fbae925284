//! Records parsed from the barrier, kept with the stored bytes they came
//! from: reading one again costs a storage read but no decryption or parsing
//! while it is unchanged, and a change made by any server sharing the store
//! is seen on the next read.

use crate::barrier::{Barrier, Fresh, Stamp};
use crate::error::BarrierError;
use std::collections::HashMap;
use std::sync::RwLock;

/// A bounded map from storage key to a parsed record and its stamp. Keep
/// only records that are not secrets themselves (token properties, secret
/// metadata): plaintext secret values have no place in a long-lived cache.
pub struct ParsedCache<T> {
    entries: RwLock<HashMap<String, (Stamp, T)>>,
    capacity: usize,
}

impl<T: Clone> ParsedCache<T> {
    /// A cache of at most `capacity` records; past it, it starts over.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The record under `key` and its stamp, parsed by `parse` only when the
    /// stored bytes differ from the cached ones.
    pub fn get<E: From<BarrierError>>(
        &self,
        barrier: &Barrier,
        key: &str,
        parse: impl FnOnce(&[u8]) -> Result<T, E>,
    ) -> Result<Option<(T, Stamp)>, E> {
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        let found = match cached {
            Some((stamp, value)) => match barrier.get_unless(key, &stamp)? {
                Fresh::Missing => return Ok(None),
                Fresh::Unchanged => return Ok(Some((value, stamp))),
                Fresh::Changed(found) => found,
            },
            None => match barrier.get(key)? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        let value = parse(&found.value)?;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key.to_owned(), (found.stamp.clone(), value.clone()));
        Ok(Some((value, found.stamp)))
    }
}

impl<T: Clone> Default for ParsedCache<T> {
    /// Room for 4096 records.
    fn default() -> Self {
        Self::new(4096)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SealKind, UnsealKey, WriteSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tresor_storage::{Backend, Memory};
    use zeroize::Zeroizing;

    fn put(barrier: &Barrier, key: &str, value: &[u8]) {
        let mut w = WriteSet::new();
        w.put(key, Zeroizing::new(value.to_vec()));
        assert!(barrier.commit(w).unwrap().applied());
    }

    #[test]
    fn parses_once_per_stored_version_and_sees_other_writers() {
        let storage: Arc<dyn Backend> = Arc::new(Memory::new());
        let key = UnsealKey::generate();
        let barrier = Barrier::new(Arc::clone(&storage));
        let seal = SealKind::Shamir {
            shares: 1,
            threshold: 1,
        };
        barrier.initialize(seal, &key, &[]).unwrap();
        // Another server: its own barrier over the same storage.
        let other = Barrier::new(Arc::clone(&storage));
        other.unseal(&key).unwrap();
        let cache = ParsedCache::<String>::new(8);
        let parses = AtomicUsize::new(0);
        let read = || {
            cache
                .get(&barrier, "rec", |bytes| {
                    parses.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, BarrierError>(String::from_utf8_lossy(bytes).into_owned())
                })
                .unwrap()
                .map(|(v, _)| v)
        };
        assert_eq!(read(), None);
        put(&barrier, "rec", b"one");
        assert_eq!(read().as_deref(), Some("one"));
        assert_eq!(read().as_deref(), Some("one"));
        assert_eq!(parses.load(Ordering::SeqCst), 1);
        put(&other, "rec", b"two");
        assert_eq!(read().as_deref(), Some("two"));
        let mut delete = WriteSet::new();
        delete.delete("rec");
        other.commit(delete).unwrap();
        assert_eq!(read(), None);
    }
}
