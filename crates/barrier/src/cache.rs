//! Records parsed from the barrier, kept with the stored bytes they came
//! from: reading one again costs a storage read but no decryption or parsing
//! while it is unchanged, and a change made by any server sharing the store
//! is seen on the next read. On a store only this process writes, not even
//! the storage read: a record checked at the current storage generation is
//! returned as it is.

use crate::barrier::{Barrier, Fresh, Stamp};
use crate::error::BarrierError;
use std::collections::HashMap;
use std::sync::RwLock;

/// A bounded map from storage key to a parsed record and its stamp. Keep
/// only records that are not secrets themselves (token properties, secret
/// metadata): plaintext secret values have no place in a long-lived cache.
pub struct ParsedCache<T> {
    entries: RwLock<HashMap<String, Cached<T>>>,
    capacity: usize,
}

#[derive(Clone)]
struct Cached<T> {
    stamp: Stamp,
    value: T,
    /// The storage generation at which `stamp` was last seen stored.
    checked: Option<u64>,
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
        if barrier.is_sealed() {
            return Err(BarrierError::Sealed.into());
        }
        // Taken before the read: a commit after it moves the generation,
        // so what the read saw is never trusted past that commit.
        let generation = barrier.generation();
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        let found = match cached {
            Some(cached) if generation.is_some() && cached.checked == generation => {
                return Ok(Some((cached.value, cached.stamp)));
            }
            Some(cached) => match barrier.get_unless(key, &cached.stamp)? {
                Fresh::Missing => return Ok(None),
                Fresh::Unchanged => {
                    let found = (cached.value.clone(), cached.stamp.clone());
                    if generation.is_some() {
                        self.insert(
                            key,
                            Cached {
                                checked: generation,
                                ..cached
                            },
                        );
                    }
                    return Ok(Some(found));
                }
                Fresh::Changed(found) => found,
            },
            None => match barrier.get(key)? {
                Some(found) => found,
                None => return Ok(None),
            },
        };
        let value = parse(&found.value)?;
        self.insert(
            key,
            Cached {
                stamp: found.stamp.clone(),
                value: value.clone(),
                checked: generation,
            },
        );
        Ok(Some((value, found.stamp)))
    }

    fn insert(&self, key: &str, cached: Cached<T>) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= self.capacity && !entries.contains_key(key) {
            entries.clear();
        }
        entries.insert(key.to_owned(), cached);
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

    /// Memory storage that counts reads and, when `shared`, offers no
    /// generation, as PostgreSQL does.
    struct Counting {
        inner: Memory,
        shared: bool,
        gets: AtomicUsize,
    }

    impl Backend for Counting {
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn generation(&self) -> Option<u64> {
            if self.shared {
                None
            } else {
                self.inner.generation()
            }
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>, tresor_storage::StorageError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.inner.get(key)
        }
        fn list(
            &self,
            prefix: &str,
            after: Option<&str>,
            limit: Option<usize>,
        ) -> Result<Vec<String>, tresor_storage::StorageError> {
            self.inner.list(prefix, after, limit)
        }
        fn commit(
            &self,
            txn: tresor_storage::Transaction,
        ) -> Result<tresor_storage::Outcome, tresor_storage::StorageError> {
            self.inner.commit(txn)
        }
    }

    /// Parses once per stored version, sees a change made through another
    /// barrier on the same storage at once, and reads storage again only
    /// when the storage offers no generation (or it moved).
    fn check(shared: bool) {
        let storage = Arc::new(Counting {
            inner: Memory::new(),
            shared,
            gets: AtomicUsize::new(0),
        });
        let dyn_storage: Arc<dyn Backend> = storage.clone();
        let key = UnsealKey::generate();
        let barrier = Barrier::new(Arc::clone(&dyn_storage));
        let seal = SealKind::Shamir {
            shares: 1,
            threshold: 1,
        };
        barrier.initialize(seal, &key, &[]).unwrap();
        // Another server: its own barrier over the same storage.
        let other = Barrier::new(Arc::clone(&dyn_storage));
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
        let gets = storage.gets.load(Ordering::SeqCst);
        assert_eq!(read().as_deref(), Some("one"));
        assert_eq!(read().as_deref(), Some("one"));
        let extra = storage.gets.load(Ordering::SeqCst) - gets;
        assert_eq!(extra, if shared { 2 } else { 0 });
        assert_eq!(parses.load(Ordering::SeqCst), 1);
        put(&other, "rec", b"two");
        assert_eq!(read().as_deref(), Some("two"));
        let mut delete = WriteSet::new();
        delete.delete("rec");
        other.commit(delete).unwrap();
        assert_eq!(read(), None);
        barrier.seal();
        assert!(matches!(
            cache.get(&barrier, "rec", |_| Ok::<_, BarrierError>(String::new())),
            Err(BarrierError::Sealed)
        ));
    }

    #[test]
    fn a_store_only_this_process_writes_is_not_read_again() {
        check(false);
    }

    #[test]
    fn a_shared_store_is_read_on_every_lookup() {
        check(true);
    }
}
