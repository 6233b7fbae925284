//! Snapshots: a store's ciphertext, every key and value as they stood at
//! one moment (its seal record, keyring and audit checkpoints among them),
//! in one file with a manifest, checked whole before anything is restored.
//!
//! ```text
//! "tresor-snapshot\n" | format (u32)
//! records: key length (u32) | key | value length (u32) | value   ... in key order
//! 0xFFFFFFFF
//! manifest (JSON) | manifest length (u32) | SHA-256 of every byte before it
//! "tresor-snapshot-end\n"
//! ```
//!
//! All integers are big-endian. The manifest's `sha256` is the same sum as
//! `tresor operator migrate` prints (over each key and value, length first),
//! so a restored store can be checked against it; the file's own SHA-256
//! catches an edit anywhere, the manifest included. A file is written
//! under a temporary name and renamed once synced: a crash leaves the
//! previous snapshot and, at worst, a `.partial` file, never a short file
//! under the real name.

use crate::CoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tresor_barrier::SealConfig;
use tresor_storage::{Backend, StorageError, Transaction};

const MAGIC: &[u8; 16] = b"tresor-snapshot\n";
const END: &[u8; 20] = b"tresor-snapshot-end\n";
const FORMAT: u32 = 1;
const END_OF_RECORDS: u32 = u32::MAX;
const SEAL_CONFIG: &str = "core/seal-config";
const CHECKPOINTS: &str = "core/audit-checkpoint/";
/// Keys and values past these sizes are no tresor record: the file is bad.
const MAX_KEY: u32 = 64 * 1024;
const MAX_VALUE: u32 = 256 * 1024 * 1024;
const MAX_MANIFEST: usize = 1024 * 1024;
/// Keys per restoring transaction.
const BATCH: usize = 500;

/// What a snapshot holds, as its manifest says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub created_unix: u64,
    /// The store's id and seal, from its seal record.
    pub store_id: String,
    pub seal_type: String,
    /// The backend it was taken from.
    pub backend: String,
    pub keys: u64,
    /// SHA-256 over every key and value (as `tresor operator migrate`).
    pub sha256: String,
    /// The audit chains whose checkpoints it holds.
    pub audit_checkpoints: Vec<String>,
    pub tresor_version: String,
}

/// A snapshot written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Saved {
    pub path: PathBuf,
    pub manifest: Manifest,
    pub bytes: u64,
}

/// A snapshot restored, and how many of its keys an interrupted earlier
/// restore had already written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restored {
    pub manifest: Manifest,
    pub resumed: u64,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> CoreError + '_ {
    move |source| {
        CoreError::Storage(StorageError::Io {
            path: path.into(),
            source,
        })
    }
}

fn bad(path: &Path, why: &str) -> CoreError {
    CoreError::Snapshot(format!(
        "{} is not a complete, unaltered tresor snapshot ({why}); nothing was written",
        path.display()
    ))
}

/// Writes a snapshot of `backend` to `path`, replacing a snapshot there only
/// once the new one is whole on disk.
pub fn save(backend: &dyn Backend, path: &Path) -> Result<Saved, CoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| CoreError::Snapshot(format!("{} names no file", path.display())))?
        .to_string_lossy()
        .into_owned();
    let mut tag = [0u8; 6];
    getrandom::fill(&mut tag).expect("the operating system's random generator failed");
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    let partial = dir.join(format!(".{name}.partial-{tag}"));
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io(&partial))?;
    let written = write(backend, file, &partial).and_then(|(manifest, bytes)| {
        std::fs::rename(&partial, path).map_err(io(path))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        Ok(Saved {
            path: path.to_path_buf(),
            manifest,
            bytes,
        })
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

/// Counts and hashes what a snapshot holds while it is written or read.
struct Sums {
    file: Sha256,
    records: Sha256,
    keys: u64,
    bytes: u64,
}

impl Sums {
    fn new() -> Self {
        Self {
            file: Sha256::new(),
            records: Sha256::new(),
            keys: 0,
            bytes: 0,
        }
    }

    fn record(&mut self, key: &[u8], value: &[u8]) {
        for part in [key, value] {
            self.records.update((part.len() as u64).to_be_bytes());
            self.records.update(part);
        }
        self.keys += 1;
    }

    fn records_hex(&self) -> String {
        hex(&self.records.clone().finalize())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Out<'a> {
    inner: BufWriter<File>,
    sums: &'a mut Sums,
}

impl Out<'_> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.sums.file.update(bytes);
        self.sums.bytes += bytes.len() as u64;
        self.inner.write_all(bytes)
    }
}

fn write(backend: &dyn Backend, file: File, path: &Path) -> Result<(Manifest, u64), CoreError> {
    let mut sums = Sums::new();
    let mut out = Out {
        inner: BufWriter::with_capacity(1 << 20, file),
        sums: &mut sums,
    };
    let failed = io(path);
    out.put(MAGIC).map_err(&failed)?;
    out.put(&FORMAT.to_be_bytes()).map_err(&failed)?;
    let mut seal: Option<Vec<u8>> = None;
    let mut checkpoints = Vec::new();
    backend.scan(&mut |key, value| {
        let too_big = || StorageError::Backend(format!("`{key}` is too large for a snapshot"));
        let key_len = u32::try_from(key.len()).map_err(|_| too_big())?;
        let value_len = u32::try_from(value.len()).map_err(|_| too_big())?;
        let written = (|| {
            out.put(&key_len.to_be_bytes())?;
            out.put(key.as_bytes())?;
            out.put(&value_len.to_be_bytes())?;
            out.put(value)
        })();
        written.map_err(|source| StorageError::Io {
            path: path.into(),
            source,
        })?;
        out.sums.record(key.as_bytes(), value);
        if key == SEAL_CONFIG {
            seal = Some(value.to_vec());
        } else if let Some(chain) = key.strip_prefix(CHECKPOINTS) {
            checkpoints.push(chain.to_owned());
        }
        Ok(())
    })?;
    let seal = seal.ok_or_else(|| {
        CoreError::Snapshot(format!(
            "the {} backend holds no tresor store: nothing to snapshot",
            backend.kind()
        ))
    })?;
    let config: SealConfig = serde_json::from_slice(&seal).map_err(|e| {
        CoreError::Snapshot(format!(
            "the store's seal record is unreadable ({e}); restore the store from a backup"
        ))
    })?;
    out.put(&END_OF_RECORDS.to_be_bytes()).map_err(&failed)?;
    let manifest = Manifest {
        format: FORMAT,
        created_unix: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        store_id: config.store_id.clone(),
        seal_type: config.type_name().to_owned(),
        backend: backend.kind().to_owned(),
        keys: out.sums.keys,
        sha256: out.sums.records_hex(),
        audit_checkpoints: checkpoints,
        tresor_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let json = serde_json::to_vec(&manifest).expect("a manifest serializes");
    out.put(&json).map_err(&failed)?;
    out.put(&(json.len() as u32).to_be_bytes())
        .map_err(&failed)?;
    let digest = out.sums.file.clone().finalize();
    out.inner.write_all(&digest).map_err(&failed)?;
    out.inner.write_all(END).map_err(&failed)?;
    let file = out.inner.into_inner().map_err(|e| failed(e.into_error()))?;
    file.sync_all().map_err(&failed)?;
    Ok((manifest, sums.bytes + 32 + END.len() as u64))
}

/// What [`read`] calls with each record.
type OnRecord<'a> = dyn FnMut(&str, &[u8]) -> Result<(), CoreError> + 'a;

/// Reads a snapshot through, calling `record` with each key and value, and
/// returns its manifest once everything checked out: the format, every
/// length, the file's SHA-256, and the manifest's count and sum.
fn read(path: &Path, record: &mut OnRecord<'_>) -> Result<Manifest, CoreError> {
    let file = File::open(path).map_err(io(path))?;
    let mut input = BufReader::with_capacity(1 << 20, file);
    let mut sums = Sums::new();
    let mut take = |n: usize, sums: &mut Sums| -> Result<Vec<u8>, CoreError> {
        let mut buf = vec![0u8; n];
        input
            .read_exact(&mut buf)
            .map_err(|_| bad(path, "it ends too soon: cut off or still being written"))?;
        sums.file.update(&buf);
        Ok(buf)
    };
    let u32_of = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if take(MAGIC.len(), &mut sums)? != MAGIC {
        return Err(bad(path, "it does not start like one"));
    }
    let format = u32_of(&take(4, &mut sums)?);
    if format != FORMAT {
        return Err(CoreError::Snapshot(format!(
            "{} is a format {format} snapshot; this tresor reads format {FORMAT}: use a matching tresor version",
            path.display()
        )));
    }
    let mut previous: Option<String> = None;
    loop {
        let len = u32_of(&take(4, &mut sums)?);
        if len == END_OF_RECORDS {
            break;
        }
        if len > MAX_KEY {
            return Err(bad(path, "a key length is out of range"));
        }
        let key = String::from_utf8(take(len as usize, &mut sums)?)
            .map_err(|_| bad(path, "a key is not UTF-8"))?;
        if previous.as_deref().is_some_and(|p| p >= key.as_str()) {
            return Err(bad(path, "its keys are out of order"));
        }
        let value_len = u32_of(&take(4, &mut sums)?);
        if value_len > MAX_VALUE {
            return Err(bad(path, "a value length is out of range"));
        }
        let value = take(value_len as usize, &mut sums)?;
        sums.record(key.as_bytes(), &value);
        record(&key, &value)?;
        previous = Some(key);
    }
    let mut rest = Vec::new();
    input
        .take((MAX_MANIFEST + 4 + 32 + END.len() + 1) as u64)
        .read_to_end(&mut rest)
        .map_err(io(path))?;
    let tail = 4 + 32 + END.len();
    if rest.len() < tail || rest.len() > MAX_MANIFEST + tail {
        return Err(bad(path, "its manifest is missing or cut off"));
    }
    let (body, trailer) = rest.split_at(rest.len() - tail);
    if &trailer[36..] != END {
        return Err(bad(path, "it does not end like one"));
    }
    if u32_of(&trailer[..4]) as usize != body.len() {
        return Err(bad(path, "its manifest length is wrong"));
    }
    sums.file.update(body);
    sums.file.update(&trailer[..4]);
    if sums.file.clone().finalize().as_slice() != &trailer[4..36] {
        return Err(bad(path, "its SHA-256 does not match: it was altered"));
    }
    let manifest: Manifest =
        serde_json::from_slice(body).map_err(|_| bad(path, "its manifest is unreadable"))?;
    if manifest.keys != sums.keys || manifest.sha256 != sums.records_hex() {
        return Err(bad(path, "its records do not match its manifest"));
    }
    Ok(manifest)
}

/// A snapshot's manifest, once the whole file checked out.
pub fn inspect(path: &Path) -> Result<Manifest, CoreError> {
    read(path, &mut |_, _| Ok(()))
}

/// Restores a snapshot into `to`, which must be empty or hold what an
/// interrupted restore of the same snapshot left. The whole file is checked
/// before the first write; the seal record is written last, so a restore
/// cut short never looks like a complete store (running it again finishes
/// it); the result is checked against the manifest.
pub fn restore(path: &Path, to: &dyn Backend) -> Result<Restored, CoreError> {
    if to.get(SEAL_CONFIG)?.is_some() {
        return Err(CoreError::Snapshot(format!(
            "the {} destination already holds a store; restore only into an empty one",
            to.kind()
        )));
    }
    let mut present: HashMap<String, bool> = HashMap::new();
    crate::migrate::walk(to, "", &mut |key| {
        present.insert(key, false);
        Ok(())
    })?;
    read(path, &mut |key, value| {
        if let Some(seen) = present.get_mut(key) {
            if to.get(key)?.as_deref() != Some(value) {
                return Err(foreign(to, key));
            }
            *seen = true;
        }
        Ok(())
    })?;
    if let Some((key, _)) = present.iter().find(|(_, seen)| !**seen) {
        return Err(foreign(to, key));
    }
    let mut seal = None;
    let mut batch = Transaction::new();
    let mut pending = 0;
    let manifest = read(path, &mut |key, value| {
        if key == SEAL_CONFIG {
            seal = Some(value.to_vec());
        } else if !present.contains_key(key) {
            batch = std::mem::take(&mut batch).expect(key, None).put(key, value);
            pending += 1;
            if pending == BATCH {
                pending = 0;
                apply(to, std::mem::take(&mut batch))?;
            }
        }
        Ok(())
    })?;
    let seal = seal.ok_or_else(|| bad(path, "it holds no seal record"))?;
    apply(to, batch.expect(SEAL_CONFIG, None).put(SEAL_CONFIG, &seal))?;
    let restored = crate::summarize(to)?;
    if restored.keys != manifest.keys || restored.sha256 != manifest.sha256 {
        return Err(CoreError::Snapshot(format!(
            "the restored {} store does not match the snapshot ({} keys, sha256 {}; the snapshot has {} and {}); was it written during the restore?",
            to.kind(),
            restored.keys,
            restored.sha256,
            manifest.keys,
            manifest.sha256
        )));
    }
    Ok(Restored {
        manifest,
        resumed: present.len() as u64,
    })
}

fn foreign(to: &dyn Backend, key: &str) -> CoreError {
    CoreError::Snapshot(format!(
        "the {} destination is not empty and not an interrupted restore of this snapshot (`{key}` differs); restore only into an empty store",
        to.kind()
    ))
}

fn apply(to: &dyn Backend, txn: Transaction) -> Result<(), CoreError> {
    match to.commit(txn)? {
        tresor_storage::Outcome::Applied => Ok(()),
        tresor_storage::Outcome::ConditionFailed { key } => Err(CoreError::Snapshot(format!(
            "`{key}` appeared in the destination during the restore; stop everything writing to it, empty it and run again"
        ))),
    }
}

/// A snapshot opened as a store in memory and unsealed with `unseal`, every
/// record then read through the barrier (decrypted and authenticated): the
/// restore drill, which writes nothing anywhere. Returns the manifest and
/// the number of records read.
pub fn verify(path: &Path, unseal: &crate::Unseal) -> Result<(Manifest, u64), CoreError> {
    let memory = std::sync::Arc::new(tresor_storage::Memory::new());
    let mut txn = Transaction::new();
    let manifest = read(path, &mut |key, value| {
        txn = std::mem::take(&mut txn).put(key, value);
        Ok(())
    })?;
    memory.commit(txn)?;
    let barrier = tresor_barrier::Barrier::new(memory.clone());
    let config = barrier
        .seal_config()?
        .ok_or_else(|| bad(path, "it holds no seal record"))?;
    let key = crate::unseal_key(&config, unseal)?;
    barrier.unseal(&key)?;
    let mut read_back = 0;
    let reserved = ["core/seal-config", "core/root-key", "core/keyring"];
    crate::migrate::walk(&*memory, "", &mut |key| {
        if !reserved.contains(&key.as_str()) {
            barrier.get(&key)?;
        }
        read_back += 1;
        Ok(())
    })?;
    Ok((manifest, read_back))
}

/// Saves a snapshot into `dir` named by its time (`tresor-<UTC>.snapshot`),
/// then deletes the oldest beyond `keep`, and any `.partial` file an
/// interrupted save left: what a scheduled save (`[snapshot] every, keep,
/// dir`) runs each time. A crash between the save and the pruning leaves
/// one snapshot more than `keep` until the next save.
pub fn save_into(
    backend: &dyn Backend,
    dir: &Path,
    keep: usize,
    now: SystemTime,
) -> Result<Saved, CoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".tresor-") && name.contains(".snapshot.partial-") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    // Nanoseconds: names sort by time and do not collide.
    let mut at = now;
    let path = loop {
        let stamp: String = humantime::format_rfc3339_nanos(at)
            .to_string()
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        let path = dir.join(format!("tresor-{stamp}.snapshot"));
        if !path.exists() {
            break path;
        }
        at += std::time::Duration::from_nanos(1);
    };
    let saved = save(backend, &path)?;
    let all = snapshots_in(dir)?;
    for old in all.iter().take(all.len().saturating_sub(keep.max(1))) {
        let _ = std::fs::remove_file(old);
    }
    Ok(saved)
}

/// The newest snapshot in `dir` that checks out, and its manifest: what a
/// status line reports as the last good one.
pub fn latest(dir: &Path) -> Result<Option<(PathBuf, Manifest)>, CoreError> {
    for path in snapshots_in(dir)?.into_iter().rev() {
        if let Ok(manifest) = inspect(&path) {
            return Ok(Some((path, manifest)));
        }
    }
    Ok(None)
}

/// `tresor-*.snapshot` files, oldest first (the names sort by time).
fn snapshots_in(dir: &Path) -> Result<Vec<PathBuf>, CoreError> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with("tresor-") && n.ends_with(".snapshot"))
        })
        .collect();
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Access, InitOptions, Unseal};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tresor_kv::SecretMap;

    fn data(v: &str) -> SecretMap {
        serde_json::from_value(serde_json::json!({ "v": v })).unwrap()
    }

    /// A key-file store with `n` secrets of two versions each.
    fn store(tmp: &Path, n: usize) -> (PathBuf, Unseal) {
        let dir = tmp.join("store");
        let key = tmp.join("k.key");
        crate::init(&dir, InitOptions::KeyFile(Some(key.clone()))).unwrap();
        let unseal = Unseal {
            key_file: Some(key),
            ..Unseal::default()
        };
        let store = crate::open(&dir, &unseal, Access::ReadWrite).unwrap();
        let kv = store.kv(&store.mount("secret").unwrap()).unwrap();
        for i in 0..n {
            for v in 1..=2 {
                kv.write(&format!("app/s{i}"), &data(&format!("{i}-{v}")), None)
                    .unwrap();
            }
        }
        (dir, unseal)
    }

    #[test]
    fn save_under_write_load_then_restore_keeps_one_consistent_moment() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, unseal) = store(tmp.path(), 50);
        let store = Arc::new(crate::open(&dir, &unseal, Access::ReadWrite).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let store = Arc::clone(&store);
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let kv = store.kv(&store.mount("secret").unwrap()).unwrap();
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        kv.write(&format!("load/w{w}"), &data(&n.to_string()), None)
                            .unwrap();
                    }
                    n
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let path = tmp.path().join("snap");
        let saved = save(&**store.barrier().storage(), &path).unwrap();
        stop.store(true, Ordering::SeqCst);
        let written: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(written.iter().all(|n| *n > 0));
        assert_eq!(inspect(&path).unwrap(), saved.manifest);
        assert_eq!(saved.manifest.seal_type, "key-file");

        let restored_storage: Arc<dyn Backend> = Arc::new(tresor_storage::Memory::new());
        let restored = restore(&path, &*restored_storage).unwrap();
        assert_eq!(restored.manifest.keys, saved.manifest.keys);
        let barrier = Arc::new(tresor_barrier::Barrier::new(restored_storage));
        let config = barrier.seal_config().unwrap().unwrap();
        barrier
            .unseal(&crate::unseal_key(&config, &unseal).unwrap())
            .unwrap();
        let restored = crate::Store::new(barrier);
        let kv = restored.kv(&restored.mount("secret").unwrap()).unwrap();
        for i in 0..50 {
            for v in 1..=2 {
                let read = kv.read(&format!("app/s{i}"), Some(v)).unwrap().unwrap();
                assert_eq!(read.data.unwrap(), data(&format!("{i}-{v}")));
            }
        }
        // Each writer's secret is whole at the moment taken: its current
        // version and every version kept hold what was written then.
        for (w, written) in written.iter().enumerate() {
            let meta = kv.metadata(&format!("load/w{w}")).unwrap().unwrap();
            let current = meta.current_version;
            assert!(current <= *written);
            let read = kv.read(&format!("load/w{w}"), None).unwrap().unwrap();
            assert_eq!(read.data.unwrap(), data(&current.to_string()));
        }
    }

    #[test]
    fn cut_or_edited_snapshots_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = store(tmp.path(), 5);
        let source = tresor_storage::Embedded::open_read_only(&dir).unwrap();
        let path = tmp.path().join("snap");
        save(&source, &path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let bad_path = tmp.path().join("bad");
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for cut in [0, 10, 20, good.len() / 2, good.len() - 60, good.len() - 1] {
            cases.push(good[..cut].to_vec());
        }
        for at in [
            3,
            30,
            good.len() / 3,
            good.len() - 100,
            good.len() - 40,
            good.len() - 5,
        ] {
            let mut edited = good.clone();
            edited[at] ^= 0x01;
            cases.push(edited);
        }
        for (i, case) in cases.iter().enumerate() {
            std::fs::write(&bad_path, case).unwrap();
            let err = inspect(&bad_path).unwrap_err().to_string();
            assert!(err.contains("not a complete, unaltered"), "case {i}: {err}");
            let empty = tresor_storage::Memory::new();
            assert!(restore(&bad_path, &empty).is_err(), "case {i}");
            assert!(
                empty.list("", None, None).unwrap().is_empty(),
                "case {i} wrote"
            );
        }
        std::fs::write(&bad_path, &good).unwrap();
        inspect(&bad_path).unwrap();
    }

    #[test]
    fn restore_refuses_a_foreign_store_and_finishes_an_interrupted_one() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = store(tmp.path(), 5);
        let source = tresor_storage::Embedded::open_read_only(&dir).unwrap();
        let path = tmp.path().join("snap");
        let saved = save(&source, &path).unwrap();

        let full = tresor_storage::Memory::new();
        restore(&path, &full).unwrap();
        assert!(
            restore(&path, &full)
                .unwrap_err()
                .to_string()
                .contains("already holds a store")
        );

        let foreign = tresor_storage::Memory::new();
        foreign.put("logical/x", b"other").unwrap();
        assert!(
            restore(&path, &foreign)
                .unwrap_err()
                .to_string()
                .contains("not an interrupted restore")
        );
        assert_eq!(foreign.list("", None, None).unwrap(), ["logical/"]);

        // What a restore cut off after its first keys leaves: no seal record.
        let partial = tresor_storage::Memory::new();
        source
            .scan(&mut |key, value| {
                if key != SEAL_CONFIG && partial.list("", None, None)?.len() < 3 {
                    partial.put(key, value)?;
                }
                Ok(())
            })
            .unwrap();
        let finished = restore(&path, &partial).unwrap();
        assert!(finished.resumed > 0);
        assert_eq!(
            crate::summarize(&partial).unwrap().sha256,
            saved.manifest.sha256
        );
    }

    #[test]
    fn verify_reads_every_record_with_the_right_key_only() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, unseal) = store(tmp.path(), 5);
        let source = tresor_storage::Embedded::open_read_only(&dir).unwrap();
        let path = tmp.path().join("snap");
        let saved = save(&source, &path).unwrap();
        let (manifest, read) = verify(&path, &unseal).unwrap();
        assert_eq!(manifest, saved.manifest);
        assert_eq!(read, manifest.keys);
        let other = tmp.path().join("other.key");
        tresor_barrier::UnsealKey::generate()
            .write_key_file(&other)
            .unwrap();
        let wrong = Unseal {
            key_file: Some(other),
            ..Unseal::default()
        };
        assert!(
            verify(&path, &wrong)
                .unwrap_err()
                .to_string()
                .contains("unseal key is wrong")
        );
    }

    #[test]
    fn scheduled_saves_keep_the_newest_and_clear_partials() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, _) = store(tmp.path(), 2);
        let source = tresor_storage::Embedded::open_read_only(&dir).unwrap();
        let snaps = tmp.path().join("snaps");
        std::fs::create_dir(&snaps).unwrap();
        std::fs::write(snaps.join(".tresor-x.snapshot.partial-abc"), b"cut").unwrap();
        let start = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let mut saved = Vec::new();
        for i in 0..4 {
            let at = start + std::time::Duration::from_secs(3600 * i);
            saved.push(save_into(&source, &snaps, 2, at).unwrap().path);
        }
        let mut left: Vec<String> = std::fs::read_dir(&snaps)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "tresor-20270115T100000.000000000Z.snapshot",
                "tresor-20270115T110000.000000000Z.snapshot"
            ]
        );
        let (newest, _) = latest(&snaps).unwrap().unwrap();
        assert_eq!(newest, saved[3]);
    }
}
