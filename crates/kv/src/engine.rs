use crate::error::KvError;
use crate::merge::merge_patch;
use crate::model::{
    Config, ConfigUpdate, DEFAULT_MAX_VERSIONS, MAX_CUSTOM_KEY_LEN, MAX_CUSTOM_KEYS,
    MAX_CUSTOM_VALUE_LEN, MetadataUpdate, MetadataView, StoredMetadata, StoredVersion, SubkeysRead,
    VersionInfo, VersionRead,
};
use crate::secret::{SecretMap, wipe_json};
use crate::time::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tresor_barrier::{Barrier, ParsedCache, Stamp, WriteSet};
use zeroize::Zeroizing;

/// Where the engine gets the time; tests substitute their own.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system(SystemTime::now())
    }
}

/// How often a write re-reads and retries when another writer changed the
/// same secret between its read and its commit.
const ATTEMPTS: usize = 32;

/// The longest path accepted, in bytes.
const MAX_PATH_LEN: usize = 1024;

/// A KV version 2 engine serving one mount.
pub struct KvEngine {
    barrier: Arc<Barrier>,
    root: String,
    clock: Arc<dyn Clock>,
    metadata: Arc<MetadataCache>,
}

/// Secrets' metadata records already parsed (see [`ParsedCache`]): a read
/// then decrypts only the version it returns. Metadata holds no secret
/// values. One per store, shared by the engines of all its mounts (keys
/// include the mount's prefix).
#[derive(Default)]
pub struct MetadataCache(ParsedCache<StoredMetadata>);

/// What one attempt of a read-modify-write decided to write.
struct Change<T> {
    metadata: Option<StoredMetadata>,
    puts: Vec<(String, Zeroizing<Vec<u8>>)>,
    deletes: Vec<String>,
    result: T,
}

enum Step<T> {
    Write(Change<T>),
    Done(T),
}

impl KvEngine {
    /// The engine whose records live under `root` (a storage prefix ending in `/`).
    pub fn new(barrier: Arc<Barrier>, root: impl Into<String>) -> Self {
        Self {
            barrier,
            root: root.into(),
            clock: Arc::new(SystemClock),
            metadata: Arc::default(),
        }
    }

    /// Shares `cache` with the other engines of the same store.
    pub fn with_metadata_cache(mut self, cache: Arc<MetadataCache>) -> Self {
        self.metadata = cache;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The mount's settings.
    pub fn config(&self) -> Result<Config, KvError> {
        let key = self.config_key();
        match self.barrier.get(&key)? {
            Some(entry) => serde_json::from_slice(&entry.value).map_err(|_| KvError::Corrupt(key)),
            None => Ok(Config::default()),
        }
    }

    pub fn set_config(&self, update: ConfigUpdate) -> Result<Config, KvError> {
        let key = self.config_key();
        let mut config = self.config()?;
        if let Some(max) = update.max_versions {
            config.max_versions = max;
        }
        if let Some(cas) = update.cas_required {
            config.cas_required = cas;
        }
        if let Some(after) = update.delete_version_after {
            config.delete_version_after = after;
        }
        let mut writes = WriteSet::new();
        writes.put(&key, to_bytes(&config));
        self.barrier.commit(writes)?;
        Ok(config)
    }

    /// Reads version `version` of `path` (`None` or 0: the current one).
    /// `None` if there is no such version; data `None` if it is deleted or
    /// destroyed.
    pub fn read(&self, path: &str, version: Option<u64>) -> Result<Option<VersionRead>, KvError> {
        check_path(path)?;
        let Some((meta, _)) = self.load_metadata(path)? else {
            return Ok(None);
        };
        let number = version.filter(|v| *v > 0).unwrap_or(meta.current_version);
        let Some(stored) = meta.versions.get(&number) else {
            return Ok(None);
        };
        let info = meta.info(number).expect("the version is in the map");
        if stored.destroyed || stored.is_deleted(self.clock.now()) {
            return Ok(Some(VersionRead {
                data: None,
                metadata: info,
            }));
        }
        let data = self.load_data(path, number)?;
        Ok(Some(VersionRead {
            data: Some(data),
            metadata: info,
        }))
    }

    /// Writes `data` as a new version. With `cas`, only if the current
    /// version is `cas` (0: only if the secret has no version yet).
    pub fn write(
        &self,
        path: &str,
        data: &SecretMap,
        cas: Option<u64>,
    ) -> Result<VersionInfo, KvError> {
        check_path(path)?;
        let bytes = to_bytes(data);
        self.new_version(path, cas, None, |_| Ok(bytes.clone()))
    }

    /// [`KvEngine::write`] and [`KvEngine::write_metadata`] of `update` as
    /// one commit: the new version and the metadata change land together
    /// (one sync instead of two, and no moment with one but not the other).
    pub fn write_with_metadata(
        &self,
        path: &str,
        data: &SecretMap,
        cas: Option<u64>,
        update: &MetadataUpdate,
    ) -> Result<VersionInfo, KvError> {
        check_path(path)?;
        if let Some(custom) = &update.custom_metadata {
            check_custom_metadata(custom)?;
        }
        let bytes = to_bytes(data);
        self.new_version(path, cas, Some(update), |_| Ok(bytes.clone()))
    }

    /// Merges `patch` (RFC 7386) into the current version and writes the
    /// result as a new version. The current version must be readable.
    pub fn patch(
        &self,
        path: &str,
        patch: &Value,
        cas: Option<u64>,
    ) -> Result<VersionInfo, KvError> {
        check_path(path)?;
        if !patch.is_object() {
            return Err(KvError::Invalid("a patch must be a JSON object".into()));
        }
        self.new_version(path, cas, None, |meta| {
            let current = self.live_version(path, meta)?;
            let mut merged = Value::Object(current.as_map().clone());
            merge_patch(&mut merged, patch);
            let result = match merged {
                Value::Object(map) => SecretMap::from_map(map),
                mut other => {
                    wipe_json(&mut other);
                    SecretMap::new()
                }
            };
            Ok(to_bytes(&result))
        })
    }

    /// Writes version `version` again as the new current version.
    pub fn rollback(&self, path: &str, version: u64) -> Result<VersionInfo, KvError> {
        check_path(path)?;
        let Some(read) = self.read(path, Some(version))? else {
            return Err(KvError::Invalid(format!(
                "version {version} of `{path}` does not exist"
            )));
        };
        let Some(data) = read.data else {
            return Err(KvError::Invalid(format!(
                "version {version} of `{path}` is deleted or destroyed; undelete it first, or choose another"
            )));
        };
        let bytes = to_bytes(&data);
        self.new_version(path, None, None, |_| Ok(bytes.clone()))
    }

    /// Soft-deletes the current version.
    pub fn delete_latest(&self, path: &str) -> Result<(), KvError> {
        check_path(path)?;
        self.update(path, |meta, _, now| {
            let Some(mut meta) = meta else {
                return Ok(Step::Done(()));
            };
            let current = meta.current_version;
            let changed = meta
                .versions
                .get_mut(&current)
                .filter(|v| !v.destroyed && !v.is_deleted(now))
                .map(|v| v.deletion = Some(now))
                .is_some();
            Ok(changed_or_done(meta, changed, now))
        })
    }

    /// Soft-deletes the given versions; unknown ones are ignored.
    pub fn delete_versions(&self, path: &str, versions: &[u64]) -> Result<(), KvError> {
        self.change_versions(path, versions, |v, now| {
            let live = !v.destroyed && !v.is_deleted(now);
            if live {
                v.deletion = Some(now);
            }
            live
        })
    }

    /// Restores soft-deleted versions; destroyed ones stay destroyed.
    pub fn undelete_versions(&self, path: &str, versions: &[u64]) -> Result<(), KvError> {
        self.change_versions(path, versions, |v, _| {
            let restorable = !v.destroyed && v.deletion.is_some();
            if restorable {
                v.deletion = None;
            }
            restorable
        })
    }

    /// Removes the data of the given versions for good.
    pub fn destroy_versions(&self, path: &str, versions: &[u64]) -> Result<(), KvError> {
        check_path(path)?;
        check_versions(versions)?;
        self.update(path, |meta, _, now| {
            let Some(mut meta) = meta else {
                return Ok(Step::Done(()));
            };
            let mut deletes = Vec::new();
            for n in versions {
                if let Some(v) = meta.versions.get_mut(n).filter(|v| !v.destroyed) {
                    v.destroyed = true;
                    deletes.push(self.version_key(path, *n));
                }
            }
            if deletes.is_empty() {
                return Ok(Step::Done(()));
            }
            touch(&mut meta, now);
            Ok(Step::Write(Change {
                metadata: Some(meta),
                puts: Vec::new(),
                deletes,
                result: (),
            }))
        })
    }

    /// The secret's metadata, if it has any.
    pub fn metadata(&self, path: &str) -> Result<Option<MetadataView>, KvError> {
        check_path(path)?;
        Ok(self.load_metadata(path)?.map(|(meta, _)| meta.view()))
    }

    /// Creates or changes a secret's metadata settings.
    pub fn write_metadata(
        &self,
        path: &str,
        update: &MetadataUpdate,
    ) -> Result<MetadataView, KvError> {
        check_path(path)?;
        if let Some(custom) = &update.custom_metadata {
            check_custom_metadata(custom)?;
        }
        self.update(path, |meta, config, now| {
            let current = meta.as_ref().map_or(0, |m| m.metadata_version);
            if let Some(expected) = update.cas.filter(|e| *e != current) {
                return Err(KvError::MetadataCasMismatch { expected, current });
            }
            let mut meta = meta.unwrap_or_else(|| StoredMetadata::new(now));
            apply_metadata_update(&mut meta, update);
            check_custom_metadata_size(&meta)?;
            let max = effective_max(&meta, config);
            let pruned = prune(&mut meta, max);
            touch(&mut meta, now);
            let view = meta.view();
            Ok(Step::Write(Change {
                metadata: Some(meta),
                puts: Vec::new(),
                deletes: pruned
                    .into_iter()
                    .map(|n| self.version_key(path, n))
                    .collect(),
                result: view,
            }))
        })
    }

    /// Removes the secret: its metadata and every version.
    pub fn delete_metadata(&self, path: &str) -> Result<(), KvError> {
        check_path(path)?;
        self.update(path, |meta, _, _| {
            let Some(meta) = meta else {
                return Ok(Step::Done(()));
            };
            Ok(Step::Write(Change {
                metadata: None,
                puts: Vec::new(),
                deletes: meta
                    .versions
                    .keys()
                    .map(|n| self.version_key(path, *n))
                    .collect(),
                result: (),
            }))
        })
    }

    /// The secrets and folders (ending in `/`) directly under `folder`
    /// (empty for the mount's top), sorted; only those after `after`, at
    /// most `limit`.
    pub fn list(
        &self,
        folder: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, KvError> {
        let folder = folder.trim_start_matches('/');
        let mut prefix = format!("{}meta/{folder}", self.root);
        if !folder.is_empty() && !folder.ends_with('/') {
            prefix.push('/');
        }
        Ok(self.barrier.list(&prefix, after, limit)?)
    }

    /// The shape of a version's data: its keys, nested objects down to
    /// `depth` levels (0: all), every leaf `null`.
    pub fn subkeys(
        &self,
        path: &str,
        version: Option<u64>,
        depth: usize,
    ) -> Result<Option<SubkeysRead>, KvError> {
        let Some(read) = self.read(path, version)? else {
            return Ok(None);
        };
        let subkeys = read
            .data
            .as_ref()
            .map(|data| shape(data.as_map(), 1, depth));
        Ok(Some(SubkeysRead {
            subkeys,
            metadata: read.metadata,
        }))
    }

    fn new_version(
        &self,
        path: &str,
        cas: Option<u64>,
        update: Option<&MetadataUpdate>,
        mut content: impl FnMut(&StoredMetadata) -> Result<Zeroizing<Vec<u8>>, KvError>,
    ) -> Result<VersionInfo, KvError> {
        self.update(path, |meta, config, now| {
            let mut meta = meta.unwrap_or_else(|| StoredMetadata::new(now));
            let current = meta.current_version;
            match cas {
                Some(expected) if expected != current => {
                    return Err(KvError::CasMismatch { expected, current });
                }
                None if meta.cas_required || config.cas_required => {
                    return Err(KvError::CasRequired);
                }
                _ => {}
            }
            let data = content(&meta)?;
            let number = current + 1;
            let after = effective_delete_after(&meta, config);
            meta.versions.insert(
                number,
                StoredVersion {
                    created: now,
                    deletion: (!after.is_zero()).then(|| now.plus(after)),
                    destroyed: false,
                },
            );
            meta.current_version = number;
            if meta.oldest_version == 0 {
                meta.oldest_version = number;
            }
            if let Some(update) = update {
                if let Some(expected) = update.cas.filter(|e| *e != meta.metadata_version) {
                    return Err(KvError::MetadataCasMismatch {
                        expected,
                        current: meta.metadata_version,
                    });
                }
                apply_metadata_update(&mut meta, update);
                check_custom_metadata_size(&meta)?;
            }
            let max = effective_max(&meta, config);
            let pruned = prune(&mut meta, max);
            touch(&mut meta, now);
            let info = meta.info(number).expect("the version was just added");
            Ok(Step::Write(Change {
                metadata: Some(meta),
                puts: vec![(self.version_key(path, number), data)],
                deletes: pruned
                    .into_iter()
                    .map(|n| self.version_key(path, n))
                    .collect(),
                result: info,
            }))
        })
    }

    fn change_versions(
        &self,
        path: &str,
        versions: &[u64],
        change: impl Fn(&mut StoredVersion, Timestamp) -> bool,
    ) -> Result<(), KvError> {
        check_path(path)?;
        check_versions(versions)?;
        self.update(path, |meta, _, now| {
            let Some(mut meta) = meta else {
                return Ok(Step::Done(()));
            };
            let mut changed = false;
            for n in versions {
                if let Some(v) = meta.versions.get_mut(n) {
                    changed |= change(v, now);
                }
            }
            Ok(changed_or_done(meta, changed, now))
        })
    }

    /// Reads the metadata, lets `decide` compute a change, and commits it
    /// only if the metadata is still as read; otherwise tries again.
    fn update<T>(
        &self,
        path: &str,
        mut decide: impl FnMut(Option<StoredMetadata>, &Config, Timestamp) -> Result<Step<T>, KvError>,
    ) -> Result<T, KvError> {
        let config = self.config()?;
        let meta_key = self.meta_key(path);
        for _ in 0..ATTEMPTS {
            let loaded = self.load_metadata(path)?;
            let stamp: Option<Stamp> = loaded.as_ref().map(|(_, s)| s.clone());
            let change = match decide(loaded.map(|(m, _)| m), &config, self.clock.now())? {
                Step::Done(result) => return Ok(result),
                Step::Write(change) => change,
            };
            let mut writes = WriteSet::new();
            writes.expect(&meta_key, stamp.as_ref());
            for (key, value) in change.puts {
                writes.put(&key, value);
            }
            for key in &change.deletes {
                writes.delete(key);
            }
            match &change.metadata {
                Some(meta) => writes.put(&meta_key, to_bytes(meta)),
                None => writes.delete(&meta_key),
            };
            if self.barrier.commit(writes)?.applied() {
                return Ok(change.result);
            }
        }
        Err(KvError::Contended(path.to_owned()))
    }

    fn live_version(&self, path: &str, meta: &StoredMetadata) -> Result<SecretMap, KvError> {
        let now = self.clock.now();
        let live = meta
            .versions
            .get(&meta.current_version)
            .is_some_and(|v| !v.destroyed && !v.is_deleted(now));
        if !live {
            return Err(KvError::NotFound(path.to_owned()));
        }
        self.load_data(path, meta.current_version)
    }

    fn load_metadata(&self, path: &str) -> Result<Option<(StoredMetadata, Stamp)>, KvError> {
        let key = self.meta_key(path);
        self.metadata.0.get(&self.barrier, &key, |bytes| {
            serde_json::from_slice(bytes).map_err(|_| KvError::Corrupt(key.clone()))
        })
    }

    fn load_data(&self, path: &str, version: u64) -> Result<SecretMap, KvError> {
        let key = self.version_key(path, version);
        let entry = self
            .barrier
            .get(&key)?
            .ok_or_else(|| KvError::Corrupt(key.clone()))?;
        serde_json::from_slice(&entry.value).map_err(|_| KvError::Corrupt(key))
    }

    fn config_key(&self) -> String {
        format!("{}config", self.root)
    }

    fn meta_key(&self, path: &str) -> String {
        format!("{}meta/{path}", self.root)
    }

    fn version_key(&self, path: &str, version: u64) -> String {
        let digest = Sha256::digest(path.as_bytes());
        format!("{}versions/{}/{version}", self.root, hex::encode(digest))
    }
}

fn changed_or_done(mut meta: StoredMetadata, changed: bool, now: Timestamp) -> Step<()> {
    if !changed {
        return Step::Done(());
    }
    touch(&mut meta, now);
    Step::Write(Change {
        metadata: Some(meta),
        puts: Vec::new(),
        deletes: Vec::new(),
        result: (),
    })
}

/// Records that the metadata changed.
fn touch(meta: &mut StoredMetadata, now: Timestamp) {
    meta.updated = now;
    meta.metadata_version += 1;
}

fn effective_max(meta: &StoredMetadata, config: &Config) -> u32 {
    [meta.max_versions, config.max_versions]
        .into_iter()
        .find(|m| *m > 0)
        .unwrap_or(DEFAULT_MAX_VERSIONS)
}

fn effective_delete_after(meta: &StoredMetadata, config: &Config) -> Duration {
    if meta.delete_version_after.is_zero() {
        config.delete_version_after
    } else {
        meta.delete_version_after
    }
}

/// Drops the oldest versions beyond `max`; returns their numbers.
fn prune(meta: &mut StoredMetadata, max: u32) -> Vec<u64> {
    let mut pruned = Vec::new();
    while meta.versions.len() > max as usize {
        if let Some((n, _)) = meta.versions.pop_first() {
            pruned.push(n);
        }
    }
    if let Some((oldest, _)) = meta.versions.first_key_value() {
        meta.oldest_version = *oldest;
    }
    pruned
}

fn apply_metadata_update(meta: &mut StoredMetadata, update: &MetadataUpdate) {
    if let Some(max) = update.max_versions {
        meta.max_versions = max;
    }
    if let Some(cas) = update.cas_required {
        meta.cas_required = cas;
    }
    if let Some(after) = update.delete_version_after {
        meta.delete_version_after = after;
    }
    if let Some(custom) = &update.custom_metadata {
        if !update.merge {
            meta.custom_metadata.clear();
        }
        for (key, value) in custom {
            match value {
                Some(value) => meta.custom_metadata.insert(key.clone(), value.clone()),
                None => meta.custom_metadata.remove(key),
            };
        }
    }
}

fn check_custom_metadata(
    custom: &std::collections::BTreeMap<String, Option<String>>,
) -> Result<(), KvError> {
    for (key, value) in custom {
        if key.is_empty() || key.len() > MAX_CUSTOM_KEY_LEN {
            return Err(KvError::Invalid(format!(
                "custom_metadata keys must be 1 to {MAX_CUSTOM_KEY_LEN} bytes long"
            )));
        }
        if value
            .as_ref()
            .is_some_and(|v| v.len() > MAX_CUSTOM_VALUE_LEN)
        {
            return Err(KvError::Invalid(format!(
                "custom_metadata value of `{key}` is longer than {MAX_CUSTOM_VALUE_LEN} bytes"
            )));
        }
    }
    Ok(())
}

fn check_custom_metadata_size(meta: &StoredMetadata) -> Result<(), KvError> {
    if meta.custom_metadata.len() > MAX_CUSTOM_KEYS {
        return Err(KvError::Invalid(format!(
            "custom_metadata may hold at most {MAX_CUSTOM_KEYS} keys"
        )));
    }
    Ok(())
}

fn check_versions(versions: &[u64]) -> Result<(), KvError> {
    if versions.is_empty() {
        return Err(KvError::Invalid("no versions provided".into()));
    }
    Ok(())
}

pub(crate) fn check_path(path: &str) -> Result<(), KvError> {
    let problem = if path.is_empty() {
        Some("it is empty")
    } else if path.len() > MAX_PATH_LEN {
        Some("it is longer than 1024 bytes")
    } else if path.starts_with('/') || path.ends_with('/') {
        Some("it must not start or end with `/`")
    } else if path
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        Some("it has an empty, `.` or `..` segment")
    } else if path.chars().any(char::is_control) {
        Some("it contains control characters")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(KvError::InvalidPath {
            path: path.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

fn shape(map: &serde_json::Map<String, Value>, level: usize, depth: usize) -> Value {
    let mut out = serde_json::Map::new();
    for (key, value) in map {
        let inner = match value {
            Value::Object(child) if depth == 0 || level < depth => shape(child, level + 1, depth),
            _ => Value::Null,
        };
        out.insert(key.clone(), inner);
    }
    Value::Object(out)
}

fn to_bytes<T: serde::Serialize>(value: &T) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(value).expect("engine records serialize to JSON"))
}
