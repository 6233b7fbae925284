use crate::CoreError;
use crate::mounts::{MountEntry, MountTable, MountType, Tune, normalize, normalize_auth};
use std::sync::Arc;
use tresor_barrier::{Barrier, ParsedCache, Stamp, WriteSet};
use tresor_kv::{KvEngine, KvV1, MetadataCache};
use tresor_transit::TransitEngine;
use zeroize::Zeroizing;

pub(crate) const MOUNTS_KEY: &str = "core/mounts";
pub(crate) const AUTH_KEY: &str = "core/auth";

/// How many deletes one commit carries when a mount's data is removed.
const DELETE_BATCH: usize = 1000;

/// One of the two mount tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    /// Secrets engines, at the top of the path space.
    Secrets,
    /// Auth methods, under `auth/`.
    Auth,
}

impl Table {
    fn key(self) -> &'static str {
        match self {
            Table::Secrets => MOUNTS_KEY,
            Table::Auth => AUTH_KEY,
        }
    }

    fn normalize(self, path: &str) -> Result<String, CoreError> {
        match self {
            Table::Secrets => normalize(path),
            Table::Auth => normalize_auth(path),
        }
        .map_err(CoreError::InvalidMount)
    }

    fn name(self) -> &'static str {
        match self {
            Table::Secrets => "mount",
            Table::Auth => "auth",
        }
    }
}

/// An unsealed store: the barrier and the engines mounted on it.
pub struct Store {
    barrier: Arc<Barrier>,
    /// The mount tables as last read: routing a request decrypts and parses
    /// them only when they changed.
    cache: ParsedCache<Arc<MountTable>>,
    metadata: Arc<MetadataCache>,
}

impl Store {
    /// A store over an unsealed barrier.
    pub fn new(barrier: Arc<Barrier>) -> Self {
        Self {
            barrier,
            cache: ParsedCache::new(2),
            metadata: Arc::default(),
        }
    }

    pub fn barrier(&self) -> &Arc<Barrier> {
        &self.barrier
    }

    /// Every mount, ordered by path.
    pub fn mounts(&self) -> Result<Vec<MountEntry>, CoreError> {
        Ok(self
            .table(Table::Secrets)?
            .0
            .mounts
            .values()
            .cloned()
            .collect())
    }

    /// The mount serving `path` and the rest of the path inside it.
    pub fn resolve(&self, path: &str) -> Result<(MountEntry, String), CoreError> {
        self.resolve_in(Table::Secrets, path)
    }

    /// The mount at exactly `path`.
    pub fn mount(&self, path: &str) -> Result<MountEntry, CoreError> {
        self.mount_in(Table::Secrets, path)
    }

    /// The KV version 2 engine of a mount.
    pub fn kv(&self, mount: &MountEntry) -> Result<KvEngine, CoreError> {
        match mount.kind {
            MountType::KvV2 => Ok(
                KvEngine::new(Arc::clone(&self.barrier), mount.storage_prefix())
                    .with_metadata_cache(Arc::clone(&self.metadata)),
            ),
            other => Err(CoreError::WrongEngine {
                mount: mount.path.clone(),
                wanted: "KV version 2",
                found: other,
            }),
        }
    }

    /// The KV version 1 engine of a mount.
    pub fn kv1(&self, mount: &MountEntry) -> Result<KvV1, CoreError> {
        match mount.kind {
            MountType::KvV1 => Ok(KvV1::new(Arc::clone(&self.barrier), mount.storage_prefix())),
            other => Err(CoreError::WrongEngine {
                mount: mount.path.clone(),
                wanted: "KV version 1",
                found: other,
            }),
        }
    }

    /// The transit engine of a mount.
    pub fn transit_of(&self, mount: &MountEntry) -> Result<TransitEngine, CoreError> {
        match mount.kind {
            MountType::Transit => Ok(TransitEngine::new(
                Arc::clone(&self.barrier),
                mount.storage_prefix(),
            )),
            other => Err(CoreError::WrongEngine {
                mount: mount.path.clone(),
                wanted: "transit",
                found: other,
            }),
        }
    }

    /// The transit engine mounted at exactly `path`.
    pub fn transit(&self, path: &str) -> Result<TransitEngine, CoreError> {
        self.transit_of(&self.mount(path)?)
    }

    /// Rotates the transit keys whose `auto_rotate_period` has passed at
    /// `at`, on every transit mount; each as its mount path and key name.
    pub fn rotate_due_transit_keys(
        &self,
        at: std::time::SystemTime,
    ) -> Result<Vec<(String, String)>, CoreError> {
        let mut rotated = Vec::new();
        for mount in self.mounts()? {
            if mount.kind == MountType::Transit {
                for name in self.transit_of(&mount)?.rotate_due(at)? {
                    rotated.push((mount.path.clone(), name));
                }
            }
        }
        Ok(rotated)
    }

    /// Mounts a new engine at `path`. Mounts may not nest.
    pub fn enable(
        &self,
        path: &str,
        kind: MountType,
        description: &str,
    ) -> Result<MountEntry, CoreError> {
        if kind.is_auth() {
            return Err(CoreError::InvalidMount(format!(
                "`{}` is an auth method: enable it under auth/",
                kind.name()
            )));
        }
        self.enable_in(Table::Secrets, path, kind, description)
    }

    /// Changes a mount's tunable settings; returns the mount as it now is.
    pub fn tune(&self, path: &str, tune: &Tune) -> Result<MountEntry, CoreError> {
        self.tune_in(Table::Secrets, path, tune)
    }

    /// Unmounts `path` and deletes everything its engine stored. Returns
    /// whether there was such a mount.
    pub fn disable(&self, path: &str) -> Result<bool, CoreError> {
        self.disable_in(Table::Secrets, path)
    }

    /// Moves a mount to another path; its data stays where it is (its
    /// storage is named by its uuid, not its path).
    pub fn remount(&self, from: &str, to: &str) -> Result<MountEntry, CoreError> {
        let from = Table::Secrets.normalize(from)?;
        let to = Table::Secrets.normalize(to)?;
        let (table, stamp) = self.table(Table::Secrets)?;
        let mut table = MountTable::clone(&table);
        let mut entry = table
            .mounts
            .remove(&from)
            .ok_or_else(|| CoreError::NoMount(from.clone()))?;
        check_free(&table, &to)?;
        entry.path.clone_from(&to);
        table.mounts.insert(to, entry.clone());
        self.save_table(Table::Secrets, &table, stamp.as_ref())?;
        Ok(entry)
    }

    /// Upgrades a KV version 1 mount to version 2 in place: each secret
    /// becomes its version 1, then the mount changes type. Safe to run again
    /// after an interruption (the mount stays version 1 until every secret
    /// moved). Returns how many secrets moved.
    pub fn upgrade_to_v2(&self, path: &str) -> Result<usize, CoreError> {
        let mount = self.mount(path)?;
        let v1 = self.kv1(&mount)?;
        let v2 = KvEngine::new(Arc::clone(&self.barrier), mount.storage_prefix())
            .with_metadata_cache(Arc::clone(&self.metadata));
        let moved = v1.upgrade(&v2)?;
        let (table, stamp) = self.table(Table::Secrets)?;
        let mut table = MountTable::clone(&table);
        if let Some(entry) = table.mounts.get_mut(&mount.path) {
            entry.kind = MountType::KvV2;
        }
        self.save_table(Table::Secrets, &table, stamp.as_ref())?;
        Ok(moved)
    }

    /// Every auth mount, `token/` first, then ordered by path.
    pub fn auth_mounts(&self) -> Result<Vec<MountEntry>, CoreError> {
        let (table, _) = self.table(Table::Auth)?;
        let mut mounts: Vec<MountEntry> = table.mounts.values().cloned().collect();
        if !table.mounts.contains_key("token/") {
            mounts.push(token_entry());
        }
        mounts.sort_by_key(|m| (m.path != "token/", m.path.clone()));
        Ok(mounts)
    }

    /// Records the token store's entry in the auth table, so it keeps one
    /// accessor and uuid; a store made before the auth table gets it here.
    pub fn ensure_auth_table(&self) -> Result<(), CoreError> {
        let (table, stamp) = self.table(Table::Auth)?;
        if table.mounts.contains_key("token/") {
            return Ok(());
        }
        let mut table = MountTable::clone(&table);
        table.mounts.insert(
            "token/".into(),
            new_entry("token/", MountType::Token, "token based credentials"),
        );
        self.save_table(Table::Auth, &table, stamp.as_ref())
    }

    /// The auth mount serving `path` (what follows `auth/`) and the rest of
    /// the path inside it.
    pub fn resolve_auth(&self, path: &str) -> Result<(MountEntry, String), CoreError> {
        if let Some(rest) = path.strip_prefix("token/") {
            let token = self.auth_mount("token")?;
            return Ok((token, rest.to_owned()));
        }
        self.resolve_in(Table::Auth, path)
    }

    /// The auth mount at exactly `path` (what follows `auth/`).
    pub fn auth_mount(&self, path: &str) -> Result<MountEntry, CoreError> {
        if path.trim_matches('/') == "token" {
            return Ok(self
                .table(Table::Auth)?
                .0
                .mounts
                .get("token/")
                .cloned()
                .unwrap_or_else(token_entry));
        }
        self.mount_in(Table::Auth, path)
    }

    /// Enables an auth method at `auth/<path>`.
    pub fn enable_auth(
        &self,
        path: &str,
        kind: MountType,
        description: &str,
    ) -> Result<MountEntry, CoreError> {
        if !kind.is_auth() || kind == MountType::Token {
            return Err(CoreError::InvalidMount(format!(
                "`{}` is not an auth method that can be enabled",
                kind.name()
            )));
        }
        self.enable_in(Table::Auth, path, kind, description)
    }

    /// Changes an auth mount's tunable settings (`token/` included).
    pub fn tune_auth(&self, path: &str, tune: &Tune) -> Result<MountEntry, CoreError> {
        if path.trim_matches('/') == "token" {
            self.ensure_auth_table()?;
            let (table, stamp) = self.table(Table::Auth)?;
            let mut table = MountTable::clone(&table);
            let entry = table
                .mounts
                .get_mut("token/")
                .ok_or_else(|| CoreError::NoMount("token/".into()))?;
            apply_tune(entry, tune)?;
            let tuned = entry.clone();
            self.save_table(Table::Auth, &table, stamp.as_ref())?;
            return Ok(tuned);
        }
        self.tune_in(Table::Auth, path, tune)
    }

    /// Disables the auth method at `auth/<path>` and deletes what it stored.
    pub fn disable_auth(&self, path: &str) -> Result<bool, CoreError> {
        self.disable_in(Table::Auth, path)
    }

    fn resolve_in(&self, which: Table, path: &str) -> Result<(MountEntry, String), CoreError> {
        let (table, _) = self.table(which)?;
        let (mount, rest) = table
            .resolve(path)
            .ok_or_else(|| CoreError::NoMount(path.to_owned()))?;
        Ok((mount.clone(), rest))
    }

    fn mount_in(&self, which: Table, path: &str) -> Result<MountEntry, CoreError> {
        let path = which.normalize(path)?;
        let (table, _) = self.table(which)?;
        table
            .mounts
            .get(&path)
            .cloned()
            .ok_or(CoreError::NoMount(path))
    }

    fn enable_in(
        &self,
        which: Table,
        path: &str,
        kind: MountType,
        description: &str,
    ) -> Result<MountEntry, CoreError> {
        let path = which.normalize(path)?;
        let (table, stamp) = self.table(which)?;
        let mut table = MountTable::clone(&table);
        check_free(&table, &path)?;
        let entry = new_entry(&path, kind, description);
        table.mounts.insert(path.clone(), entry.clone());
        self.save_table(which, &table, stamp.as_ref())?;
        Ok(entry)
    }

    fn tune_in(&self, which: Table, path: &str, tune: &Tune) -> Result<MountEntry, CoreError> {
        let path = which.normalize(path)?;
        let (table, stamp) = self.table(which)?;
        let mut table = MountTable::clone(&table);
        let entry = table
            .mounts
            .get_mut(&path)
            .ok_or_else(|| CoreError::NoMount(path.clone()))?;
        apply_tune(entry, tune)?;
        let tuned = entry.clone();
        self.save_table(which, &table, stamp.as_ref())?;
        Ok(tuned)
    }

    fn disable_in(&self, which: Table, path: &str) -> Result<bool, CoreError> {
        let path = which.normalize(path)?;
        let (table, stamp) = self.table(which)?;
        let mut table = MountTable::clone(&table);
        let Some(entry) = table.mounts.remove(&path) else {
            return Ok(false);
        };
        // Unmount first: a crash during the deletes below leaves unreachable
        // ciphertext, never a mount with half its data.
        self.save_table(which, &table, stamp.as_ref())?;
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

    fn table(&self, which: Table) -> Result<(Arc<MountTable>, Option<Stamp>), CoreError> {
        let found = self.cache.get(&self.barrier, which.key(), |bytes| {
            serde_json::from_slice(bytes)
                .map(Arc::new)
                .map_err(|_| CoreError::CorruptMounts)
        })?;
        Ok(match found {
            Some((table, stamp)) => (table, Some(stamp)),
            None => (Arc::default(), None),
        })
    }

    fn save_table(
        &self,
        which: Table,
        table: &MountTable,
        stamp: Option<&Stamp>,
    ) -> Result<(), CoreError> {
        let key = which.key();
        let mut writes = WriteSet::new();
        writes.expect(key, stamp).put(key, table_bytes(table));
        if !self.barrier.commit(writes)?.applied() {
            return Err(CoreError::InvalidMount(format!(
                "the {} table changed at the same time; try again",
                which.name()
            )));
        }
        Ok(())
    }
}

/// A path a new mount may take: no mount at it, above it or below it.
fn check_free(table: &MountTable, path: &str) -> Result<(), CoreError> {
    match table
        .mounts
        .keys()
        .find(|m| m.starts_with(path) || path.starts_with(m.as_str()))
    {
        Some(existing) => Err(CoreError::InvalidMount(format!(
            "path is already in use at {existing}"
        ))),
        None => Ok(()),
    }
}

fn apply_tune(entry: &mut MountEntry, tune: &Tune) -> Result<(), CoreError> {
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
    Ok(())
}

/// The token store's entry in a store whose auth table does not hold it yet.
fn token_entry() -> MountEntry {
    MountEntry {
        path: "token/".into(),
        kind: MountType::Token,
        uuid: String::new(),
        accessor: "auth_token".into(),
        description: "token based credentials".into(),
        config: Default::default(),
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
        accessor: match kind.is_auth() {
            true => format!("auth_{}_{}", kind.name(), &random_uuid()[..8]),
            false => format!("{}_{}", kind.name(), &random_uuid()[..8]),
        },
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
