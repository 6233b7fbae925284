use crate::{Backend, Op, Outcome, ScanVisitor, StorageError, Transaction};
use std::collections::BTreeMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keeps everything in process memory; gone when the process ends. For
/// `--dev` servers and tests only.
#[derive(Default)]
pub struct Memory {
    map: RwLock<BTreeMap<String, Vec<u8>>>,
    /// Moved under the write lock by every applied commit.
    generation: AtomicU64,
}

impl Memory {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (commit checks everything before it writes), so poison is harmless.
        self.map.read().unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Backend for Memory {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn reads_are_local(&self) -> bool {
        true
    }

    fn generation(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::Acquire))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.read().get(key).cloned())
    }

    fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, StorageError> {
        let map = self.read();
        crate::listing::list(prefix, after, limit, |from| {
            Ok::<_, StorageError>(map.range(from.to_owned()..).map(|(k, _)| Ok(k.clone())))
        })
    }

    fn scan(&self, visit: &mut ScanVisitor<'_>) -> Result<(), StorageError> {
        let copy = self.read().clone();
        for (key, value) in &copy {
            visit(key, value)?;
        }
        Ok(())
    }

    fn commit(&self, txn: Transaction) -> Result<Outcome, StorageError> {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        for condition in &txn.conditions {
            if !condition.holds(map.get(condition.key()).map(Vec::as_slice)) {
                return Ok(Outcome::ConditionFailed {
                    key: condition.key().to_owned(),
                });
            }
        }
        for op in txn.ops {
            match op {
                Op::Put { key, value } => {
                    map.insert(key, value);
                }
                Op::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        self.generation.fetch_add(1, Ordering::Release);
        Ok(Outcome::Applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        crate::conformance::run_all(&|| Box::new(Memory::new()));
    }
}
