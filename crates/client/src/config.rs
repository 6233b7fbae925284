//! Where the server is and which token to send, found the way the vault CLI
//! finds them: environment first, then the token file `tresor login` wrote.

use crate::Error;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// How to reach a server.
pub struct Config {
    /// `http(s)://host:port`, without a trailing slash.
    pub address: String,
    pub token: Option<Zeroizing<String>>,
    /// A PEM file of CA certificates to trust instead of the system's.
    pub ca_cert: Option<PathBuf>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

impl Config {
    /// The configuration from the environment, when a server is named: by
    /// `address` (a command-line flag), `TRESOR_ADDR` or `VAULT_ADDR`.
    /// `None` when none is set.
    pub fn from_env(address: Option<&str>) -> Result<Option<Self>, Error> {
        let Some(address) = address
            .map(str::to_string)
            .or_else(|| non_empty_var("TRESOR_ADDR"))
            .or_else(|| non_empty_var("VAULT_ADDR"))
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            address: address.trim_end_matches('/').to_string(),
            token: token_from_env()?,
            ca_cert: non_empty_var("TRESOR_CACERT")
                .or_else(|| non_empty_var("VAULT_CACERT"))
                .map(PathBuf::from),
        }))
    }
}

fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `TRESOR_TOKEN`, `VAULT_TOKEN`, the file `tresor login` writes, then
/// `~/.vault-token` (the vault CLI's).
fn token_from_env() -> Result<Option<Zeroizing<String>>, Error> {
    for name in ["TRESOR_TOKEN", "VAULT_TOKEN"] {
        if let Ok(value) = std::env::var(name) {
            let value = Zeroizing::new(value);
            if !value.trim().is_empty() {
                return Ok(Some(Zeroizing::new(value.trim().to_string())));
            }
        }
    }
    let files = [
        token_file().ok(),
        std::env::var_os("HOME").map(|h| Path::new(&h).join(".vault-token")),
    ];
    for file in files.into_iter().flatten() {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                if !text.trim().is_empty() {
                    return Ok(Some(Zeroizing::new(text.trim().to_string())));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::Config(format!(
                    "cannot read the token file {}: {e}",
                    file.display()
                )));
            }
        }
    }
    Ok(None)
}

/// Where `tresor login` keeps the token: `$XDG_CONFIG_HOME/tresor/token`,
/// else `~/.config/tresor/token`.
pub fn token_file() -> Result<PathBuf, Error> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
        .ok_or_else(|| {
            Error::Config("neither XDG_CONFIG_HOME nor HOME is set; set TRESOR_TOKEN".into())
        })?;
    Ok(config_home.join("tresor").join("token"))
}

/// Writes `token` to [`token_file`], readable by its owner only (the
/// directory too), replacing any earlier one atomically.
pub fn save_token(token: &str) -> Result<PathBuf, Error> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = token_file()?;
    let dir = path.parent().expect("the token file is in a directory");
    let failed = |e: std::io::Error, what: &Path| {
        Error::Config(format!(
            "cannot write the token file {}: {e}",
            what.display()
        ))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| failed(e, dir))?;
    let staging = dir.join(".token.new");
    let _ = std::fs::remove_file(&staging);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .map_err(|e| failed(e, &staging))?;
    file.write_all(token.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| failed(e, &staging))?;
    std::fs::rename(&staging, &path).map_err(|e| failed(e, &path))?;
    Ok(path)
}
