//! `tresor.toml`: what `tresor server --config` reads.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            address: default_address(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_disable: false,
        }
    }
}

fn default_address() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8200))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The embedded store's directory.
    pub path: PathBuf,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealConfig {
    /// Unseal automatically with this key file (the store's key-file seal).
    pub key_file: Option<PathBuf>,
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
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            write_timeout: default_audit_timeout(),
            fsync: false,
        }
    }
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
        let l = &self.listener;
        if l.tls_disable {
            if !l.address.ip().is_loopback() {
                return Err(ConfigError::PlainHttpOffLoopback(l.address));
            }
        } else if l.tls_cert_file.is_none() || l.tls_key_file.is_none() {
            return Err(ConfigError::NoTls);
        }
        Ok(())
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
}
