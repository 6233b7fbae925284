//! Policies kept in the barrier and the ACLs compiled from them.

use crate::{
    Acl, DEFAULT_POLICY, DEFAULT_POLICY_NAME, Policy, PolicyError, ROOT_POLICY_NAME,
    ensure_deletable, ensure_writable,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tresor_barrier::{Barrier, BarrierError, ParsedCache, Stamp, WriteSet};
use zeroize::Zeroizing;

const PREFIX: &str = "sys/policy/";

/// Rewritten with every policy change, in the same transaction: its stored
/// bytes (fresh ciphertext each time) tell every server sharing the store
/// whether its compiled ACLs are still current.
const EPOCH: &str = "sys/policy-epoch";

/// Why the policy store refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyStoreError {
    /// The name or the text is not acceptable: the caller's to fix.
    #[error(transparent)]
    Invalid(#[from] PolicyError),
    #[error("the stored policy `{0}` is unreadable")]
    Corrupt(String),
    #[error("the stored policy `{name}` no longer parses: {error}")]
    Unparsable { name: String, error: PolicyError },
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

#[derive(Serialize, Deserialize)]
struct StoredPolicy {
    name: String,
    text: String,
}

/// Policies kept under `sys/policy/`, parsed once and compiled into ACLs
/// that are cached per set of policy names until a policy changes, on this
/// server or any other on the same store: each lookup first checks the
/// stored epoch (a [`ParsedCache`]: one small read, none at all on a store
/// only this server writes while nothing changed) and drops the cache when
/// it moved.
pub struct PolicyStore {
    barrier: Arc<Barrier>,
    epoch: ParsedCache<()>,
    acls: RwLock<Compiled>,
}

/// Compiled ACLs and the stored epoch they were compiled under.
#[derive(Default)]
struct Compiled {
    epoch: Option<Stamp>,
    acls: HashMap<Vec<String>, Arc<Acl>>,
}

impl PolicyStore {
    /// Opens the store, writing Vault's `default` policy on first use.
    pub fn open(barrier: Arc<Barrier>) -> Result<Self, PolicyStoreError> {
        let store = Self {
            barrier,
            epoch: ParsedCache::new(1),
            acls: RwLock::new(Compiled::default()),
        };
        if store.read(DEFAULT_POLICY_NAME)?.is_none() {
            store.save(DEFAULT_POLICY_NAME, DEFAULT_POLICY)?;
        }
        Ok(store)
    }

    /// The policy's text, if it exists (`root` has none).
    pub fn read(&self, name: &str) -> Result<Option<String>, PolicyStoreError> {
        let Some(entry) = self.barrier.get(&format!("{PREFIX}{name}"))? else {
            return Ok(None);
        };
        let stored: StoredPolicy = serde_json::from_slice(&entry.value)
            .map_err(|_| PolicyStoreError::Corrupt(name.to_owned()))?;
        Ok(Some(stored.text))
    }

    /// Every policy's name, `root` included, sorted.
    pub fn list(&self) -> Result<Vec<String>, PolicyStoreError> {
        let mut names = self.barrier.list(PREFIX, None, None)?;
        names.push(ROOT_POLICY_NAME.to_string());
        names.sort();
        Ok(names)
    }

    /// Parses and stores a policy under a name already in its stored form;
    /// on a parse error nothing changes and the old policy stays in force.
    pub fn write(&self, name: &str, text: &str) -> Result<(), PolicyStoreError> {
        let name = ensure_writable(name)?;
        Policy::parse(name, text)?;
        self.save(name, text)
    }

    /// Deletes a policy (not `root` or `default`); deleting one that does
    /// not exist succeeds.
    pub fn delete(&self, name: &str) -> Result<(), PolicyStoreError> {
        let name = ensure_deletable(name)?;
        let mut writes = WriteSet::new();
        writes
            .delete(&format!("{PREFIX}{name}"))
            .put(EPOCH, Zeroizing::new(Vec::new()));
        self.barrier.commit(writes)?;
        Ok(())
    }

    /// The ACL granted by a set of policy names; unknown names grant nothing.
    pub fn acl(&self, names: &[String]) -> Result<Arc<Acl>, PolicyStoreError> {
        let mut key: Vec<String> = names.to_vec();
        key.sort();
        key.dedup();
        // Read before the policies: an ACL compiled from policies newer than
        // this epoch is at worst dropped early, never kept too long.
        let epoch = self
            .epoch
            .get(&self.barrier, EPOCH, |_| Ok::<_, BarrierError>(()))?
            .map(|((), stamp)| stamp);
        {
            let compiled = self.acls.read().unwrap_or_else(|p| p.into_inner());
            if compiled.epoch == epoch
                && let Some(acl) = compiled.acls.get(&key)
            {
                return Ok(Arc::clone(acl));
            }
        }
        let acl = Arc::new(self.compile(&key)?);
        let mut compiled = self.acls.write().unwrap_or_else(|p| p.into_inner());
        if compiled.epoch != epoch {
            *compiled = Compiled {
                epoch,
                acls: HashMap::new(),
            };
        }
        compiled.acls.insert(key, Arc::clone(&acl));
        Ok(acl)
    }

    fn compile(&self, names: &[String]) -> Result<Acl, PolicyStoreError> {
        if names.iter().any(|n| n == ROOT_POLICY_NAME) {
            return Ok(Acl::root());
        }
        let mut policies = Vec::new();
        for name in names {
            if let Some(text) = self.read(name)? {
                let policy =
                    Policy::parse(name, &text).map_err(|error| PolicyStoreError::Unparsable {
                        name: name.clone(),
                        error,
                    })?;
                policies.push(policy);
            }
        }
        Ok(Acl::new(policies.iter()))
    }

    fn save(&self, name: &str, text: &str) -> Result<(), PolicyStoreError> {
        let stored = StoredPolicy {
            name: name.to_string(),
            text: text.to_string(),
        };
        let bytes = Zeroizing::new(serde_json::to_vec(&stored).expect("a policy serializes"));
        let mut writes = WriteSet::new();
        writes
            .put(&format!("{PREFIX}{name}"), bytes)
            .put(EPOCH, Zeroizing::new(Vec::new()));
        self.barrier.commit(writes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Operation;
    use tresor_storage::Memory;

    fn store() -> PolicyStore {
        PolicyStore::open(tresor_barrier::testing::unsealed(Arc::new(Memory::new()))).unwrap()
    }

    #[test]
    fn a_written_policy_grants_at_once_and_a_bad_one_changes_nothing() {
        let store = store();
        let names = vec!["app".to_string()];
        assert!(
            !store
                .acl(&names)
                .unwrap()
                .allowed("secret/data/a", Operation::Read)
                .is_allowed()
        );
        store
            .write("app", r#"path "secret/data/*" { capabilities = ["read"] }"#)
            .unwrap();
        assert!(
            store
                .acl(&names)
                .unwrap()
                .allowed("secret/data/a", Operation::Read)
                .is_allowed()
        );
        assert!(matches!(
            store.write("app", "path {"),
            Err(PolicyStoreError::Invalid(_))
        ));
        assert!(
            store
                .acl(&names)
                .unwrap()
                .allowed("secret/data/a", Operation::Read)
                .is_allowed()
        );
        store.delete("app").unwrap();
        assert!(
            !store
                .acl(&names)
                .unwrap()
                .allowed("secret/data/a", Operation::Read)
                .is_allowed()
        );
        assert_eq!(store.list().unwrap(), ["default", "root"]);
    }

    #[test]
    fn names_must_arrive_in_their_stored_form() {
        let store = store();
        store
            .write("admin", r#"path "*" { capabilities = ["sudo", "read"] }"#)
            .unwrap();
        let replacement = r#"path "x" { capabilities = ["read"] }"#;
        for spelled in [" admin", "Admin", "admin\t"] {
            assert!(store.write(spelled, replacement).is_err(), "{spelled:?}");
            assert!(store.delete(spelled).is_err(), "{spelled:?}");
        }
        assert!(store.read("admin").unwrap().unwrap().contains("sudo"));
        assert!(store.delete("default").is_err());
        assert!(store.write("root", replacement).is_err());
    }
}
