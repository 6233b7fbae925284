//! The audit broker: the enabled devices, where they may write, and where
//! their chains stand. Every request and response entry goes to every
//! device; a request is served only if at least one device recorded it.
//!
//! Devices are declared in the server's configuration (opened when the
//! store is unsealed, so a server is audited from its first request) or,
//! only where the configuration allows it, enabled through the API under a
//! configured directory: a token, however privileged, cannot make the server
//! create a file of its choosing elsewhere.
//!
//! Each log's position is saved in the barrier (a checkpoint), and only ever
//! forward. A server that opens a log which ends before its saved position,
//! or which was replaced by a chain that does not continue it, refuses to
//! start auditing unless its operator accepts the loss; so does one whose
//! store is older than its log (a store restored from an older copy).

use crate::{
    AuditEntry, AuditError, Checkpoint, FileDevice, FileDeviceConfig, FsyncPolicy, Pending, Salt,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tresor_barrier::{Barrier, BarrierError, Stamp, WriteSet};
use zeroize::Zeroizing;

const TABLE_KEY: &str = "core/audit";

/// Each chain's last saved position, under its chain id: in the barrier, out
/// of reach of whoever can edit the log files (`tresor audit verify
/// --checkpoint` reads it).
const CHECKPOINT_PREFIX: &str = "core/audit-checkpoint/";

/// Each log file's last saved position, under a hash of the host and the
/// file's path: what the server compares a log with when it opens it.
const HEAD_PREFIX: &str = "core/audit-head/";

/// A device declared in the server's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredDevice {
    /// Its path under `sys/audit/`, without slashes (e.g. `file`).
    pub path: String,
    pub file_path: PathBuf,
    pub description: String,
}

/// How the broker runs.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub write_timeout: Duration,
    /// Whether devices fsync each batch of entries.
    pub fsync: bool,
    pub declared: Vec<DeclaredDevice>,
    /// The directory devices enabled through the API may write in; `None`:
    /// enabling devices through the API is refused.
    pub api_dir: Option<PathBuf>,
    /// How often the server saves checkpoints: lines written within about
    /// this long after the last save are expected after a crash.
    pub checkpoint_interval: Duration,
    /// The operator accepts a log that does not match its saved position:
    /// the file is moved aside and a new chain starts that records where the
    /// saved one stood.
    pub accept_mismatch: bool,
}

impl BrokerConfig {
    /// No declared devices, none through the API.
    pub fn new(write_timeout: Duration, fsync: bool) -> Self {
        Self {
            write_timeout,
            fsync,
            declared: Vec::new(),
            api_dir: None,
            checkpoint_interval: Duration::from_secs(5),
            accept_mismatch: false,
        }
    }
}

/// Why the broker refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The request to enable or disable a device is not acceptable.
    #[error("{0}")]
    Invalid(String),
    #[error(
        "enabling audit devices through the API is off; declare the device in tresor.toml ([[audit.device]]), or set [audit] api_device_dir to allow devices under one directory"
    )]
    ApiDisabled,
    #[error(
        "audit devices enabled through the API may only write under {dir}; {file} is not there"
    )]
    OutsideApiDir { dir: PathBuf, file: PathBuf },
    #[error("the audit device `{0}` is declared in the server's configuration; remove it there")]
    Declared(String),
    #[error("cannot open audit file {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: AuditError,
    },
    /// The log does not match its saved position; the message says how.
    #[error("{0}")]
    Mismatch(String),
    #[error("the audit device table is unreadable")]
    CorruptTable,
    #[error("a stored audit checkpoint is unreadable")]
    CorruptCheckpoint,
    #[error("a chain id is the hex string in the `chain.id` field of every audit line")]
    BadChainId,
    #[error(
        "no audit device could record the request, so it was refused; check the audit log's disk"
    )]
    NotRecorded,
    #[error(transparent)]
    Device(#[from] AuditError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DeviceRecord {
    #[serde(rename = "type")]
    kind: String,
    description: String,
    file_path: PathBuf,
    salt: String,
    /// Declared in the configuration (not enabled through the API).
    #[serde(default)]
    declared: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct DeviceTable {
    devices: BTreeMap<String, DeviceRecord>,
}

/// A log file's saved position and when it was saved.
#[derive(Serialize, Deserialize)]
struct Head {
    checkpoint: Checkpoint,
    /// Seconds since the epoch, by this server's clock.
    saved_at: u64,
}

struct Device {
    record: DeviceRecord,
    file: FileDevice,
}

/// The stored device table the open devices reflect.
struct Synced {
    stamp: Option<Stamp>,
    /// The storage generation at which `stamp` was last seen stored.
    checked: Option<u64>,
}

impl Synced {
    fn matches(&self, stored: Option<&[u8]>) -> bool {
        match (stored, &self.stamp) {
            (Some(stored), Some(stamp)) => stamp.matches(stored),
            (None, None) => true,
            _ => false,
        }
    }
}

/// The enabled audit devices.
pub struct AuditBroker {
    barrier: Arc<Barrier>,
    config: BrokerConfig,
    host: String,
    devices: RwLock<BTreeMap<String, Device>>,
    /// The stored device table the open devices reflect: another server on
    /// the same store may enable or disable a device, and every request
    /// compares this with the stored bytes first (see [`AuditBroker::sync`]).
    synced: RwLock<Synced>,
    /// The position saved last for each chain id.
    saved: Mutex<HashMap<String, u64>>,
}

impl AuditBroker {
    /// Opens the declared devices (recording them in the store the first
    /// time) and every device enabled through the API, checking each log
    /// against its saved position.
    pub fn open(barrier: Arc<Barrier>, config: BrokerConfig) -> Result<Self, BrokerError> {
        let broker = Self {
            barrier,
            host: host_name(),
            devices: RwLock::new(BTreeMap::new()),
            synced: RwLock::new(Synced {
                stamp: None,
                checked: None,
            }),
            saved: Mutex::new(HashMap::new()),
            config,
        };
        broker.record_declared()?;
        broker.reload(None)?;
        Ok(broker)
    }

    /// Writes the declared devices into the stored table (a salt each, kept
    /// across restarts) and removes declared devices no longer declared.
    fn record_declared(&self) -> Result<(), BrokerError> {
        let (mut table, stamp) = load(&self.barrier)?;
        let before = serde_json::to_vec(&table).map_err(|_| BrokerError::CorruptTable)?;
        table
            .devices
            .retain(|path, record| !record.declared || self.declared(path).is_some());
        for declared in &self.config.declared {
            let keep = table.devices.get(&declared.path).is_some_and(|r| {
                r.declared
                    && r.file_path == declared.file_path
                    && r.description == declared.description
            });
            if !keep {
                let record = DeviceRecord {
                    kind: "file".into(),
                    description: declared.description.clone(),
                    file_path: declared.file_path.clone(),
                    salt: new_salt()?,
                    declared: true,
                };
                table.devices.insert(declared.path.clone(), record);
            }
        }
        if serde_json::to_vec(&table).map_err(|_| BrokerError::CorruptTable)? != before {
            save(&self.barrier, &table, stamp.as_ref())?;
        }
        Ok(())
    }

    fn declared(&self, path: &str) -> Option<&DeclaredDevice> {
        self.config.declared.iter().find(|d| d.path == path)
    }

    /// Opens the devices another server enabled and closes those it
    /// disabled, when the stored table changed since the last look. A failed
    /// look keeps the devices open now, which still record the request.
    fn sync(&self) {
        let generation = self.barrier.generation();
        if generation.is_some() && self.synced().checked == generation {
            return;
        }
        let stored = match self.barrier.storage().get(TABLE_KEY) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit device table; keeping the open devices");
                return;
            }
        };
        if !self.synced().matches(stored.as_deref()) {
            if let Err(e) = self.reload(generation) {
                tracing::warn!(error = %e, "cannot reload the audit device table; keeping the open devices");
            }
            return;
        }
        if generation.is_some() {
            let mut synced = self.synced.write().unwrap_or_else(|p| p.into_inner());
            if synced.matches(stored.as_deref()) {
                synced.checked = generation;
            }
        }
    }

    fn synced(&self) -> RwLockReadGuard<'_, Synced> {
        self.synced.read().unwrap_or_else(|p| p.into_inner())
    }

    fn reload(&self, generation: Option<u64>) -> Result<(), BrokerError> {
        let mut devices = self.devices.write().unwrap_or_else(|p| p.into_inner());
        let (table, stamp) = load(&self.barrier)?;
        let gone: Vec<String> = devices
            .iter()
            .filter(|(path, open)| table.devices.get(*path) != Some(&open.record))
            .map(|(path, _)| path.clone())
            .collect();
        for path in gone {
            if let Some(device) = devices.remove(&path)
                && let Err(e) = device.file.close()
            {
                tracing::warn!(device = %path, error = %e, "closing a disabled audit device failed");
            }
        }
        for (path, record) in table.devices {
            if let std::collections::btree_map::Entry::Vacant(slot) = devices.entry(path) {
                let file = self.open_device(slot.key(), &record)?;
                slot.insert(Device { record, file });
            }
        }
        *self.synced.write().unwrap_or_else(|p| p.into_inner()) = Synced {
            stamp,
            checked: generation,
        };
        Ok(())
    }

    fn open_device(&self, path: &str, record: &DeviceRecord) -> Result<FileDevice, BrokerError> {
        if !record.declared {
            self.check_api_file(&record.file_path).map_err(|e| {
                BrokerError::Invalid(format!(
                    "the audit device `{path}` was enabled through the API and cannot be opened: {e}"
                ))
            })?;
        }
        let salt = decode_salt(&record.salt)?;
        let config = self.device_config(record);
        let head = self.head(&record.file_path)?;
        let file = FileDevice::open(config.clone(), salt).map_err(|source| BrokerError::Open {
            path: record.file_path.clone(),
            source,
        })?;
        let Some(head) = head else {
            return Ok(file);
        };
        let Err(mismatch) = self.matches_head(&file, &head, &record.file_path) else {
            return Ok(file);
        };
        if !self.config.accept_mismatch {
            return Err(BrokerError::Mismatch(format!(
                "{mismatch}. Restore the log (and check it with `tresor audit verify --checkpoint`), or start the server once with --accept-audit-mismatch: the file is then moved aside and a new chain starts that records where the saved one stood"
            )));
        }
        file.close()?;
        let aside = aside_path(&record.file_path);
        std::fs::rename(&record.file_path, &aside).map_err(|source| BrokerError::Open {
            path: record.file_path.clone(),
            source: AuditError::Io {
                action: "move aside",
                path: record.file_path.clone(),
                source,
            },
        })?;
        tracing::warn!(device = %path, moved_to = %aside.display(), problem = %mismatch, "accepted an audit log that does not match its saved position; a new chain starts");
        FileDevice::open_continuing(config, decode_salt(&record.salt)?, Some(head.checkpoint))
            .map_err(|source| BrokerError::Open {
                path: record.file_path.clone(),
                source,
            })
    }

    /// Whether the log the device opened still holds everything its saved
    /// position says was written, and nothing older than the store knows.
    fn matches_head(&self, file: &FileDevice, head: &Head, path: &Path) -> Result<(), String> {
        let opened = file.opened();
        let saved = &head.checkpoint;
        let shown = path.display();
        if opened.tail.chain_id != saved.chain_id {
            return match &opened.continues {
                Some(from) if from.chain_id == saved.chain_id && from.seq >= saved.seq => Ok(()),
                _ => Err(format!(
                    "the audit log {shown} was replaced: it holds chain {} which does not continue chain {} (saved at line {})",
                    opened.tail.chain_id, saved.chain_id, saved.seq
                )),
            };
        }
        if opened.tail.seq < saved.seq {
            return Err(format!(
                "the audit log {shown} ends at line {} but line {} was written (chain {}): lines were cut from its end",
                opened.tail.seq, saved.seq, saved.chain_id
            ));
        }
        if opened.tail.seq == saved.seq && opened.tail.hash != saved.hash {
            return Err(format!(
                "the audit log {shown}'s line {} is not the line that was written: the log was rewritten",
                saved.seq
            ));
        }
        // Lines after the saved position are those of the last moments
        // before a crash; lines written much later than the save mean the
        // store is older than its log.
        let slack = self.config.checkpoint_interval * 2 + Duration::from_secs(30);
        if opened.tail.seq > saved.seq
            && let Some(written) = opened.tail_time.as_deref().and_then(unix_seconds)
            && written > head.saved_at + slack.as_secs()
        {
            return Err(format!(
                "the audit log {shown} holds {} lines written up to {}s after the store last saved its position: the store looks older than its log (restored from an older copy? tokens revoked since would be valid again)",
                opened.tail.seq - saved.seq,
                written - head.saved_at
            ));
        }
        Ok(())
    }

    fn device_config(&self, record: &DeviceRecord) -> FileDeviceConfig {
        let mut config = FileDeviceConfig::new(&record.file_path);
        config.write_timeout = self.config.write_timeout;
        config.fsync = if self.config.fsync {
            FsyncPolicy::Always
        } else {
            FsyncPolicy::Never
        };
        config.refuse_symlink = !record.declared;
        config
    }

    /// A file an API caller chose: absolute, without `.` or `..`, in the
    /// configured directory (links resolved).
    fn check_api_file(&self, file: &Path) -> Result<(), BrokerError> {
        let dir = self
            .config
            .api_dir
            .as_ref()
            .ok_or(BrokerError::ApiDisabled)?;
        let outside = || BrokerError::OutsideApiDir {
            dir: dir.clone(),
            file: file.to_owned(),
        };
        // Written as its plain components: `Path` equality would ignore a
        // `.` or a doubled slash, the text does not.
        let plain = file.is_absolute()
            && file
                .components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
            && file.components().collect::<PathBuf>().as_os_str() == file.as_os_str();
        let (Some(parent), Some(_)) = (file.parent(), file.file_name()) else {
            return Err(outside());
        };
        if !plain {
            return Err(outside());
        }
        let dir = dir.canonicalize().map_err(|_| outside())?;
        let parent = parent.canonicalize().map_err(|_| outside())?;
        if parent.starts_with(&dir) {
            Ok(())
        } else {
            Err(outside())
        }
    }

    /// Writes `entry` to every device. Fails only if devices exist and none
    /// of them recorded it (fail closed); never waits longer than the bound.
    pub fn log(&self, entry: &AuditEntry) -> Result<(), BrokerError> {
        self.begin(entry).finish()
    }

    /// Queues `entry` on every device without waiting; see [`Queued::finish`].
    pub fn begin(&self, entry: &AuditEntry) -> Queued {
        self.begin_all(std::slice::from_ref(entry))
    }

    /// Queues `entries`, consecutively, on every device without waiting.
    pub fn begin_all(&self, entries: &[AuditEntry]) -> Queued {
        self.sync();
        let devices = self.devices.read().unwrap_or_else(|p| p.into_inner());
        let queued = devices
            .iter()
            .map(|(path, device)| (path.clone(), device.file.log_pending_all(entries)))
            .collect();
        Queued { queued }
    }

    /// The devices, as `sys/audit` lists them.
    pub fn list(&self) -> Value {
        self.sync();
        let devices = self.devices.read().unwrap_or_else(|p| p.into_inner());
        let mut out = serde_json::Map::new();
        for (path, device) in devices.iter() {
            out.insert(
                format!("{path}/"),
                json!({
                    "type": device.record.kind,
                    "description": device.record.description,
                    "options": { "file_path": device.record.file_path },
                    "local": false,
                    "path": format!("{path}/"),
                }),
            );
        }
        Value::Object(out)
    }

    /// Enables a file device at `path` through the API, where the
    /// configuration allows it. `options` are the request's `options`.
    pub fn enable(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        options: &serde_json::Map<String, Value>,
    ) -> Result<(), BrokerError> {
        if kind != "file" {
            return Err(BrokerError::Invalid(format!(
                "unknown audit device type `{kind}`; tresor offers `file`"
            )));
        }
        if let Some(other) = options.keys().find(|k| *k != "file_path") {
            return Err(BrokerError::Invalid(format!(
                "the file audit device takes only the option `file_path`, not `{other}`"
            )));
        }
        let file_path = match options.get("file_path") {
            Some(Value::String(p)) if !p.is_empty() => PathBuf::from(p),
            _ => return Err(BrokerError::Invalid("options.file_path is required".into())),
        };
        if path.is_empty() || path.contains('/') {
            return Err(BrokerError::Invalid(
                "an audit device's path is one name, such as `file`".into(),
            ));
        }
        if self.declared(path).is_some() {
            return Err(BrokerError::Declared(path.to_owned()));
        }
        self.check_api_file(&file_path)?;
        let mut devices = self.devices.write().unwrap_or_else(|p| p.into_inner());
        let (mut table, stamp) = load(&self.barrier)?;
        if table.devices.contains_key(path) || devices.contains_key(path) {
            return Err(BrokerError::Invalid(format!(
                "path already in use at {path}/"
            )));
        }
        let record = DeviceRecord {
            kind: kind.to_string(),
            description: description.to_string(),
            file_path,
            salt: new_salt()?,
            declared: false,
        };
        let file = self.open_device(path, &record)?;
        table.devices.insert(path.to_string(), record.clone());
        if let Err(e) = save(&self.barrier, &table, stamp.as_ref()) {
            let _ = file.close();
            return Err(e);
        }
        devices.insert(path.to_string(), Device { record, file });
        Ok(())
    }

    /// Disables a device enabled through the API.
    pub fn disable(&self, path: &str) -> Result<(), BrokerError> {
        if self.declared(path).is_some() {
            return Err(BrokerError::Declared(path.to_owned()));
        }
        let mut devices = self.devices.write().unwrap_or_else(|p| p.into_inner());
        let (mut table, stamp) = load(&self.barrier)?;
        if table.devices.remove(path).is_some() {
            save(&self.barrier, &table, stamp.as_ref())?;
        }
        if let Some(device) = devices.remove(path) {
            device.file.close()?;
        }
        Ok(())
    }

    /// The device's HMAC of `input`, as it would appear in its log.
    pub fn hash(&self, path: &str, input: &str) -> Result<String, BrokerError> {
        let devices = self.devices.read().unwrap_or_else(|p| p.into_inner());
        let device = devices
            .get(path)
            .ok_or_else(|| BrokerError::Invalid(format!("unknown audit device {path}/")))?;
        Ok(device.file.hash(input))
    }

    /// Saves the position of every open device's chain that moved since the
    /// last save, in one commit; a position is never saved behind the one
    /// stored. A device that cannot answer within its bound is skipped (and
    /// logged); its next save catches up.
    pub fn save_checkpoints(&self) -> Result<(), BrokerError> {
        let positions: Vec<(PathBuf, Checkpoint)> = {
            let devices = self.devices.read().unwrap_or_else(|p| p.into_inner());
            devices
                .iter()
                .filter_map(|(path, device)| match device.file.checkpoint() {
                    Ok(checkpoint) => Some((device.record.file_path.clone(), checkpoint)),
                    Err(e) => {
                        tracing::warn!(device = %path, error = %e, "cannot take the audit checkpoint");
                        None
                    }
                })
                .collect()
        };
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        let mut moved = Vec::new();
        for (file, checkpoint) in positions {
            if saved.get(&checkpoint.chain_id) == Some(&checkpoint.seq) {
                continue;
            }
            let stored = load_checkpoint(&self.barrier, &checkpoint.chain_id)?;
            if stored.is_some_and(|s| s.seq > checkpoint.seq) {
                tracing::error!(chain = %checkpoint.chain_id, "an audit chain's saved position is ahead of its log; not moving it back");
                continue;
            }
            moved.push((file, checkpoint));
        }
        if moved.is_empty() {
            return Ok(());
        }
        let saved_at = now_seconds();
        let mut writes = WriteSet::new();
        for (file, checkpoint) in &moved {
            let bytes = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
            writes.put(
                &format!("{CHECKPOINT_PREFIX}{}", checkpoint.chain_id),
                Zeroizing::new(bytes),
            );
            let head = Head {
                checkpoint: checkpoint.clone(),
                saved_at,
            };
            let bytes = serde_json::to_vec(&head).expect("a head serializes");
            writes.put(&self.head_key(file), Zeroizing::new(bytes));
        }
        self.barrier.commit(writes)?;
        for (_, checkpoint) in moved {
            saved.insert(checkpoint.chain_id, checkpoint.seq);
        }
        Ok(())
    }

    fn head_key(&self, file: &Path) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.host.as_bytes());
        hasher.update([0]);
        hasher.update(file.as_os_str().as_encoded_bytes());
        format!("{HEAD_PREFIX}{}", crate::salt::hex(&hasher.finalize()))
    }

    fn head(&self, file: &Path) -> Result<Option<Head>, BrokerError> {
        let Some(entry) = self.barrier.get(&self.head_key(file))? else {
            return Ok(None);
        };
        serde_json::from_slice(&entry.value)
            .map(Some)
            .map_err(|_| BrokerError::CorruptCheckpoint)
    }

    /// The last saved position of the chain `chain_id`, if any.
    pub fn checkpoint(&self, chain_id: &str) -> Result<Option<Checkpoint>, BrokerError> {
        load_checkpoint(&self.barrier, chain_id)
    }

    /// Reopens every file, after a log rotation.
    pub fn reopen(&self) {
        for (path, device) in self
            .devices
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Err(e) = device.file.reopen() {
                tracing::error!(device = %path, error = %e, "reopening an audit file failed");
            }
        }
    }

    /// Whether any device is open.
    pub fn is_empty(&self) -> bool {
        self.devices
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

/// Entries queued on the devices, to be waited for together.
pub struct Queued {
    queued: Vec<(String, Result<Pending, AuditError>)>,
}

impl Queued {
    /// Waits for every device; succeeds if there are none, or if at least one
    /// recorded the entry (the others' failures are logged).
    pub fn finish(self) -> Result<(), BrokerError> {
        let outcomes = self
            .queued
            .into_iter()
            .map(|(path, pending)| (path, pending.and_then(Pending::wait)))
            .collect();
        judge(outcomes)
    }

    /// [`Queued::finish`], awaiting the devices instead of blocking a thread.
    pub async fn finish_async(self) -> Result<(), BrokerError> {
        let mut outcomes = Vec::with_capacity(self.queued.len());
        for (path, pending) in self.queued {
            let outcome = match pending {
                Ok(pending) => {
                    let deadline = tokio::time::Instant::from_std(pending.deadline());
                    let timed_out = pending.timed_out();
                    tokio::time::timeout_at(deadline, pending)
                        .await
                        .unwrap_or(Err(timed_out))
                }
                Err(e) => Err(e),
            };
            outcomes.push((path, outcome));
        }
        judge(outcomes)
    }
}

/// At least one device must have recorded the entry; the others' failures
/// are logged. No devices at all is fine.
fn judge(outcomes: Vec<(String, Result<(), AuditError>)>) -> Result<(), BrokerError> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut recorded = false;
    for (path, outcome) in outcomes {
        match outcome {
            Ok(()) => recorded = true,
            Err(e) => tracing::warn!(device = %path, error = %e, "an audit device failed"),
        }
    }
    if recorded {
        Ok(())
    } else {
        tracing::error!("no audit device recorded the request");
        Err(BrokerError::NotRecorded)
    }
}

/// The last saved position of the audit chain `chain_id`, if any, as
/// [`AuditBroker::save_checkpoints`] stored it.
pub fn load_checkpoint(
    barrier: &Barrier,
    chain_id: &str,
) -> Result<Option<Checkpoint>, BrokerError> {
    if chain_id.is_empty() || !chain_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BrokerError::BadChainId);
    }
    let Some(entry) = barrier.get(&format!("{CHECKPOINT_PREFIX}{chain_id}"))? else {
        return Ok(None);
    };
    serde_json::from_slice(&entry.value)
        .map(Some)
        .map_err(|_| BrokerError::CorruptCheckpoint)
}

fn new_salt() -> Result<String, BrokerError> {
    use base64::Engine;
    let salt = Salt::generate()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(salt.as_bytes()))
}

fn decode_salt(text: &str) -> Result<Salt, BrokerError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|_| BrokerError::CorruptTable)?;
    Ok(Salt::new(bytes)?)
}

/// The stored device table and the stamp of its stored bytes.
fn load(barrier: &Barrier) -> Result<(DeviceTable, Option<Stamp>), BrokerError> {
    match barrier.get(TABLE_KEY)? {
        Some(entry) => serde_json::from_slice(&entry.value)
            .map(|table| (table, Some(entry.stamp)))
            .map_err(|_| BrokerError::CorruptTable),
        None => Ok((DeviceTable::default(), None)),
    }
}

fn save(barrier: &Barrier, table: &DeviceTable, stamp: Option<&Stamp>) -> Result<(), BrokerError> {
    let bytes = Zeroizing::new(serde_json::to_vec(table).expect("the audit table serializes"));
    let mut writes = WriteSet::new();
    writes.expect(TABLE_KEY, stamp).put(TABLE_KEY, bytes);
    if !barrier.commit(writes)?.applied() {
        return Err(BrokerError::Invalid(
            "the audit device table changed at the same time; try again".into(),
        ));
    }
    Ok(())
}

fn aside_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".mismatch-{}", now_seconds()));
    PathBuf::from(name)
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unix_seconds(rfc3339: &str) -> Option<u64> {
    let time = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    u64::try_from(time.unix_timestamp()).ok()
}

/// This machine's name: with the file's path, it names one log file among
/// the servers sharing a store.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests;
