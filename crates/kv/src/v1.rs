//! Vault's KV version 1: one unversioned JSON object per path, replaced
//! whole on every write. Also the engine of each token's cubbyhole.
//!
//! Under the mount's storage prefix: `data/<path>`, disjoint from what
//! [`KvEngine`] keeps there, so a mount can be upgraded to version 2 in
//! place ([`KvV1::upgrade`]).

use crate::engine::check_path;
use crate::{KvEngine, KvError, SecretMap};
use std::sync::Arc;
use tresor_barrier::{Barrier, WriteSet};
use zeroize::Zeroizing;

/// How many keys one upgrade step moves, at most, per listing.
const PAGE: usize = 256;

pub struct KvV1 {
    barrier: Arc<Barrier>,
    root: String,
}

impl KvV1 {
    /// The engine of the mount whose storage prefix is `root` (ends in `/`).
    pub fn new(barrier: Arc<Barrier>, root: impl Into<String>) -> Self {
        Self {
            barrier,
            root: root.into(),
        }
    }

    fn key(&self, path: &str) -> String {
        format!("{}data/{path}", self.root)
    }

    pub fn read(&self, path: &str) -> Result<Option<SecretMap>, KvError> {
        check_path(path)?;
        let key = self.key(path);
        let Some(entry) = self.barrier.get(&key)? else {
            return Ok(None);
        };
        let value: serde_json::Value =
            serde_json::from_slice(&entry.value).map_err(|_| KvError::Corrupt(key.clone()))?;
        match value {
            serde_json::Value::Object(map) => Ok(Some(SecretMap::from_map(map))),
            _ => Err(KvError::Corrupt(key)),
        }
    }

    /// Replaces what `path` holds with `data`.
    pub fn write(&self, path: &str, data: &SecretMap) -> Result<(), KvError> {
        check_path(path)?;
        let bytes = serde_json::to_vec(data.as_map()).expect("a secret serializes");
        let mut writes = WriteSet::new();
        writes.put(&self.key(path), Zeroizing::new(bytes));
        self.barrier.commit(writes)?;
        Ok(())
    }

    /// Deletes `path`; deleting nothing succeeds.
    pub fn delete(&self, path: &str) -> Result<(), KvError> {
        check_path(path)?;
        let mut writes = WriteSet::new();
        writes.delete(&self.key(path));
        self.barrier.commit(writes)?;
        Ok(())
    }

    /// The secrets and folders (ending in `/`) directly under `folder`
    /// (empty for the top), sorted; only those after `after`, at most `limit`.
    pub fn list(
        &self,
        folder: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, KvError> {
        let mut prefix = format!("{}data/{folder}", self.root);
        if !folder.is_empty() && !folder.ends_with('/') {
            prefix.push('/');
        }
        Ok(self.barrier.list(&prefix, after, limit)?)
    }

    /// Moves every secret into `target` (the same mount's version 2
    /// engine) as its version 1, then removes it here; returns how many
    /// moved. Safe to run again after an interruption: a secret already
    /// in `target` is only removed here.
    pub fn upgrade(&self, target: &KvEngine) -> Result<usize, KvError> {
        let mut moved = 0;
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            let mut after: Option<String> = None;
            loop {
                let names = self.list(&folder, after.as_deref(), Some(PAGE))?;
                let Some(last) = names.last().cloned() else {
                    break;
                };
                for name in names {
                    let path = format!("{folder}{name}");
                    if name.ends_with('/') {
                        folders.push(path);
                        continue;
                    }
                    if target.metadata(&path)?.is_none()
                        && let Some(data) = self.read(&path)?
                    {
                        target.write(&path, &data, Some(0))?;
                    }
                    self.delete(&path)?;
                    moved += 1;
                }
                after = Some(last);
            }
        }
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tresor_storage::Memory;

    fn map(value: serde_json::Value) -> SecretMap {
        SecretMap::from_map(value.as_object().unwrap().clone())
    }

    #[test]
    fn a_write_replaces_the_whole_object() {
        let barrier = tresor_barrier::testing::unsealed(Arc::new(Memory::new()));
        let kv = KvV1::new(barrier, "logical/m/");
        kv.write("app/db", &map(json!({"user": "u", "password": "p"})))
            .unwrap();
        kv.write("app/db", &map(json!({"password": "q"}))).unwrap();
        assert_eq!(
            serde_json::Value::Object(kv.read("app/db").unwrap().unwrap().as_map().clone()),
            json!({"password": "q"})
        );
        kv.write("app/api", &map(json!({"k": "v"}))).unwrap();
        assert_eq!(kv.list("", None, None).unwrap(), ["app/"]);
        assert_eq!(kv.list("app", None, None).unwrap(), ["api", "db"]);
        kv.delete("app/db").unwrap();
        assert!(kv.read("app/db").unwrap().is_none());
        assert!(kv.read("../escape").is_err());
        assert!(kv.write("", &map(json!({}))).is_err());
    }

    #[test]
    fn an_upgrade_moves_every_secret_and_can_run_again() {
        let barrier = tresor_barrier::testing::unsealed(Arc::new(Memory::new()));
        let kv = KvV1::new(Arc::clone(&barrier), "logical/m/");
        for i in 0..600 {
            kv.write(&format!("team/s{i}"), &map(json!({"n": i})))
                .unwrap();
        }
        kv.write("top", &map(json!({"n": "top"}))).unwrap();
        let v2 = KvEngine::new(Arc::clone(&barrier), "logical/m/");
        // An interrupted first run: one secret already moved, still here too.
        v2.write("top", &map(json!({"n": "top"})), Some(0)).unwrap();
        assert_eq!(kv.upgrade(&v2).unwrap(), 601);
        assert_eq!(kv.upgrade(&v2).unwrap(), 0);
        assert!(kv.list("", None, None).unwrap().is_empty());
        let read = v2.read("team/s599", None).unwrap().unwrap();
        assert_eq!(read.metadata.version, 1);
        assert_eq!(
            serde_json::Value::Object(read.data.unwrap().as_map().clone()),
            json!({"n": 599})
        );
        assert_eq!(v2.read("top", None).unwrap().unwrap().metadata.version, 1);
        assert_eq!(v2.list("team", None, None).unwrap().len(), 600);
    }
}
