use crate::CoreError;
use crate::mounts::{MountEntry, MountTable, MountType, Tune, normalize};
use std::sync::Arc;
use tresor_barrier::{Barrier, ParsedCache, Stamp, WriteSet};
use tresor_kv::{KvEngine, MetadataCache};
use tresor_transit::TransitEngine;
use zeroize::Zeroizing;

pub(crate) const MOUNTS_KEY: &str = "core/mounts";

/// How many deletes one commit carries when a mount's data is removed.
const DELETE_BATCH: usize = 1000;

/// The engine of one mount.
pub enum Engine {
    Kv(KvEngine),
    Transit(TransitEngine),
}

/// An unsealed store: the barrier and the engines mounted on it.
pub struct Store {
    barrier: Arc<Barrier>,
    /// The mount table as last read: routing a request decrypts and parses
    /// it only when it changed.
    cache: ParsedCache<Arc<MountTable>>,
    metadata: Arc<MetadataCache>,
}

impl Store {
    /// A store over an unsealed barrier.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            cache: ParsedCache::new(1),
            metadata: Arc::default(),
        }
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Every mount, ordered by path.
    pub fn mounts(&self) -> Result<Vec<MountEntry>, CoreError> {
        Ok(self.table()?.0.mounts.values().cloned().collect())
    }

    /// The mount serving `path` and the rest of the path inside it.
    pub fn resolve(&self, path: &str) -> Result<(MountEntry, String), CoreError> {
        let (table, _) = self.table()?;
        let (mount, rest) = table
            .resolve(path)
            .ok_or_else(|| CoreError::NoMount(path.to_owned()))?;
        Ok((mount.clone(), rest))
    }

    /// The mount at exactly `path`.
    pub fn mount(&self, path: &str) -> Result<MountEntry, CoreError> {
        let path = normalize(path).map_err(CoreError::InvalidMount)?;
        let (table, _) = self.table()?;
        table
            .mounts
            .get(&path)
            .cloned()
            .ok_or(CoreError::NoMount(path))
    }

    /// The KV engine over a mount's storage. It does not look at the
    /// mount's kind: a router that may meet other kinds asks
    /// [`Store::engine`] instead.
    pub fn kv(&self, mount: &MountEntry) -> KvEngine {
        KvEngine::new(Arc::clone(&self.barrier), mount.storage_prefix())
            .with_metadata_cache(Arc::clone(&self.metadata))
    }

    /// The engine serving a mount, by its kind.
    pub fn engine(&self, mount: &MountEntry) -> Engine {
        match mount.kind {
            MountType::KvV2 => Engine::Kv(self.kv(mount)),
            MountType::Transit => Engine::Transit(TransitEngine::new(
                Arc::clone(&self.barrier),
                mount.storage_prefix(),
            )),
        }
    }

    /// The transit engine mounted at exactly `path`; a mount of another
    /// kind there is refused.
    pub fn transit(&self, path: &str) -> Result<TransitEngine, CoreError> {
        let mount = self.mount(path)?;
        match self.engine(&mount) {
            Engine::Transit(engine) => Ok(engine),
            Engine::Kv(_) => Err(CoreError::WrongEngine {
                path: mount.path,
                kind: mount.kind.name(),
                wanted: MountType::Transit.name(),
            }),
        }
    }

    /// Mounts a new engine at `path`. Mounts may not nest.
    pub fn enable(
        &self,
        path: &str,
        kind: MountType,
        description: &str,
    ) -> Result<MountEntry, CoreError> {
        let path = normalize(path).map_err(CoreError::InvalidMount)?;
        let (table, stamp) = self.table()?;
        let mut table = MountTable::clone(&table);
        if let Some(existing) = table
            .mounts
            .keys()
            .find(|m| m.starts_with(&path) || path.starts_with(m.as_str()))
        {
            return Err(CoreError::InvalidMount(format!(
                "path is already in use at {existing}"
            )));
        }
        let entry = new_entry(&path, kind, description);
        table.mounts.insert(path.clone(), entry.clone());
        self.save_table(&table, stamp.as_ref())?;
        Ok(entry)
    }

    /// Changes a mount's tunable settings; returns the mount as it now is.
    pub fn tune(&self, path: &str, tune: &Tune) -> Result<MountEntry, CoreError> {
        let path = normalize(path).map_err(CoreError::InvalidMount)?;
        let (table, stamp) = self.table()?;
        let mut table = MountTable::clone(&table);
        let entry = table
            .mounts
            .get_mut(&path)
            .ok_or_else(|| CoreError::NoMount(path.clone()))?;
        let config = &mut entry.config;
        let default_ttl = tune.default_lease_ttl.unwrap_or(config.default_lease_ttl);
        let max_ttl = tune.max_lease_ttl.unwrap_or(config.max_lease_ttl);
        if max_ttl != 0 && default_ttl > max_ttl {
            return Err(CoreError::InvalidMount(
                "the default lease TTL cannot be longer than the maximum".into(),
            ));
        }
        config.default_lease_ttl = default_ttl;
        config.max_lease_ttl = max_ttl;
        if let Some(visibility) = tune.listing_visibility {
            config.listing_visibility = visibility;
        }
        if let Some(description) = &tune.description {
            entry.description.clone_from(description);
        }
        let tuned = entry.clone();
        self.save_table(&table, stamp.as_ref())?;
        Ok(tuned)
    }

    /// Unmounts `path` and deletes everything its engine stored. Returns
    /// whether there was such a mount.
    pub fn disable(&self, path: &str) -> Result<bool, CoreError> {
        let path = normalize(path).map_err(CoreError::InvalidMount)?;
        let (table, stamp) = self.table()?;
        let mut table = MountTable::clone(&table);
        let Some(entry) = table.mounts.remove(&path) else {
            return Ok(false);
        };
        // Unmount first: a crash during the deletes below leaves unreachable
        // ciphertext, never a mount with half its data.
        self.save_table(&table, stamp.as_ref())?;
        self.delete_tree(&entry.storage_prefix())?;
        Ok(true)
    }

    fn delete_tree(&self, prefix: &str) -> Result<(), CoreError> {
        let mut keys = Vec::new();
        self.collect(prefix, &mut keys)?;
        for chunk in keys.chunks(DELETE_BATCH) {
            let mut writes = WriteSet::new();
            for key in chunk {
                writes.delete(key);
            }
            self.barrier.commit(writes)?;
        }
        Ok(())
    }

    fn collect(&self, prefix: &str, keys: &mut Vec<String>) -> Result<(), CoreError> {
        for entry in self.barrier.list(prefix, None, None)? {
            let key = format!("{prefix}{entry}");
            if entry.ends_with('/') {
                self.collect(&key, keys)?;
            } else {
                keys.push(key);
            }
        }
        Ok(())
    }

    fn table(&self) -> Result<(Arc<MountTable>, Option<Stamp>), CoreError> {
        let found = self.cache.get(&self.barrier, MOUNTS_KEY, |bytes| {
            serde_json::from_slice(bytes)
                .map(Arc::new)
                .map_err(|_| CoreError::CorruptMounts)
        })?;
        Ok(match found {
            Some((table, stamp)) => (table, Some(stamp)),
            None => (Arc::default(), None),
        })
    }

    fn save_table(&self, table: &MountTable, stamp: Option<&Stamp>) -> Result<(), CoreError> {
        let mut writes = WriteSet::new();
        writes
            .expect(MOUNTS_KEY, stamp)
            .put(MOUNTS_KEY, table_bytes(table));
        if !self.barrier.commit(writes)?.applied() {
            return Err(CoreError::InvalidMount(
                "the mount table changed at the same time; try again".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn table_bytes(table: &MountTable) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(table).expect("the mount table serializes"))
}

pub(crate) fn new_entry(path: &str, kind: MountType, description: &str) -> MountEntry {
    MountEntry {
        path: path.to_owned(),
        kind,
        uuid: random_uuid(),
        accessor: format!("{}_{}", kind.name(), &random_uuid()[..8]),
        description: description.to_owned(),
        config: Default::default(),
    }
}

fn random_uuid() -> String {
    let mut b = [0u8; 16];
    getrandom_fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn getrandom_fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random generator failed");
}
