//! What the engine stores, and the views it returns (shaped as Vault's JSON).

use crate::duration::format_duration;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Versions kept when neither the secret nor the mount says otherwise.
pub const DEFAULT_MAX_VERSIONS: u32 = 10;

/// Limits on custom metadata, as Vault sets them.
pub const MAX_CUSTOM_KEYS: usize = 64;
pub const MAX_CUSTOM_KEY_LEN: usize = 128;
pub const MAX_CUSTOM_VALUE_LEN: usize = 512;

/// A mount's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// 0 means the default of 10.
    pub max_versions: u32,
    pub cas_required: bool,
    /// Zero: versions are never deleted automatically.
    #[serde(with = "secs")]
    pub delete_version_after: Duration,
}

impl Config {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "max_versions": self.max_versions,
            "cas_required": self.cas_required,
            "delete_version_after": format_duration(self.delete_version_after),
        })
    }
}

/// Changes to a mount's settings; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct ConfigUpdate {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredVersion {
    pub created: Timestamp,
    pub deletion: Option<Timestamp>,
    pub destroyed: bool,
}

impl StoredVersion {
    pub fn is_deleted(&self, now: Timestamp) -> bool {
        self.deletion.is_some_and(|d| d <= now)
    }

    fn summary(&self) -> VersionSummary {
        VersionSummary {
            created_time: self.created.rfc3339(),
            deletion_time: self.deletion.map(Timestamp::rfc3339).unwrap_or_default(),
            destroyed: self.destroyed,
        }
    }
}

/// One secret's metadata record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredMetadata {
    pub created: Timestamp,
    pub updated: Timestamp,
    pub current_version: u64,
    pub oldest_version: u64,
    pub max_versions: u32,
    pub cas_required: bool,
    #[serde(with = "secs")]
    pub delete_version_after: Duration,
    pub custom_metadata: BTreeMap<String, String>,
    pub versions: BTreeMap<u64, StoredVersion>,
    /// Counts every change to this record; what metadata check-and-set compares.
    pub metadata_version: u64,
}

impl StoredMetadata {
    pub fn new(now: Timestamp) -> Self {
        Self {
            created: now,
            updated: now,
            current_version: 0,
            oldest_version: 0,
            max_versions: 0,
            cas_required: false,
            delete_version_after: Duration::ZERO,
            custom_metadata: BTreeMap::new(),
            versions: BTreeMap::new(),
            metadata_version: 0,
        }
    }

    pub fn info(&self, version: u64) -> Option<VersionInfo> {
        let stored = self.versions.get(&version)?;
        Some(VersionInfo {
            created_time: stored.created.rfc3339(),
            custom_metadata: self.custom_metadata_json(),
            deletion_time: stored.deletion.map(Timestamp::rfc3339).unwrap_or_default(),
            destroyed: stored.destroyed,
            version,
        })
    }

    fn custom_metadata_json(&self) -> Option<BTreeMap<String, String>> {
        (!self.custom_metadata.is_empty()).then(|| self.custom_metadata.clone())
    }

    pub fn view(&self) -> MetadataView {
        MetadataView {
            cas_required: self.cas_required,
            created_time: self.created.rfc3339(),
            current_version: self.current_version,
            custom_metadata: self.custom_metadata_json(),
            delete_version_after: format_duration(self.delete_version_after),
            max_versions: self.max_versions,
            oldest_version: self.oldest_version,
            updated_time: self.updated.rfc3339(),
            versions: self
                .versions
                .iter()
                .map(|(n, v)| (n.to_string(), v.summary()))
                .collect(),
            metadata_version: self.metadata_version,
        }
    }
}

/// A version's metadata, as returned with its data or after a write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionInfo {
    pub created_time: String,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// Empty when the version is not deleted.
    pub deletion_time: String,
    pub destroyed: bool,
    pub version: u64,
}

/// A read of one version: its data, unless it is deleted or destroyed.
#[derive(Debug)]
pub struct VersionRead {
    pub data: Option<crate::SecretMap>,
    pub metadata: VersionInfo,
}

/// A version's line in a metadata read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VersionSummary {
    pub created_time: String,
    pub deletion_time: String,
    pub destroyed: bool,
}

/// A secret's metadata, as `GET <mount>/metadata/<path>` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MetadataView {
    pub cas_required: bool,
    pub created_time: String,
    pub current_version: u64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub delete_version_after: String,
    pub max_versions: u32,
    pub oldest_version: u64,
    pub updated_time: String,
    pub versions: BTreeMap<String, VersionSummary>,
    /// Not in Vault: the value to pass as `cas` to a metadata write.
    pub metadata_version: u64,
}

/// Changes to a secret's metadata; `None` leaves a field as it is.
#[derive(Clone, Debug, Default)]
pub struct MetadataUpdate {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<Duration>,
    /// Replaces the custom metadata (a POST), or merges into it (a PATCH,
    /// where a `None` value removes the key).
    pub custom_metadata: Option<BTreeMap<String, Option<String>>>,
    /// Merge `custom_metadata` instead of replacing it.
    pub merge: bool,
    /// Apply only if the record's `metadata_version` is this (0: absent).
    pub cas: Option<u64>,
}

/// A subkeys read: the data's shape with every leaf `null`.
#[derive(Debug)]
pub struct SubkeysRead {
    pub subkeys: Option<serde_json::Value>,
    pub metadata: VersionInfo,
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}
