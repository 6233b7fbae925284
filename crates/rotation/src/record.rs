//! The rotation record of one secret: a KV secret of its own at
//! `_tresor/rotation/<secret path>`, written only with check-and-set.
//!
//! It holds the labels (which KV version of the secret is `current`, which
//! `previous`), the `pending` values while a rotation is under way and the
//! step it reached, when the secret was last rotated, and the lease of the
//! process rotating it. Pending values are secrets, so they live in the
//! record's (encrypted) data, never in custom metadata.

use crate::RotateError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tresor_kv::SecretMap;
use tresor_platform::{ROTATION_RECORD_PREFIX, SecretStore};

/// How long a lease holds when its holder can not be asked whether it is
/// still alive (another host).
pub const LEASE_TTL: Duration = Duration::from_secs(15 * 60);

/// The step a rotation reached, persisted after each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// The pending values exist in the record.
    Create,
    /// They are set where they are checked.
    Set,
    /// A fresh login (or check) with them worked.
    Test,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Set => "set",
            Step::Test => "test",
        }
    }
}

/// Who is rotating the secret, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub host: String,
    pub pid: u32,
    /// Tells two holders in one process apart.
    pub nonce: String,
    pub expires: String,
}

impl Lease {
    pub fn describe(&self) -> String {
        format!(
            "process {} on {} until {}",
            self.pid, self.host, self.expires
        )
    }
}

/// A login role that stops logging in once `after` has passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retire {
    pub role: String,
    pub after: String,
}

/// Everything but the pending values.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The secret's KV version labelled `current` (0: before the first rotation).
    #[serde(default)]
    pub current: u64,
    /// The KV version labelled `previous`.
    #[serde(default)]
    pub previous: Option<u64>,
    pub last_rotated: Option<String>,
    /// The step an unfinished rotation reached; `None`: none is under way.
    pub step: Option<Step>,
    /// The KV version the pending values were made against.
    #[serde(default)]
    pub base: u64,
    pub started: Option<String>,
    /// Promoted, not yet delivered to the cluster.
    #[serde(default)]
    pub undelivered: bool,
    pub retire: Option<Retire>,
    pub lease: Option<Lease>,
    /// Why the last attempt stopped, without any value.
    pub last_error: Option<String>,
}

/// A record as read: its KV version (for check-and-set), state and pending values.
pub struct Record {
    pub version: u64,
    pub state: State,
    pub pending: SecretMap,
}

/// Where the record of the secret at `path` lives.
pub fn path(secret_path: &str) -> String {
    format!("{ROTATION_RECORD_PREFIX}rotation/{secret_path}")
}

/// Reads the record; an absent one is a fresh, empty state at version 0.
pub fn load(store: &dyn SecretStore, secret_path: &str) -> Result<Record, RotateError> {
    let stored = store.read(&path(secret_path))?;
    let Some(data) = stored.data else {
        return Ok(Record {
            version: stored.version,
            state: State::default(),
            pending: SecretMap::new(),
        });
    };
    let state = data
        .get("state")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| RotateError::Corrupt(path(secret_path)))?
        .unwrap_or_default();
    let pending = match data.get("pending") {
        Some(Value::Object(map)) => SecretMap::from_map(map.clone()),
        _ => SecretMap::new(),
    };
    Ok(Record {
        version: stored.version,
        state,
        pending,
    })
}

impl Record {
    /// Writes the record if nobody else did since it was read; on success
    /// its version moves on. `Ok(false)`: somebody else wrote it.
    pub fn save(
        &mut self,
        store: &dyn SecretStore,
        secret_path: &str,
    ) -> Result<bool, RotateError> {
        let mut data = SecretMap::new();
        data.insert(
            "state".into(),
            serde_json::to_value(&self.state).expect("the state serializes"),
        );
        data.insert(
            "pending".into(),
            Value::Object(self.pending.as_map().clone()),
        );
        if store.write(&path(secret_path), &data, self.version)? {
            self.version += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }
}

/// This process, as a lease holder.
pub fn holder(now: SystemTime, nonce: &str) -> Lease {
    Lease {
        host: hostname(),
        pid: std::process::id(),
        nonce: nonce.to_owned(),
        expires: stamp(now + LEASE_TTL),
    }
}

/// Whether `lease` still keeps others out at `now`: it has not expired, and
/// when its holder ran on this host, that process is still alive (a crashed
/// `tresor rotate` must not block the re-run for the whole TTL).
pub fn is_held(lease: &Lease, now: SystemTime) -> bool {
    let expired = parse(&lease.expires).is_none_or(|until| until <= now);
    if expired {
        return false;
    }
    if lease.host == hostname() {
        return std::path::Path::new(&format!("/proc/{}", lease.pid)).exists();
    }
    true
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into())
}

/// A time as RFC 3339 in whole seconds.
pub fn stamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

pub fn parse(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(text).ok()
}
