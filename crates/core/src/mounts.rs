use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What can be mounted: secrets engines in the mount table, auth methods
/// in the auth table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountType {
    /// Key/value, version 1: unversioned.
    KvV1,
    /// Key/value, version 2.
    KvV2,
    /// Encryption as a service with named keys.
    Transit,
    /// The token store, always at `auth/token/`.
    Token,
}

impl MountType {
    /// The type as `vault secrets list` (or `vault auth list`) shows it.
    pub fn name(self) -> &'static str {
        match self {
            MountType::KvV1 | MountType::KvV2 => "kv",
            MountType::Transit => "transit",
            MountType::Token => "token",
        }
    }

    /// The secrets engine `tresor secrets enable` names (`kv` is version 2
    /// there, as tresor's own CLI has always made it).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "kv" | "kv-v2" => Some(MountType::KvV2),
            "transit" => Some(MountType::Transit),
            _ => None,
        }
    }

    /// How `sys/mounts/<path>` is asked for this engine: its `type` and
    /// `options.version`.
    pub fn enable_request(self) -> (&'static str, Option<&'static str>) {
        match self {
            MountType::KvV1 => ("kv", Some("1")),
            MountType::KvV2 => ("kv-v2", None),
            MountType::Transit => ("transit", None),
            MountType::Token => ("token", None),
        }
    }

    /// The engine's options as Vault reports them.
    pub fn options(self) -> BTreeMap<String, String> {
        match self {
            MountType::KvV1 => [("version".to_string(), "1".to_string())].into(),
            MountType::KvV2 => [("version".to_string(), "2".to_string())].into(),
            MountType::Transit | MountType::Token => BTreeMap::new(),
        }
    }

    /// The type for messages: `KV version 1`, `KV version 2`, `token`.
    pub fn name_with_version(self) -> &'static str {
        match self {
            MountType::KvV1 => "KV version 1",
            MountType::KvV2 => "KV version 2",
            MountType::Transit => "transit",
            MountType::Token => "the token store",
        }
    }

    /// The auth method `sys/auth/<path>` enables for `type = name`.
    pub fn auth_method(name: &str) -> Option<MountType> {
        AUTH_METHODS.iter().copied().find(|m| m.name() == name)
    }

    /// Whether this is an auth method (mounted under `auth/`).
    pub fn is_auth(self) -> bool {
        matches!(self, MountType::Token)
    }
}

/// The auth methods that can be enabled (the token store always is).
const AUTH_METHODS: &[MountType] = &[];

/// A mount's tunable settings (`sys/mounts/<path>/tune`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountConfig {
    /// Seconds; 0: the system default.
    #[serde(default)]
    pub default_lease_ttl: u64,
    /// Seconds; 0: the system maximum.
    #[serde(default)]
    pub max_lease_ttl: u64,
    /// `hidden` or `unauth` (shown in `sys/internal/ui/mounts` to every
    /// token), as Vault names it.
    #[serde(default)]
    pub listing_visibility: ListingVisibility,
}

/// Whether a mount is listed to tokens without a capability under it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListingVisibility {
    #[default]
    Hidden,
    Unauth,
}

impl ListingVisibility {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "" | "hidden" => Some(Self::Hidden),
            "unauth" => Some(Self::Unauth),
            _ => None,
        }
    }

    /// As Vault reports it (`""` for hidden).
    pub fn name(self) -> &'static str {
        match self {
            Self::Hidden => "",
            Self::Unauth => "unauth",
        }
    }
}

/// What `sys/mounts/<path>/tune` changes; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default)]
pub struct Tune {
    pub description: Option<String>,
    pub default_lease_ttl: Option<u64>,
    pub max_lease_ttl: Option<u64>,
    pub listing_visibility: Option<ListingVisibility>,
}

/// One row of the mount table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountEntry {
    /// Ends in `/`, as `secret/`.
    pub path: String,
    #[serde(rename = "type")]
    pub kind: MountType,
    /// Names the mount's storage prefix, `logical/<uuid>/`, so a mount can be
    /// renamed without moving its data.
    pub uuid: String,
    pub accessor: String,
    pub description: String,
    #[serde(default)]
    pub config: MountConfig,
}

impl MountEntry {
    pub fn storage_prefix(&self) -> String {
        format!("logical/{}/", self.uuid)
    }
}

/// The whole table, stored encrypted at `core/mounts`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct MountTable {
    pub mounts: BTreeMap<String, MountEntry>,
}

impl MountTable {
    /// The mount whose path is the longest prefix of `path`.
    pub fn resolve(&self, path: &str) -> Option<(&MountEntry, String)> {
        let with_slash = format!("{}/", path.trim_end_matches('/'));
        self.mounts
            .values()
            .filter(|m| path.starts_with(&m.path) || with_slash == m.path)
            .max_by_key(|m| m.path.len())
            .map(|m| (m, path.get(m.path.len()..).unwrap_or("").to_string()))
    }
}

/// Paths that belong to the system and can never hold a mount.
pub(crate) const RESERVED: [&str; 5] = ["sys/", "auth/", "cubbyhole/", "identity/", "core/"];

/// Normalises a mount path to `a/b/` and checks it.
pub(crate) fn normalize(path: &str) -> Result<String, String> {
    let normalized = normalize_any(path)?;
    if RESERVED.iter().any(|r| normalized.starts_with(r)) {
        return Err(format!("`{normalized}` is reserved for the system"));
    }
    Ok(normalized)
}

/// Normalises an auth mount's path (under `auth/`, which it does not
/// repeat) to `a/b/`; `token/` is the token store's.
pub(crate) fn normalize_auth(path: &str) -> Result<String, String> {
    let normalized = normalize_any(path)?;
    if normalized == "token/" {
        return Err("`token/` is the token store's, always mounted".into());
    }
    Ok(normalized)
}

fn normalize_any(path: &str) -> Result<String, String> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err("the mount path is empty".into());
    }
    if trimmed
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.chars().any(char::is_control))
    {
        return Err(format!("`{path}` has an empty, `.` or `..` segment"));
    }
    Ok(format!("{trimmed}/"))
}
