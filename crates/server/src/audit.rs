//! The audit broker: every enabled device gets every request and response
//! entry; a request is served only if at least one device recorded it.

use crate::request::ApiError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};
use std::time::Duration;
use tresor_audit::{
    AuditEntry, Checkpoint, FileDevice, FileDeviceConfig, FsyncPolicy, Pending, Salt,
};
use tresor_barrier::{Barrier, Stamp, WriteSet};
use zeroize::Zeroizing;

const TABLE_KEY: &str = "core/audit";

/// Where each chain's last saved position is kept, under its chain id: in
/// the barrier, out of reach of whoever can edit the log files, so lines cut
/// from the end of a log are detected (`tresor audit verify --checkpoint`).
const CHECKPOINT_PREFIX: &str = "core/audit-checkpoint/";

#[derive(Clone, Serialize, Deserialize)]
struct DeviceRecord {
    #[serde(rename = "type")]
    kind: String,
    description: String,
    file_path: String,
    salt: String,
}

#[derive(Default, Serialize, Deserialize)]
struct DeviceTable {
    devices: BTreeMap<String, DeviceRecord>,
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
    devices: RwLock<BTreeMap<String, Device>>,
    /// The stored device table the open devices reflect: another server on
    /// the same store may enable or disable a device, and every request
    /// compares this with the stored bytes first (see [`AuditBroker::sync`]).
    synced: RwLock<Synced>,
    write_timeout: Duration,
    fsync: bool,
    /// The sequence number saved last for each chain id.
    saved: Mutex<HashMap<String, u64>>,
}

impl AuditBroker {
    /// Opens every device recorded in the store.
    pub fn open(
        barrier: Arc<Barrier>,
        write_timeout: Duration,
        fsync: bool,
    ) -> Result<Self, ApiError> {
        let (table, stamp) = load(&barrier)?;
        let mut devices = BTreeMap::new();
        for (path, record) in table.devices {
            let file = open_device(&record, write_timeout, fsync)?;
            devices.insert(path, Device { record, file });
        }
        Ok(Self {
            barrier,
            devices: RwLock::new(devices),
            synced: RwLock::new(Synced {
                stamp,
                checked: None,
            }),
            write_timeout,
            fsync,
            saved: Mutex::new(HashMap::new()),
        })
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
                tracing::warn!(error = %e.errors.join("; "), "cannot reload the audit device table; keeping the open devices");
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

    fn reload(&self, generation: Option<u64>) -> Result<(), ApiError> {
        let mut devices = self.devices.write().unwrap_or_else(|p| p.into_inner());
        let (table, stamp) = load(&self.barrier)?;
        let disabled: Vec<String> = devices
            .keys()
            .filter(|path| !table.devices.contains_key(*path))
            .cloned()
            .collect();
        for path in disabled {
            if let Some(device) = devices.remove(&path)
                && let Err(e) = device.file.close()
            {
                tracing::warn!(device = %path, error = %e, "closing a device disabled elsewhere failed");
            }
        }
        for (path, record) in table.devices {
            if let std::collections::btree_map::Entry::Vacant(slot) = devices.entry(path) {
                let file = open_device(&record, self.write_timeout, self.fsync)?;
                slot.insert(Device { record, file });
            }
        }
        *self.synced.write().unwrap_or_else(|p| p.into_inner()) = Synced {
            stamp,
            checked: generation,
        };
        Ok(())
    }

    /// Writes `entry` to every device. Fails only if devices exist and none
    /// of them recorded it (fail closed); never waits longer than the bound.
    pub fn log(&self, entry: &AuditEntry) -> Result<(), ApiError> {
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
    pub fn list(&self) -> Value {
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

    pub fn enable(
        &self,
        path: &str,
        kind: &str,
        description: &str,
        file_path: &str,
    ) -> Result<(), ApiError> {
        if kind != "file" {
            return Err(ApiError::bad_request(format!(
                "unknown audit device type `{kind}`; tresor offers `file`"
            )));
        }
        if file_path.is_empty() {
            return Err(ApiError::bad_request("options.file_path is required"));
        }
        let mut devices = self.devices.write().unwrap_or_else(|p| p.into_inner());
        if devices.contains_key(path) {
            return Err(ApiError::bad_request(format!(
                "path already in use at {path}/"
            )));
        }
        let salt = Salt::generate().map_err(|e| ApiError::internal(e.to_string()))?;
        let record = DeviceRecord {
            kind: kind.to_string(),
            description: description.to_string(),
            file_path: file_path.to_string(),
            salt: B64.encode(salt.as_bytes()),
        };
        let file = open_device(&record, self.write_timeout, self.fsync)?;
        let (mut table, _) = load(&self.barrier)?;
        table.devices.insert(path.to_string(), record.clone());
        save(&self.barrier, &table)?;
        devices.insert(path.to_string(), Device { record, file });
        Ok(())
    }

    pub fn disable(&self, path: &str) -> Result<(), ApiError> {
        let mut devices = self.devices.write().unwrap_or_else(|p| p.into_inner());
        let (mut table, _) = load(&self.barrier)?;
        table.devices.remove(path);
        save(&self.barrier, &table)?;
        if let Some(device) = devices.remove(path) {
            device
                .file
                .close()
                .map_err(|e| ApiError::internal(format!("closing the audit device: {e}")))?;
        }
        Ok(())
    }

    /// The device's HMAC of `input`, as it would appear in its log.
    pub fn hash(&self, path: &str, input: &str) -> Result<String, ApiError> {
        let devices = self.devices.read().unwrap_or_else(|p| p.into_inner());
        let device = devices
            .get(path)
            .ok_or_else(|| ApiError::bad_request(format!("unknown audit backend {path}/")))?;
        Ok(device.file.hash(input))
    }

    /// Saves the position of every open device's chain that moved since the
    /// last save, in one commit. A device that cannot answer within its
    /// bound is skipped (and logged); its next save catches up.
    pub fn save_checkpoints(&self) -> Result<(), ApiError> {
        let checkpoints: Vec<Checkpoint> = {
            let devices = self.devices.read().unwrap_or_else(|p| p.into_inner());
            devices
                .iter()
                .filter_map(|(path, device)| match device.file.checkpoint() {
                    Ok(checkpoint) => Some(checkpoint),
                    Err(e) => {
                        tracing::warn!(device = %path, error = %e, "cannot take the audit checkpoint");
                        None
                    }
                })
                .collect()
        };
        let mut saved = self.saved.lock().unwrap_or_else(|p| p.into_inner());
        let moved: Vec<Checkpoint> = checkpoints
            .into_iter()
            .filter(|c| saved.get(&c.chain_id) != Some(&c.seq))
            .collect();
        if moved.is_empty() {
            return Ok(());
        }
        let mut writes = WriteSet::new();
        for checkpoint in &moved {
            let bytes = serde_json::to_vec(checkpoint).expect("a checkpoint serializes");
            writes.put(
                &format!("{CHECKPOINT_PREFIX}{}", checkpoint.chain_id),
                Zeroizing::new(bytes),
            );
        }
        self.barrier
            .commit(writes)
            .map_err(crate::errors::barrier)?;
        for checkpoint in moved {
            saved.insert(checkpoint.chain_id, checkpoint.seq);
        }
        Ok(())
    }

    /// The last saved position of the chain `chain_id`, if any.
    pub fn checkpoint(&self, chain_id: &str) -> Result<Option<Checkpoint>, ApiError> {
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
}

/// Entries queued on the devices, to be waited for together.
pub struct Queued {
    queued: Vec<(String, Result<Pending, tresor_audit::AuditError>)>,
}

impl Queued {
    /// Waits for every device; succeeds if there are none, or if at least one
    /// recorded the entry (the others' failures are logged).
    pub fn finish(self) -> Result<(), ApiError> {
        let outcomes = self
            .queued
            .into_iter()
            .map(|(path, pending)| (path, pending.and_then(Pending::wait)))
            .collect();
        judge(outcomes)
    }

    /// [`Queued::finish`], awaiting the devices instead of blocking a thread.
    pub async fn finish_async(self) -> Result<(), ApiError> {
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
fn judge(outcomes: Vec<(String, Result<(), tresor_audit::AuditError>)>) -> Result<(), ApiError> {
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
        Err(ApiError::internal(
            "internal error: no audit device could record the request, so it was refused; check the audit log's disk",
        ))
    }
}

/// The last saved position of the audit chain `chain_id`, if any, as
/// [`AuditBroker::save_checkpoints`] stored it.
pub fn load_checkpoint(barrier: &Barrier, chain_id: &str) -> Result<Option<Checkpoint>, ApiError> {
    if chain_id.is_empty() || !chain_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "a chain id is the hex string in the `chain.id` field of every audit line",
        ));
    }
    let Some(entry) = barrier
        .get(&format!("{CHECKPOINT_PREFIX}{chain_id}"))
        .map_err(crate::errors::barrier)?
    else {
        return Ok(None);
    };
    serde_json::from_slice(&entry.value)
        .map(Some)
        .map_err(|_| ApiError::internal("a stored audit checkpoint is unreadable"))
}

fn open_device(
    record: &DeviceRecord,
    write_timeout: Duration,
    fsync: bool,
) -> Result<FileDevice, ApiError> {
    let salt_bytes = B64
        .decode(record.salt.as_bytes())
        .map_err(|_| ApiError::internal("an audit device's salt is unreadable"))?;
    let salt = Salt::new(salt_bytes).map_err(|e| ApiError::internal(e.to_string()))?;
    let mut config = FileDeviceConfig::new(&record.file_path);
    config.write_timeout = write_timeout;
    config.fsync = if fsync {
        FsyncPolicy::Always
    } else {
        FsyncPolicy::Never
    };
    FileDevice::open(config, salt).map_err(|e| {
        ApiError::bad_request(format!("cannot open audit file {}: {e}", record.file_path))
    })
}

/// The stored device table and the stamp of its stored bytes.
fn load(barrier: &Barrier) -> Result<(DeviceTable, Option<Stamp>), ApiError> {
    match barrier.get(TABLE_KEY).map_err(crate::errors::barrier)? {
        Some(entry) => serde_json::from_slice(&entry.value)
            .map(|table| (table, Some(entry.stamp)))
            .map_err(|_| ApiError::internal("the audit device table is unreadable")),
        None => Ok((DeviceTable::default(), None)),
    }
}

fn save(barrier: &Barrier, table: &DeviceTable) -> Result<(), ApiError> {
    let bytes = Zeroizing::new(serde_json::to_vec(table).expect("the audit table serializes"));
    let mut writes = WriteSet::new();
    writes.put(TABLE_KEY, bytes);
    barrier.commit(writes).map_err(crate::errors::barrier)?;
    Ok(())
}
