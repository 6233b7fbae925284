//! Stored ACL policies and the compiled ACLs built from them.

use crate::request::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tresor_barrier::{Barrier, ParsedCache, Stamp, WriteSet};
use tresor_policy::{Acl, DEFAULT_POLICY, DEFAULT_POLICY_NAME, Policy, ROOT_POLICY_NAME};
use zeroize::Zeroizing;

const PREFIX: &str = "sys/policy/";

/// Rewritten with every policy change, in the same transaction: its stored
/// bytes (fresh ciphertext each time) tell every server sharing the store
/// whether its compiled ACLs are still current.
const EPOCH: &str = "sys/policy-epoch";

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
    pub fn open(barrier: Arc<Barrier>) -> Result<Self, ApiError> {
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

    /// The policy's text, if it exists (`root` has no text).
    pub fn read(&self, name: &str) -> Result<Option<String>, ApiError> {
        let Some(entry) = self
            .barrier
            .get(&format!("{PREFIX}{name}"))
            .map_err(crate::errors::barrier)?
        else {
            return Ok(None);
        };
        let stored: StoredPolicy = serde_json::from_slice(&entry.value)
            .map_err(|_| ApiError::internal(format!("the stored policy `{name}` is unreadable")))?;
        Ok(Some(stored.text))
    }

    pub fn list(&self) -> Result<Vec<String>, ApiError> {
        let mut names = self
            .barrier
            .list(PREFIX, None, None)
            .map_err(crate::errors::barrier)?;
        names.push(ROOT_POLICY_NAME.to_string());
        names.sort();
        Ok(names)
    }

    /// Parses and stores a policy; on a parse error nothing changes and the
    /// old policy stays in force.
    pub fn write(&self, name: &str, text: &str) -> Result<(), ApiError> {
        let name = tresor_policy::ensure_writable(name)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Policy::parse(&name, text)
            .map_err(|e| ApiError::bad_request(format!("failed to parse policy: {e}")))?;
        self.save(&name, text)
    }

    pub fn delete(&self, name: &str) -> Result<(), ApiError> {
        let name = tresor_policy::ensure_deletable(name)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut writes = WriteSet::new();
        writes
            .delete(&format!("{PREFIX}{name}"))
            .put(EPOCH, Zeroizing::new(Vec::new()));
        self.barrier
            .commit(writes)
            .map_err(crate::errors::barrier)?;
        Ok(())
    }

    /// The ACL granted by a set of policy names; unknown names grant nothing.
    pub fn acl(&self, names: &[String]) -> Result<Arc<Acl>, ApiError> {
        let mut key: Vec<String> = names.to_vec();
        key.sort();
        key.dedup();
        // Read before the policies: an ACL compiled from policies newer than
        // this epoch is at worst dropped early, never kept too long.
        let epoch = self
            .epoch
            .get(&self.barrier, EPOCH, |_| {
                Ok::<_, tresor_barrier::BarrierError>(())
            })
            .map_err(crate::errors::barrier)?
            .map(|((), stamp)| stamp);
        {
            let compiled = self.acls.read().unwrap_or_else(|p| p.into_inner());
            if compiled.epoch == epoch
                && let Some(acl) = compiled.acls.get(&key)
            {
                return Ok(Arc::clone(acl));
            }
        }
        let acl = if key.iter().any(|n| n == ROOT_POLICY_NAME) {
            Acl::root()
        } else {
            let mut policies = Vec::new();
            for name in &key {
                if let Some(text) = self.read(name)? {
                    let policy = Policy::parse(name, &text).map_err(|e| {
                        ApiError::internal(format!("stored policy `{name}` no longer parses: {e}"))
                    })?;
                    policies.push(policy);
                }
            }
            Acl::new(policies.iter())
        };
        let acl = Arc::new(acl);
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

    fn save(&self, name: &str, text: &str) -> Result<(), ApiError> {
        let stored = StoredPolicy {
            name: name.to_string(),
            text: text.to_string(),
        };
        let bytes = Zeroizing::new(serde_json::to_vec(&stored).expect("a policy serializes"));
        let mut writes = WriteSet::new();
        writes
            .put(&format!("{PREFIX}{name}"), bytes)
            .put(EPOCH, Zeroizing::new(Vec::new()));
        self.barrier
            .commit(writes)
            .map_err(crate::errors::barrier)?;
        Ok(())
    }
}
