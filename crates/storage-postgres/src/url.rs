//! Connection URLs: what tokio-postgres understands, plus libpq's
//! `sslmode=verify-full` and `sslrootcert`, which it does not.

use std::path::PathBuf;
use std::str::FromStr;
use tokio_postgres::config::{Host, SslMode};

/// How the connection is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tls {
    /// `disable`: plain TCP.
    Disable,
    /// `prefer` / `require`: encrypted (required or not), certificate not
    /// checked, as libpq does for these modes.
    Unverified { required: bool },
    /// `verify-full`: the chain is checked against `roots` (or the system's
    /// roots) and the certificate must name the host.
    VerifyFull { roots: Option<PathBuf> },
}

/// A parsed URL: the driver's config, the TLS mode, and a description of
/// the database without any secret, for messages.
pub(crate) struct Database {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
    pub name: String,
}

/// Why a URL was refused. Never contains the URL itself (it may hold a
/// password).
#[derive(Debug, thiserror::Error)]
#[error("the PostgreSQL URL is not valid: {0}")]
pub(crate) struct UrlError(String);

pub(crate) fn parse(url: &str) -> Result<Database, UrlError> {
    let Some((base, query)) = split_url(url)? else {
        return finish(url, None, None);
    };
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut sslrootcert = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "sslmode" => sslmode = Some(decode(value)?),
            "sslrootcert" => sslrootcert = Some(PathBuf::from(decode(value)?)),
            _ => kept.push(pair),
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    finish(&rebuilt, sslmode.as_deref(), sslrootcert)
}

/// The URL before and after its `?`, or `None` when it has no query.
fn split_url(url: &str) -> Result<Option<(&str, &str)>, UrlError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(UrlError(
            "it must start with postgres:// (for example postgres://tresor@db.example:5432/tresor?sslmode=verify-full)".into(),
        ));
    }
    Ok(url.split_once('?'))
}

fn finish(url: &str, sslmode: Option<&str>, roots: Option<PathBuf>) -> Result<Database, UrlError> {
    let mut config = tokio_postgres::Config::from_str(url).map_err(|e| UrlError(e.to_string()))?;
    let tls = match (sslmode.unwrap_or("prefer"), roots) {
        ("disable", None) => Tls::Disable,
        ("prefer", None) => Tls::Unverified { required: false },
        ("require", None) => Tls::Unverified { required: true },
        ("verify-full", roots) => Tls::VerifyFull { roots },
        ("verify-ca", _) => {
            return Err(UrlError(
                "sslmode=verify-ca is not supported; use verify-full, which also checks the host name".into(),
            ));
        }
        (mode @ ("disable" | "prefer" | "require"), Some(_)) => {
            return Err(UrlError(format!(
                "sslrootcert is only used with sslmode=verify-full (not {mode}); set sslmode=verify-full"
            )));
        }
        (other, _) => {
            return Err(UrlError(format!(
                "unknown sslmode `{other}`; use disable, prefer, require or verify-full"
            )));
        }
    };
    config.ssl_mode(match tls {
        Tls::Disable => SslMode::Disable,
        Tls::Unverified { required: false } => SslMode::Prefer,
        Tls::Unverified { required: true } | Tls::VerifyFull { .. } => SslMode::Require,
    });
    if config.get_dbname().is_none() {
        return Err(UrlError(
            "it names no database; add one after the host, as postgres://host/tresor".into(),
        ));
    }
    let name = describe(&config);
    Ok(Database { config, tls, name })
}

/// `user@host:port/db`, without the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    format!(
        "{}@{}/{}",
        config.get_user().unwrap_or("(default user)"),
        hosts.join(","),
        config.get_dbname().unwrap_or_default()
    )
}

/// Percent-decoding of one query value.
fn decode(value: &str) -> Result<String, UrlError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UrlError("a query value has a bad %-escape".into()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError("a query value is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssl_modes_and_names() {
        let t = parse("postgres://tresor:s3cret@db.example:6543/vault?sslmode=disable").unwrap();
        assert_eq!(t.tls, Tls::Disable);
        assert_eq!(t.name, "tresor@db.example:6543/vault");
        let t = parse("postgresql://u:p@h/d?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem")
            .unwrap();
        assert_eq!(
            t.tls,
            Tls::VerifyFull {
                roots: Some("/etc/ca.pem".into())
            }
        );
        assert_eq!(t.config.get_application_name(), Some("x"));
        assert_eq!(
            parse("postgres://h/d").unwrap().tls,
            Tls::Unverified { required: false }
        );
        assert_eq!(
            parse("postgres://h/d?sslmode=require").unwrap().tls,
            Tls::Unverified { required: true }
        );
    }

    #[test]
    fn refusals_never_echo_the_password() {
        for bad in [
            "mysql://u:hunter2@h/d",
            "postgres://u:hunter2@h/d?sslmode=verify-ca",
            "postgres://u:hunter2@h/d?sslmode=bogus",
            "postgres://u:hunter2@h/d?sslmode=require&sslrootcert=/x",
            "postgres://u:hunter2@h:notaport/d",
            "postgres://u:hunter2@h",
        ] {
            let err = parse(bad).err().unwrap().to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.starts_with("the PostgreSQL URL is not valid"), "{err}");
        }
    }
}
