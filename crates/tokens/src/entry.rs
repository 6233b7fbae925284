//! What is stored about a token, and how the server sees it.

use crate::secret::{Accessor, Token};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where the store gets the time; tests substitute their own.
pub trait Clock: Send + Sync {
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system-wide TTL settings (Vault's `default_lease_ttl` and
/// `max_lease_ttl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The TTL of a token created (or renewed) without one.
    pub default_ttl: Duration,
    /// How long a non-periodic token may live from its creation, renewals
    /// included; also the longest period.
    pub max_ttl: Duration,
}

impl Default for Limits {
    /// Vault's defaults: 32 days each.
    fn default() -> Self {
        let days_32 = Duration::from_secs(32 * 24 * 3600);
        Self {
            default_ttl: days_32,
            max_ttl: days_32,
        }
    }
}

/// The parameters of `auth/token/create`, plus what the server knows about
/// the caller. Zero durations mean "not set".
#[derive(Clone, Debug)]
pub struct CreateRequest {
    /// Empty: the parent's policies.
    pub policies: Vec<String>,
    /// Zero: the system default TTL (no expiry for a `root` policy token).
    pub ttl: Duration,
    /// A hard cap on the token's life, renewals included.
    pub explicit_max_ttl: Duration,
    /// Makes the token periodic: every renewal resets its TTL to this.
    pub period: Duration,
    pub renewable: bool,
    /// Uses before the token revokes itself; 0 is unlimited.
    pub num_uses: u64,
    /// The body's `no_parent`: needs `caller_is_root_or_sudo`.
    pub no_parent: bool,
    /// Set by the server for `auth/token/create-orphan`, which makes an
    /// orphan without needing sudo (as Vault does).
    pub orphan_endpoint: bool,
    /// The path the token is recorded as created at (a login's, a wrapped
    /// request's); `None`: the create endpoint's.
    pub path: Option<String>,
    pub no_default_policy: bool,
    pub meta: BTreeMap<String, String>,
    /// Shown as `token-<name>`; empty: `token`.
    pub display_name: String,
    /// Whether the calling token is root or holds `sudo` on the create path,
    /// as the server's ACL decided. Allows orphans, periods, and policies
    /// outside the parent's (but never `root` from a non-root parent).
    pub caller_is_root_or_sudo: bool,
}

impl Default for CreateRequest {
    fn default() -> Self {
        Self {
            policies: Vec::new(),
            ttl: Duration::ZERO,
            explicit_max_ttl: Duration::ZERO,
            period: Duration::ZERO,
            renewable: true,
            num_uses: 0,
            no_parent: false,
            orphan_endpoint: false,
            path: None,
            no_default_policy: false,
            meta: BTreeMap::new(),
            display_name: String::new(),
            caller_is_root_or_sudo: false,
        }
    }
}

/// The record kept under `sys/token/id/<hash>` (inside the barrier).
/// Times in seconds since the Unix epoch, durations in seconds.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct StoredToken {
    pub accessor: String,
    pub parent: Option<String>,
    pub policies: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub display_name: String,
    pub path: String,
    /// Uses left; 0 is unlimited (a token is revoked at its last use).
    pub num_uses: u64,
    pub creation_time: u64,
    pub creation_ttl: u64,
    pub expire_time: Option<u64>,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub renewable: bool,
}

impl StoredToken {
    pub fn expired(&self, now: u64) -> bool {
        self.expire_time.is_some_and(|e| e <= now)
    }
}

/// A valid token's properties, as read from the store.
#[derive(Clone)]
pub struct TokenEntry {
    pub(crate) hash: String,
    pub(crate) stored: StoredToken,
    pub(crate) last_use: bool,
}

impl TokenEntry {
    pub fn accessor(&self) -> Accessor {
        Accessor::new(self.stored.accessor.clone())
    }

    /// Sorted, without duplicates; `["root"]` for root tokens.
    pub fn policies(&self) -> &[String] {
        &self.stored.policies
    }

    pub fn is_root(&self) -> bool {
        self.stored.policies.iter().any(|p| p == "root")
    }

    pub fn meta(&self) -> &BTreeMap<String, String> {
        &self.stored.meta
    }

    pub fn display_name(&self) -> &str {
        &self.stored.display_name
    }

    /// The API path that created the token.
    pub fn path(&self) -> &str {
        &self.stored.path
    }

    /// Uses left (after the one just consumed, for an entry returned by
    /// `use_token`); 0 is unlimited, unless [`Self::was_last_use`].
    pub fn num_uses(&self) -> u64 {
        self.stored.num_uses
    }

    /// Whether `use_token` consumed this token's last use (and so revoked it).
    pub fn was_last_use(&self) -> bool {
        self.last_use
    }

    pub fn is_orphan(&self) -> bool {
        self.stored.parent.is_none()
    }

    pub fn renewable(&self) -> bool {
        self.stored.renewable
    }

    pub fn period(&self) -> Duration {
        Duration::from_secs(self.stored.period)
    }

    pub fn explicit_max_ttl(&self) -> Duration {
        Duration::from_secs(self.stored.explicit_max_ttl)
    }

    /// The TTL given at creation (zero: never expires).
    pub fn creation_ttl(&self) -> Duration {
        Duration::from_secs(self.stored.creation_ttl)
    }

    pub fn creation_time(&self) -> SystemTime {
        from_unix(self.stored.creation_time)
    }

    /// `None`: never expires.
    pub fn expire_time(&self) -> Option<SystemTime> {
        self.stored.expire_time.map(from_unix)
    }

    /// Time left at `now` (zero for a token that never expires, as Vault
    /// reports it).
    pub fn ttl(&self, now: SystemTime) -> Duration {
        let now = unix(now);
        Duration::from_secs(self.stored.expire_time.map_or(0, |e| e.saturating_sub(now)))
    }

    /// The `data` of Vault's token lookup responses. `id` is the token when
    /// it was looked up by itself, `None` for lookups by accessor.
    pub fn view(&self, now: SystemTime, id: Option<&Token>) -> TokenView {
        let s = &self.stored;
        TokenView {
            accessor: s.accessor.clone(),
            creation_time: s.creation_time,
            creation_ttl: s.creation_ttl,
            display_name: s.display_name.clone(),
            entity_id: "",
            expire_time: s.expire_time.map(rfc3339),
            explicit_max_ttl: s.explicit_max_ttl,
            id: id.map(|t| t.expose().to_owned()).unwrap_or_default(),
            issue_time: rfc3339(s.creation_time),
            meta: (!s.meta.is_empty()).then(|| s.meta.clone()),
            num_uses: s.num_uses,
            orphan: s.parent.is_none(),
            path: s.path.clone(),
            period: (s.period > 0).then_some(s.period),
            policies: s.policies.clone(),
            renewable: s.renewable,
            ttl: self.ttl(now).as_secs(),
            token_type: "service",
        }
    }
}

impl std::fmt::Debug for TokenEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEntry")
            .field("accessor", &"<redacted>")
            .field("policies", &self.stored.policies)
            .field("display_name", &self.stored.display_name)
            .field("orphan", &self.stored.parent.is_none())
            .field("num_uses", &self.stored.num_uses)
            .field("expire_time", &self.stored.expire_time)
            .finish_non_exhaustive()
    }
}

/// Vault's token lookup shape. `id` and `accessor` are secrets: serialize
/// it only into responses, never into logs.
#[derive(Clone, Serialize)]
pub struct TokenView {
    pub accessor: String,
    pub creation_time: u64,
    pub creation_ttl: u64,
    pub display_name: String,
    /// Always empty: tresor has no identity entities.
    pub entity_id: &'static str,
    pub expire_time: Option<String>,
    pub explicit_max_ttl: u64,
    pub id: String,
    pub issue_time: String,
    /// `null` when empty, as Vault writes it.
    pub meta: Option<BTreeMap<String, String>>,
    pub num_uses: u64,
    pub orphan: bool,
    pub path: String,
    /// Shown for periodic tokens only, as Vault does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    pub policies: Vec<String>,
    pub renewable: bool,
    pub ttl: u64,
    #[serde(rename = "type")]
    pub token_type: &'static str,
}

impl std::fmt::Debug for TokenView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenView")
            .field("policies", &self.policies)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

pub(crate) fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn from_unix(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(from_unix(secs)).to_string()
}
