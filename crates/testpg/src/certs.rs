//! A throwaway certificate authority for TLS tests, made with the `openssl`
//! command line (installed by `scripts/setup/postgres.sh`).

use crate::{Error, check, err};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A CA (P-256, valid two days) in a temporary directory, deleted on drop.
pub struct Authority {
    dir: tempfile::TempDir,
    issued: AtomicU32,
}

/// A server certificate and its private key, as PEM files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Authority {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("tresor-ca-")
            .tempdir()
            .map_err(|e| err(format!("cannot create a temporary directory: {e}")))?;
        let authority = Self {
            dir,
            issued: AtomicU32::new(0),
        };
        let mut req = openssl();
        req.args(["req", "-x509", "-new", "-days", "2"])
            .args(new_key(&authority.key()))
            .arg("-out")
            .arg(authority.cert())
            .args(["-subj", &format!("/CN={name}")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
        check(req.output(), "openssl req (CA)")?;
        Ok(authority)
    }

    /// The CA certificate (PEM): what a client trusts, as `sslrootcert`.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("ca.key")
    }

    /// A server certificate for `names`: host names, or IP addresses such as
    /// `127.0.0.1`, all put in its subject alternative names.
    pub fn issue(&self, names: &[&str]) -> Result<Issued, Error> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let dir = self.dir.path().join(format!("issued{n}"));
        fs::create_dir(&dir).map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let issued = Issued {
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        let request = dir.join("server.csr");
        let mut req = openssl();
        req.args(["req", "-new"])
            .args(new_key(&issued.key))
            .arg("-out")
            .arg(&request)
            .args([
                "-subj",
                &format!("/CN={}", names.first().unwrap_or(&"server")),
            ]);
        check(req.output(), "openssl req (server)")?;

        let alt_names: Vec<String> = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{name}"),
                Err(_) => format!("DNS:{name}"),
            })
            .collect();
        let extensions = dir.join("server.ext");
        fs::write(
            &extensions,
            format!(
                "subjectAltName={}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                alt_names.join(",")
            ),
        )
        .map_err(|e| err(format!("cannot write {}: {e}", extensions.display())))?;
        let mut sign = openssl();
        sign.args(["x509", "-req", "-days", "2", "-set_serial", &n.to_string()])
            .arg("-in")
            .arg(&request)
            .arg("-CA")
            .arg(self.cert())
            .arg("-CAkey")
            .arg(self.key())
            .arg("-extfile")
            .arg(&extensions)
            .arg("-out")
            .arg(&issued.cert);
        check(sign.output(), "openssl x509 (sign)")?;
        Ok(issued)
    }
}

fn openssl() -> Command {
    Command::new("openssl")
}

/// Arguments that make `openssl req` write a new unencrypted P-256 key.
fn new_key(path: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "-newkey".into(),
        "ec".into(),
        "-pkeyopt".into(),
        "ec_paramgen_curve:P-256".into(),
        "-nodes".into(),
        "-keyout".into(),
        path.into(),
    ]
}
