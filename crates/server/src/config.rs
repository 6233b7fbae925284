//! `tresor.toml`: what `tresor server --config` reads.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use zeroize::Zeroizing;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub listener: ListenerConfig,
    pub storage: StorageConfig,
    #[serde(default)]
    pub seal: SealConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    /// Scheduled rotation of a platform spec's secrets; none: off.
    pub rotation: Option<crate::rotation::RotationConfig>,
    /// Scheduled snapshots of the store; none: off.
    pub snapshot: Option<SnapshotConfig>,
}

/// `[snapshot]`: save a snapshot of the store's ciphertext this often into
/// `dir`, keeping the newest `keep`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    #[serde(with = "humantime_serde_like")]
    pub every: Duration,
    #[serde(default = "default_snapshots_kept")]
    pub keep: usize,
    pub dir: PathBuf,
}

fn default_snapshots_kept() -> usize {
    24
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    #[serde(default = "default_address")]
    pub address: SocketAddr,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// Plain HTTP; refused unless the address is loopback.
    #[serde(default)]
    pub tls_disable: bool,
    /// To send a request's head (line and headers), counted from when the
    /// server waits for it; an idle keep-alive connection is closed after it.
    #[serde(default = "default_header_timeout", with = "humantime_serde_like")]
    pub header_timeout: Duration,
    /// To send a request's body.
    #[serde(default = "default_body_timeout", with = "humantime_serde_like")]
    pub body_timeout: Duration,
    /// To finish the TLS handshake.
    #[serde(default = "default_handshake_timeout", with = "humantime_serde_like")]
    pub tls_handshake_timeout: Duration,
    /// With no byte moving either way (an HTTP/2 connection left open, a
    /// client that stopped reading its answer), the connection is closed.
    #[serde(default = "default_idle_timeout", with = "humantime_serde_like")]
    pub idle_timeout: Duration,
    /// On SIGTERM, how long requests in flight may take to finish before
    /// the server stops anyway.
    #[serde(default = "default_shutdown_grace", with = "humantime_serde_like")]
    pub shutdown_grace: Duration,
    /// Connections served at once; more wait in the kernel's queue.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: default_address(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_disable: false,
            header_timeout: default_header_timeout(),
            body_timeout: default_body_timeout(),
            tls_handshake_timeout: default_handshake_timeout(),
            idle_timeout: default_idle_timeout(),
            shutdown_grace: default_shutdown_grace(),
            max_connections: default_max_connections(),
        }
    }
}

impl ListenerConfig {
    /// The limits on clients this section sets.
    pub fn timeouts(&self) -> crate::Timeouts {
        crate::Timeouts {
            header: self.header_timeout,
            body: self.body_timeout,
            tls_handshake: self.tls_handshake_timeout,
            idle: self.idle_timeout,
            shutdown_grace: self.shutdown_grace,
        }
    }
}

fn default_header_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_body_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(90)
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    1024
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8200))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default)]
    pub kind: StorageKind,
    /// The embedded store's directory.
    pub path: Option<PathBuf>,
    /// The PostgreSQL URL itself (it holds the password: prefer `url_file`
    /// or `url_env`).
    pub url: Option<Redacted>,
    /// A file holding the PostgreSQL URL (for example a mounted Kubernetes
    /// Secret); surrounding whitespace is ignored.
    pub url_file: Option<PathBuf>,
    /// An environment variable holding the PostgreSQL URL.
    pub url_env: Option<String>,
    /// Connections each server keeps to PostgreSQL.
    pub pool_size: Option<usize>,
    /// How long opening one PostgreSQL connection may take.
    #[serde(default, with = "humantime_serde_like::option")]
    pub connect_timeout: Option<Duration>,
    /// How long one storage call may take before the request fails with 503.
    #[serde(default, with = "humantime_serde_like::option")]
    pub timeout: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// One file on local disk, for one server.
    #[default]
    Embedded,
    /// A PostgreSQL database, shared by any number of servers.
    Postgres,
}

/// A configuration value that is a secret: never printed.
pub struct Redacted(Zeroizing<String>);

impl<'de> Deserialize<'de> for Redacted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| Self(Zeroizing::new(s)))
    }
}

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

/// Where the store lives, resolved from `[storage]`.
pub enum Storage {
    Embedded(PathBuf),
    Postgres {
        url: Zeroizing<String>,
        pool_size: Option<usize>,
        connect_timeout: Option<Duration>,
        timeout: Option<Duration>,
    },
}

impl StorageConfig {
    /// The store this section names, reading the PostgreSQL URL from the
    /// file or environment variable it points to.
    pub fn resolve(&self) -> Result<Storage, ConfigError> {
        match self.kind {
            StorageKind::Embedded => {
                let path = self.path.clone().ok_or(ConfigError::Storage(
                    "an embedded store needs `path`, its directory",
                ))?;
                if self.url.is_some() || self.url_file.is_some() || self.url_env.is_some() {
                    return Err(ConfigError::Storage(
                        "`url`, `url_file` and `url_env` are for kind = \"postgres\"",
                    ));
                }
                Ok(Storage::Embedded(path))
            }
            StorageKind::Postgres => Ok(Storage::Postgres {
                url: self.postgres_url()?,
                pool_size: self.pool_size,
                connect_timeout: self.connect_timeout,
                timeout: self.timeout,
            }),
        }
    }

    fn postgres_url(&self) -> Result<Zeroizing<String>, ConfigError> {
        let url = match (&self.url, &self.url_file, &self.url_env) {
            (Some(url), None, None) => url.0.clone(),
            (None, Some(file), None) => Zeroizing::new(
                std::fs::read_to_string(file)
                    .map_err(|source| ConfigError::Read {
                        path: file.clone(),
                        source,
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None, Some(name)) => Zeroizing::new(
                std::env::var(name)
                    .map_err(|_| ConfigError::UrlEnv(name.clone()))?
                    .trim()
                    .to_owned(),
            ),
            _ => {
                return Err(ConfigError::Storage(
                    "kind = \"postgres\" needs exactly one of `url`, `url_file` or `url_env`",
                ));
            }
        };
        if self.path.is_some() {
            return Err(ConfigError::Storage(
                "`path` is for the embedded store; a PostgreSQL store lives at its `url`",
            ));
        }
        Ok(url)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealConfig {
    /// Unseal automatically with this key file (the store's key-file seal).
    pub key_file: Option<PathBuf>,
    /// `awskms`: a store this server initializes is sealed by an AWS KMS
    /// key (and every KMS-sealed store unseals by itself at start).
    pub kind: Option<SealType>,
    /// The KMS key (id, ARN or alias) of `kind = "awskms"`.
    pub key_id: Option<String>,
    pub region: Option<String>,
    /// A KMS endpoint other than AWS's (a VPC endpoint; a local KMS in tests).
    pub endpoint: Option<String>,
}

/// The auto-unseal seals `[seal] kind` may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealType {
    Awskms,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Failed authentications a client may make per window before it gets 429.
    #[serde(default = "default_failed_auth_burst")]
    pub failed_auth_burst: u32,
    #[serde(default = "default_failed_auth_window", with = "humantime_serde_like")]
    pub failed_auth_window: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: default_max_request_bytes(),
            failed_auth_burst: default_failed_auth_burst(),
            failed_auth_window: default_failed_auth_window(),
        }
    }
}

fn default_max_request_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_failed_auth_burst() -> u32 {
    20
}

fn default_failed_auth_window() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// How long a request may wait for the audit log before failing.
    #[serde(default = "default_audit_timeout", with = "humantime_serde_like")]
    pub write_timeout: Duration,
    /// fsync every batch of entries before answering. Off by default, as in
    /// Vault: entries reach the kernel before the request proceeds, and only
    /// a machine crash can lose the last ones.
    #[serde(default)]
    pub fsync: bool,
    /// How often the position of each audit chain is saved in the store,
    /// where `tresor audit verify --checkpoint` finds it.
    #[serde(default = "default_checkpoint_interval", with = "humantime_serde_like")]
    pub checkpoint_interval: Duration,
    /// The devices, opened when the store is unsealed: the server is
    /// audited from its first request.
    #[serde(default, rename = "device")]
    pub devices: Vec<AuditDevice>,
    /// Devices may also be enabled through the API (`sys/audit/<path>`),
    /// writing only under this directory; unset: they may not.
    pub api_device_dir: Option<PathBuf>,
}

/// `[[audit.device]]`: a file audit device.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditDevice {
    /// Its name under `sys/audit/` (default `file`).
    #[serde(default = "default_device_path")]
    pub path: String,
    pub file_path: PathBuf,
    #[serde(default)]
    pub description: String,
}

fn default_device_path() -> String {
    "file".into()
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            write_timeout: default_audit_timeout(),
            fsync: false,
            checkpoint_interval: default_checkpoint_interval(),
            devices: Vec::new(),
            api_device_dir: None,
        }
    }
}

fn default_checkpoint_interval() -> Duration {
    crate::serve::AUDIT_CHECKPOINT_INTERVAL
}

fn default_audit_timeout() -> Duration {
    Duration::from_secs(2)
}

mod humantime_serde_like {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        tresor_kv::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use serde::Deserializer;
        use std::time::Duration;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            super::deserialize(d).map(Some)
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "the listener has no TLS certificate: set tls_cert_file and tls_key_file, or tls_disable = true on a loopback address"
    )]
    NoTls,
    #[error("plain HTTP is only allowed on a loopback address ({0} is not); configure TLS")]
    PlainHttpOffLoopback(SocketAddr),
    #[error("[storage]: {0}")]
    Storage(&'static str),
    #[error("[audit] checkpoint_interval must be longer than zero (for example \"5s\")")]
    CheckpointInterval,
    #[error(
        "[seal] kind = \"awskms\" needs `key_id` and `region`, the KMS key that seals the store"
    )]
    KmsSeal,
    #[error("[seal] `key_id`, `region` and `endpoint` are for kind = \"awskms\"")]
    KmsWithoutKind,
    #[error("[[audit.device]]: {0}")]
    AuditDevice(String),
    #[error("[snapshot] {0}")]
    Snapshot(String),
    #[error("[listener] {0} must be longer than zero")]
    ZeroTimeout(&'static str),
    #[error("[listener] max_connections must be at least 1")]
    NoConnections,
    #[error(
        "[storage] url_env names {0}, which is not set (or not UTF-8); export it with the PostgreSQL URL"
    )]
    UrlEnv(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.storage.kind == StorageKind::Embedded {
            self.storage.resolve()?;
        }
        let l = &self.listener;
        if l.tls_disable {
            if !l.address.ip().is_loopback() {
                return Err(ConfigError::PlainHttpOffLoopback(l.address));
            }
        } else if l.tls_cert_file.is_none() || l.tls_key_file.is_none() {
            return Err(ConfigError::NoTls);
        }
        if self.audit.checkpoint_interval.is_zero() {
            return Err(ConfigError::CheckpointInterval);
        }
        self.check_audit_devices()?;
        let seal = &self.seal;
        match seal.kind {
            Some(SealType::Awskms) if seal.key_id.is_none() || seal.region.is_none() => {
                return Err(ConfigError::KmsSeal);
            }
            None if seal.key_id.is_some() || seal.region.is_some() || seal.endpoint.is_some() => {
                return Err(ConfigError::KmsWithoutKind);
            }
            _ => {}
        }
        for (name, value) in [
            ("header_timeout", l.header_timeout),
            ("body_timeout", l.body_timeout),
            ("tls_handshake_timeout", l.tls_handshake_timeout),
            ("idle_timeout", l.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        if l.max_connections == 0 {
            return Err(ConfigError::NoConnections);
        }
        if let Some(snapshot) = &self.snapshot {
            if snapshot.every.is_zero() || snapshot.keep == 0 {
                return Err(ConfigError::Snapshot(
                    "`every` must be longer than zero and `keep` at least 1".into(),
                ));
            }
            if !snapshot.dir.is_absolute() {
                return Err(ConfigError::Snapshot(format!(
                    "`dir` must be an absolute path, not {}",
                    snapshot.dir.display()
                )));
            }
        }
        Ok(())
    }

    fn check_audit_devices(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::BTreeSet::new();
        for device in &self.audit.devices {
            let path = &device.path;
            if path.is_empty() || path.contains('/') || path.trim() != path {
                return Err(ConfigError::AuditDevice(format!(
                    "path `{path}` must be one name, such as \"file\""
                )));
            }
            if !seen.insert(path.as_str()) {
                return Err(ConfigError::AuditDevice(format!(
                    "two devices are named `{path}`"
                )));
            }
            if !device.file_path.is_absolute() {
                return Err(ConfigError::AuditDevice(format!(
                    "file_path of `{path}` must be an absolute path, not {}",
                    device.file_path.display()
                )));
            }
        }
        if let Some(dir) = &self.audit.api_device_dir
            && !dir.is_absolute()
        {
            return Err(ConfigError::AuditDevice(format!(
                "[audit] api_device_dir must be an absolute path, not {}",
                dir.display()
            )));
        }
        Ok(())
    }

    /// The audit broker's settings from `[audit]`.
    pub fn broker(&self) -> tresor_audit::BrokerConfig {
        let mut broker =
            tresor_audit::BrokerConfig::new(self.audit.write_timeout, self.audit.fsync);
        broker.checkpoint_interval = self.audit.checkpoint_interval;
        broker.api_dir.clone_from(&self.audit.api_device_dir);
        broker.declared = self
            .audit
            .devices
            .iter()
            .map(|d| tresor_audit::DeclaredDevice {
                path: d.path.clone(),
                file_path: d.file_path.clone(),
                description: d.description.clone(),
            })
            .collect();
        broker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: "t".into(),
            message: e.to_string(),
        })?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let ok = "[storage]\npath='/s'\n[listener]\ntls_disable=true\n";
        assert_eq!(parse(ok).unwrap().listener.address.port(), 8200);
        let off = "[storage]\npath='/s'\n[listener]\naddress='0.0.0.0:8200'\ntls_disable=true\n";
        assert!(matches!(
            parse(off),
            Err(ConfigError::PlainHttpOffLoopback(_))
        ));
        assert!(matches!(
            parse("[storage]\npath='/s'\n"),
            Err(ConfigError::NoTls)
        ));
        assert!(parse("[storage]\npath='/s'\nbogus=1\n").is_err());
        let limits = "[storage]\npath='/s'\n[listener]\ntls_disable=true\n[limits]\nfailed_auth_window='30s'\n";
        assert_eq!(
            parse(limits).unwrap().limits.failed_auth_window,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn audit_devices_are_declared_and_api_devices_confined() {
        let base = "[storage]\npath='/s'\n[listener]\ntls_disable=true\n";
        let config = parse(&format!(
            "{base}[audit]\napi_device_dir='/var/log/tresor'\n[[audit.device]]\nfile_path='/var/log/tresor/audit.log'\n"
        ))
        .unwrap();
        let broker = config.broker();
        assert_eq!(broker.declared.len(), 1);
        assert_eq!(broker.declared[0].path, "file");
        assert_eq!(
            broker.api_dir.as_deref(),
            Some(Path::new("/var/log/tresor"))
        );
        assert!(
            parse(base).unwrap().broker().api_dir.is_none(),
            "off by default"
        );
        for bad in [
            "[[audit.device]]\nfile_path='relative.log'\n",
            "[[audit.device]]\npath='a/b'\nfile_path='/x'\n",
            "[[audit.device]]\nfile_path='/x'\n[[audit.device]]\nfile_path='/y'\n",
            "[audit]\napi_device_dir='logs'\n",
            "[[audit.device]]\nfile_path='/x'\nprefix='#!/bin/sh'\n",
        ] {
            assert!(parse(&format!("{base}{bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn snapshots_are_scheduled_into_an_absolute_dir() {
        let base = "[storage]\npath='/s'\n[listener]\ntls_disable=true\n";
        assert!(parse(base).unwrap().snapshot.is_none(), "off by default");
        let config = parse(&format!("{base}[snapshot]\nevery='1h'\ndir='/backups'\n")).unwrap();
        let snapshot = config.snapshot.unwrap();
        assert_eq!(snapshot.every, Duration::from_secs(3600));
        assert_eq!(snapshot.keep, 24);
        for bad in [
            "[snapshot]\nevery='0s'\ndir='/b'\n",
            "[snapshot]\nevery='1h'\nkeep=0\ndir='/b'\n",
            "[snapshot]\nevery='1h'\ndir='backups'\n",
            "[snapshot]\ndir='/b'\n",
            "[snapshot]\nevery='soon'\ndir='/b'\n",
        ] {
            assert!(parse(&format!("{base}{bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn listener_timeouts_have_defaults_and_are_never_zero() {
        let base = "[storage]\npath='/s'\n[listener]\ntls_disable=true\n";
        let config = parse(base).unwrap();
        assert_eq!(config.listener.header_timeout, Duration::from_secs(10));
        assert_eq!(config.listener.max_connections, 1024);
        let tuned = parse(&format!("{base}header_timeout='2s'\nmax_connections=8\n")).unwrap();
        assert_eq!(tuned.listener.header_timeout, Duration::from_secs(2));
        assert_eq!(tuned.listener.max_connections, 8);
        assert!(parse(&format!("{base}body_timeout='0s'\n")).is_err());
        assert!(parse(&format!("{base}max_connections=0\n")).is_err());
    }

    #[test]
    fn audit_checkpoints_are_saved_every_few_seconds_never_every_zero() {
        let base = "[storage]\npath='/s'\n[listener]\ntls_disable=true\n";
        assert_eq!(
            parse(base).unwrap().audit.checkpoint_interval,
            Duration::from_secs(5)
        );
        let every = format!("{base}[audit]\ncheckpoint_interval='1s'\n");
        assert_eq!(
            parse(&every).unwrap().audit.checkpoint_interval,
            Duration::from_secs(1)
        );
        let zero = format!("{base}[audit]\ncheckpoint_interval='0s'\n");
        assert!(matches!(parse(&zero), Err(ConfigError::CheckpointInterval)));
    }

    #[test]
    fn postgres_url_from_one_place_and_never_printed() {
        let listener = "[listener]\ntls_disable=true\n";
        let inline = format!(
            "[storage]\nkind='postgres'\nurl='postgres://u:hunter2@h/d'\ntimeout='3s'\n{listener}"
        );
        let config = parse(&inline).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
        let Storage::Postgres { url, timeout, .. } = config.storage.resolve().unwrap() else {
            panic!("not postgres");
        };
        assert_eq!(url.as_str(), "postgres://u:hunter2@h/d");
        assert_eq!(timeout, Some(Duration::from_secs(3)));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        std::fs::write(&file, "postgres://u:p@h/from-file\n").unwrap();
        let from_file = format!(
            "[storage]\nkind='postgres'\nurl_file='{}'\n{listener}",
            file.display()
        );
        let Storage::Postgres { url, .. } = parse(&from_file).unwrap().storage.resolve().unwrap()
        else {
            panic!("not postgres");
        };
        assert_eq!(url.as_str(), "postgres://u:p@h/from-file");

        for bad in [
            "[storage]\nkind='postgres'\n",
            "[storage]\nkind='postgres'\nurl='x'\nurl_env='Y'\n",
            "[storage]\nkind='postgres'\nurl='x'\npath='/s'\n",
            "[storage]\nkind='postgres'\nurl_env='TRESOR_TEST_SURELY_UNSET'\n",
        ] {
            let config = parse(&format!("{bad}{listener}")).unwrap();
            assert!(config.storage.resolve().is_err(), "{bad}");
        }
        assert!(parse(&format!("[storage]\nurl='x'\npath='/s'\n{listener}")).is_err());
        assert!(parse(&format!("[storage]\nkind='mysql'\n{listener}")).is_err());
    }
}
