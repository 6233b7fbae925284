//! Where the key lives: a [`KeyService`] wraps and unwraps the API server's
//! data keys. [`LocalTransit`] uses a transit key of an embedded store; a
//! service calling a tresor server's `transit/encrypt/:name` fits the same
//! trait.

use std::path::PathBuf;
use std::time::{Duration, Instant};
use tresor_core::{Access, CoreError, Unseal};
use tresor_transit::{TransitEngine, TransitError};
use zeroize::Zeroizing;

/// A data key wrapped by the service: what the API server stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wrapped {
    pub ciphertext: Vec<u8>,
    /// Names the key version that wrapped it (KMS v2's `key_id`).
    pub key_id: String,
}

/// Why the service could not answer; each maps to a gRPC status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The key cannot be reached now (sealed store, store busy, server
    /// down): the API server refuses writes and tries again; nothing is lost.
    #[error("{0}")]
    Unavailable(String),
    /// The key is not there or not usable as configured.
    #[error("{0}")]
    Misconfigured(String),
    /// The ciphertext given does not decrypt with this key.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

/// Wraps and unwraps data keys. Calls block; the plugin runs them off its
/// I/O threads, each within its timeout.
pub trait KeyService: Send + Sync + 'static {
    fn encrypt(&self, plaintext: &[u8]) -> Result<Wrapped, ServiceError>;
    fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ServiceError>;
    /// The key id new ciphertext gets, which also proves the key is usable.
    fn key_id(&self) -> Result<String, ServiceError>;
    /// Which key this is, for logs and messages (no secret).
    fn describe(&self) -> String;
}

/// A transit key in an embedded store. The store is opened read-only for
/// each call and closed again, so other tresor commands (rotating the key)
/// can write it in between, and a rotation is used at once.
pub struct LocalTransit {
    dir: PathBuf,
    key_file: Option<PathBuf>,
    shares: Vec<tresor_barrier::seal::Share>,
    kms: Option<tresor_core::KmsConnector>,
    mount: String,
    key: String,
    /// How long a call waits for a store another process is writing.
    lock_wait: Duration,
}

impl LocalTransit {
    pub fn new(dir: PathBuf, unseal: Unseal, mount: &str, key: &str, lock_wait: Duration) -> Self {
        Self {
            dir,
            key_file: unseal.key_file,
            shares: unseal.shares,
            kms: unseal.kms,
            mount: mount.trim_matches('/').to_owned(),
            key: key.to_owned(),
            lock_wait,
        }
    }

    fn with_engine<T>(
        &self,
        work: impl Fn(&TransitEngine) -> Result<T, TransitError>,
    ) -> Result<T, ServiceError> {
        let started = Instant::now();
        loop {
            let unseal = Unseal {
                key_file: self.key_file.clone(),
                shares: self.shares.clone(),
                kms: self.kms.clone(),
            };
            let opened = tresor_core::open(&self.dir, &unseal, Access::ReadOnly)
                .and_then(|store| store.transit(&self.mount));
            match opened {
                Ok(engine) => return work(&engine).map_err(|e| self.transit_error(e)),
                Err(CoreError::Storage(tresor_storage::StorageError::Locked { .. }))
                    if started.elapsed() < self.lock_wait =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.core_error(e)),
            }
        }
    }

    fn core_error(&self, error: CoreError) -> ServiceError {
        let why = error.to_string();
        match error {
            CoreError::Storage(_)
            | CoreError::NeedShares { .. }
            | CoreError::NoKeyFile { .. }
            | CoreError::NeedKms { .. }
            | CoreError::Barrier(_) => ServiceError::Unavailable(format!(
                "tresor store {} cannot be opened (sealed or unavailable): {why}",
                self.dir.display()
            )),
            CoreError::NoMount(_) | CoreError::WrongEngine { .. } => {
                ServiceError::Misconfigured(format!(
                    "no transit mount at {}/ in {}: {why}",
                    self.mount,
                    self.dir.display()
                ))
            }
            CoreError::Transit(e) => self.transit_error(e),
            _ => ServiceError::Internal(why),
        }
    }

    fn transit_error(&self, error: TransitError) -> ServiceError {
        match error {
            TransitError::KeyNotFound(_) => ServiceError::Misconfigured(format!(
                "no transit key `{}` in {}/; create it with `tresor transit create {} --mount {}`",
                self.key, self.mount, self.key, self.mount
            )),
            TransitError::Barrier(e) => {
                ServiceError::Unavailable(format!("tresor store {}: {e}", self.dir.display()))
            }
            e if e.is_client_error() => ServiceError::Invalid(e.to_string()),
            e => ServiceError::Internal(e.to_string()),
        }
    }

    fn key_id_of(&self, version: u32) -> String {
        format!("{}/keys/{}:v{version}", self.mount, self.key)
    }
}

impl KeyService for LocalTransit {
    fn encrypt(&self, plaintext: &[u8]) -> Result<Wrapped, ServiceError> {
        let (ciphertext, version) =
            self.with_engine(|engine| engine.encrypt_bytes(&self.key, plaintext, None))?;
        Ok(Wrapped {
            ciphertext: ciphertext.into_bytes(),
            key_id: self.key_id_of(version),
        })
    }

    fn decrypt(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
        let text = std::str::from_utf8(ciphertext).map_err(|_| {
            ServiceError::Invalid("the ciphertext is not a tresor transit ciphertext".into())
        })?;
        self.with_engine(|engine| engine.decrypt_bytes(&self.key, text, None))
    }

    fn key_id(&self) -> Result<String, ServiceError> {
        let info = self.with_engine(|engine| engine.read_key(&self.key))?;
        let info =
            info.ok_or_else(|| self.transit_error(TransitError::KeyNotFound(self.key.clone())))?;
        Ok(self.key_id_of(info.latest_version))
    }

    fn describe(&self) -> String {
        format!(
            "transit key `{}` at {}/ of the store {}",
            self.key,
            self.mount,
            self.dir.display()
        )
    }
}
