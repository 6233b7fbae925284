use crate::CoreError;
use crate::mounts::{MountTable, MountType};
use crate::on_demand::WriteOnDemand;
use crate::store::{MOUNTS_KEY, Store, new_entry, table_bytes};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tresor_barrier::seal::Share;
use tresor_barrier::{Barrier, Kms, KmsSeal, SealConfig, SealKind, UnsealKey};
use tresor_storage::{Backend, Embedded, Locking};

/// How a store is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The file is never modified; writes are refused.
    ReadOnly,
    /// Read-only until the first write, which opens the file for writing:
    /// a command that writes nothing leaves the file untouched.
    WriteOnDemand,
    /// Open for writing at once, holding the store for this process.
    ReadWrite,
}

/// What the caller has to unseal a store with.
#[derive(Default)]
pub struct Unseal {
    /// A key file given explicitly; otherwise the one recorded at init.
    pub key_file: Option<PathBuf>,
    /// Shamir shares, for stores sealed that way (or a KMS-sealed store's
    /// recovery shares).
    pub shares: Vec<Share>,
    /// Makes the client of the KMS a store's seal record names, when it
    /// names one.
    pub kms: Option<KmsConnector>,
}

/// Makes a KMS client from a seal record (with the caller's overrides).
pub type KmsConnector =
    Arc<dyn Fn(&KmsSeal) -> Result<Arc<dyn Kms>, tresor_barrier::BarrierError> + Send + Sync>;

/// How `init` (or `migrate_seal`) seals a store.
pub enum InitOptions {
    Shamir {
        shares: u8,
        threshold: u8,
    },
    /// A key file at this path, or at [`default_key_file`].
    KeyFile(Option<PathBuf>),
    /// Wrapped by a KMS (auto-unseal), with recovery shares that open the
    /// store when the KMS cannot.
    Kms {
        kms: Arc<dyn Kms>,
        recovery_shares: u8,
        recovery_threshold: u8,
    },
}

/// What `init` hands back: the only copy of the unseal material.
pub struct InitOutput {
    pub config: SealConfig,
    pub shares: Vec<Share>,
    pub key_file: Option<PathBuf>,
}

/// Creates an embedded store in `dir`, with KV version 2 at `secret/`.
pub fn init(dir: &Path, options: InitOptions) -> Result<InitOutput, CoreError> {
    if Embedded::exists(dir) {
        return Err(CoreError::AlreadyExists(dir.display().to_string()));
    }
    let key = UnsealKey::generate();
    let sealed = seal_material(dir, options, &key)?;
    let created = create(dir, &sealed, &key);
    if created.is_err() {
        sealed.forget();
    }
    Ok(InitOutput {
        config: created?,
        shares: sealed.shares,
        key_file: sealed.key_file,
    })
}

/// What holds an unseal key: the seal record's parts, the shares to hand
/// out once, and the key file written.
struct Material {
    seal: SealKind,
    kms: Option<Arc<dyn Kms>>,
    shares: Vec<Share>,
    key_file: Option<PathBuf>,
}

impl Material {
    /// The key file opens nothing once the store was not written: do not
    /// leave it behind to be mistaken for one that does.
    fn forget(&self) {
        if let Some(path) = &self.key_file {
            let _ = std::fs::remove_file(path);
        }
    }

    fn kms_record(&self, key: &UnsealKey, store_id: &str) -> Result<Option<KmsSeal>, CoreError> {
        Ok(self
            .kms
            .as_ref()
            .map(|kms| key.wrap_with(&**kms, store_id))
            .transpose()?)
    }
}

fn seal_material(dir: &Path, options: InitOptions, key: &UnsealKey) -> Result<Material, CoreError> {
    Ok(match options {
        InitOptions::Shamir { shares, threshold } => Material {
            seal: SealKind::Shamir { shares, threshold },
            kms: None,
            shares: key.split(shares, threshold)?,
            key_file: None,
        },
        InitOptions::KeyFile(path) => {
            let path = match path {
                Some(path) => absolute(&path)?,
                None => default_key_file(dir)?,
            };
            key.write_key_file(&path)?;
            Material {
                seal: SealKind::KeyFile { path: path.clone() },
                kms: None,
                shares: Vec::new(),
                key_file: Some(path),
            }
        }
        InitOptions::Kms {
            kms,
            recovery_shares,
            recovery_threshold,
        } => Material {
            seal: SealKind::Shamir {
                shares: recovery_shares,
                threshold: recovery_threshold,
            },
            kms: Some(kms),
            shares: key.split(recovery_shares, recovery_threshold)?,
            key_file: None,
        },
    })
}

fn create(dir: &Path, sealed: &Material, key: &UnsealKey) -> Result<SealConfig, CoreError> {
    let storage: Arc<dyn Backend> = Arc::new(Embedded::create(dir)?);
    let barrier = Arc::new(Barrier::new(storage));
    let initialized = initialize_barrier(&barrier, sealed, key);
    if initialized.is_err() {
        let _ = std::fs::remove_file(dir.join(tresor_storage::STORE_FILE_NAME));
    }
    initialized
}

fn initialize_barrier(
    barrier: &Barrier,
    sealed: &Material,
    key: &UnsealKey,
) -> Result<SealConfig, CoreError> {
    let mut table = MountTable::default();
    let secret = new_entry("secret/", MountType::KvV2, "key/value secret storage");
    table.mounts.insert(secret.path.clone(), secret);
    let mounts = table_bytes(&table);
    let wrap = sealed
        .kms
        .as_ref()
        .map(|kms| move |store_id: &str| key.wrap_with(&**kms, store_id));
    let kms = wrap.as_ref().map(|w| w as &tresor_barrier::WrapFor<'_>);
    Ok(barrier.initialize_with_kms(sealed.seal.clone(), kms, key, &[(MOUNTS_KEY, &mounts)])?)
}

/// Seals the embedded store in `dir` another way (key file, Shamir shares
/// or a KMS) without re-encrypting anything: the root key is sealed again
/// under a new unseal key, in one transaction with the new seal record. The
/// old key file or shares stop opening the store. Anything refused (wrong
/// current key, a KMS that does not answer) leaves the store as it was.
pub fn migrate_seal(dir: &Path, unseal: &Unseal, to: InitOptions) -> Result<InitOutput, CoreError> {
    let read_only: Arc<dyn Backend> = Arc::new(Embedded::open_read_only(dir)?);
    let checker = Barrier::new(read_only);
    let config = checker
        .seal_config()?
        .ok_or(tresor_barrier::BarrierError::NotInitialized)?;
    let old = unseal_key(&config, unseal)?;
    checker.unseal(&old)?;
    drop(checker);
    let new = UnsealKey::generate();
    let sealed = seal_material(dir, to, &new)?;
    let resealed = sealed.kms_record(&new, &config.store_id).and_then(|kms| {
        let storage: Arc<dyn Backend> = Arc::new(Embedded::open(dir)?);
        Ok(Barrier::new(storage).reseal(&old, sealed.seal.clone(), kms, &new)?)
    });
    if resealed.is_err() {
        sealed.forget();
    }
    Ok(InitOutput {
        config: resealed?,
        shares: sealed.shares,
        key_file: sealed.key_file,
    })
}

/// Initializes any backend: root key, keyring and a mount table with KV
/// version 2 at `secret/`, in one transaction. Returns the unsealed barrier.
pub fn initialize(
    storage: Arc<dyn Backend>,
    seal: SealKind,
    key: &UnsealKey,
) -> Result<(Arc<Barrier>, SealConfig), CoreError> {
    let barrier = Arc::new(Barrier::new(storage));
    let sealed = Material {
        seal,
        kms: None,
        shares: Vec::new(),
        key_file: None,
    };
    let config = initialize_barrier(&barrier, &sealed, key)?;
    Ok((barrier, config))
}

/// [`initialize`] for a store auto-unsealed by `kms`: the unseal key is
/// made here, wrapped by the KMS, and split into recovery shares, which
/// are returned (the only copy). For the server's `sys/init` with a KMS seal.
pub fn initialize_with_kms(
    storage: Arc<dyn Backend>,
    kms: Arc<dyn Kms>,
    recovery_shares: u8,
    recovery_threshold: u8,
) -> Result<(Arc<Barrier>, SealConfig, UnsealKey, Vec<Share>), CoreError> {
    let barrier = Arc::new(Barrier::new(storage));
    let key = UnsealKey::generate();
    let shares = key.split(recovery_shares, recovery_threshold)?;
    let sealed = Material {
        seal: SealKind::Shamir {
            shares: recovery_shares,
            threshold: recovery_threshold,
        },
        kms: Some(kms),
        shares: Vec::new(),
        key_file: None,
    };
    let config = initialize_barrier(&barrier, &sealed, &key)?;
    Ok((barrier, config, key, shares))
}

/// Opens and unseals the embedded store in `dir`. The unseal key is checked
/// on a read-only handle first: a wrong key never opens the file for writing.
/// Another process holding the file is waited for as long as
/// [`tresor_storage::DEFAULT_LOCK_WAIT`].
pub fn open(dir: &Path, unseal: &Unseal, access: Access) -> Result<Store, CoreError> {
    open_with(dir, unseal, access, &Locking::default())
}

/// [`open`], waiting for other processes (and naming this one to them) as
/// `locking` says, now and at a [`Access::WriteOnDemand`] store's first write.
pub fn open_with(
    dir: &Path,
    unseal: &Unseal,
    access: Access,
    locking: &Locking,
) -> Result<Store, CoreError> {
    let read_only: Arc<dyn Backend> = match access {
        Access::WriteOnDemand => Arc::new(WriteOnDemand::new(
            dir.into(),
            locking.clone(),
            Embedded::open_read_only_with(dir, locking)?,
        )),
        Access::ReadOnly | Access::ReadWrite => {
            Arc::new(Embedded::open_read_only_with(dir, locking)?)
        }
    };
    let checker = Arc::new(Barrier::new(read_only));
    let config = checker
        .seal_config()?
        .ok_or(tresor_barrier::BarrierError::NotInitialized)?;
    let key = unseal_key(&config, unseal)?;
    checker.unseal(&key)?;
    if access != Access::ReadWrite {
        return Ok(Store::new(checker));
    }
    drop(checker);
    let storage: Arc<dyn Backend> = Arc::new(Embedded::open_with(dir, locking)?);
    let barrier = Arc::new(Barrier::new(storage));
    barrier.unseal(&key)?;
    Ok(Store::new(barrier))
}

/// The seal record of the store in `dir`, read without unsealing it.
pub fn seal_config(dir: &Path) -> Result<SealConfig, CoreError> {
    let read_only: Arc<dyn Backend> = Arc::new(Embedded::open_read_only(dir)?);
    Ok(Barrier::new(read_only)
        .seal_config()?
        .ok_or(tresor_barrier::BarrierError::NotInitialized)?)
}

/// The unseal key of a store with this seal record, from what the caller
/// holds: a KMS-sealed store takes recovery shares if given, else its KMS.
pub fn unseal_key(config: &SealConfig, unseal: &Unseal) -> Result<UnsealKey, CoreError> {
    if let Some(sealed) = &config.kms
        && unseal.shares.is_empty()
    {
        let connect = unseal.kms.as_ref().ok_or_else(|| CoreError::NeedKms {
            seal: config.type_name(),
        })?;
        let kms = connect(sealed)?;
        return Ok(UnsealKey::unwrap_with(&*kms, sealed, &config.store_id)?);
    }
    match &config.seal {
        SealKind::KeyFile { path } => {
            let file = unseal.key_file.as_deref().unwrap_or(path);
            if !file.exists() && unseal.key_file.is_none() {
                return Err(CoreError::NoKeyFile {
                    recorded: path.display().to_string(),
                });
            }
            Ok(UnsealKey::read_key_file(file)?)
        }
        SealKind::Shamir { threshold, .. } => {
            if unseal.shares.len() < usize::from(*threshold) {
                return Err(CoreError::NeedShares {
                    threshold: *threshold,
                });
            }
            Ok(UnsealKey::combine(&unseal.shares)?)
        }
    }
}

/// Where `init` puts a store's key file when none is named: under the user's
/// configuration directory, outside the store (and so outside any
/// repository the store sits in).
pub fn default_key_file(dir: &Path) -> Result<PathBuf, CoreError> {
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .ok_or_else(|| {
            CoreError::InvalidMount(
                "neither XDG_CONFIG_HOME nor HOME is set; pass --key-file".into(),
            )
        })?;
    let name = absolute(dir)?
        .file_name()
        .map(|n| n.to_string_lossy().trim_start_matches('.').to_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "store".into());
    let mut tag = [0u8; 4];
    getrandom::fill(&mut tag).expect("the operating system's random generator failed");
    let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    Ok(config_home
        .join("tresor/keys")
        .join(format!("{name}-{tag}.key")))
}

fn absolute(path: &Path) -> Result<PathBuf, CoreError> {
    std::path::absolute(path).map_err(|source| {
        CoreError::Storage(tresor_storage::StorageError::Io {
            path: path.into(),
            source,
        })
    })
}
