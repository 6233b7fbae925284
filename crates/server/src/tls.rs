//! A certificate that can be replaced while the server runs (on SIGHUP).

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("cannot read the TLS key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("the TLS key does not fit the certificate: {0}")]
    Mismatch(String),
}

/// Serves whatever certificate was loaded last.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let current = read(cert_file, key_file)?;
        Ok(Self {
            cert_file: cert_file.into(),
            key_file: key_file.into(),
            current: RwLock::new(current),
        })
    }

    /// Reads the files again; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.cert_file, &self.key_file)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

fn read(cert_file: &Path, key_file: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|iter| iter.collect())
        .map_err(|e| TlsError::Cert {
            path: cert_file.into(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert_file.into(),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| TlsError::Key {
        path: key_file.into(),
        message: e.to_string(),
    })?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let certified = CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(Arc::new(certified))
}
