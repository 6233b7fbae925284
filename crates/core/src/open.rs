use crate::CoreError;
use crate::mounts::{MountTable, MountType};
use crate::on_demand::WriteOnDemand;
use crate::store::{MOUNTS_KEY, Store, new_entry, table_bytes};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tresor_barrier::seal::Share;
use tresor_barrier::{Barrier, SealConfig, SealKind, UnsealKey};
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
    /// Shamir shares, for stores sealed that way.
    pub shares: Vec<Share>,
}

/// How `init` seals a new store.
pub enum InitOptions {
    Shamir {
        shares: u8,
        threshold: u8,
    },
    /// A key file at this path, or at [`default_key_file`].
    KeyFile(Option<PathBuf>),
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
    let (seal, shares, key_file) = match options {
        InitOptions::Shamir { shares, threshold } => {
            let split = key.split(shares, threshold)?;
            (SealKind::Shamir { shares, threshold }, split, None)
        }
        InitOptions::KeyFile(path) => {
            let path = match path {
                Some(path) => absolute(&path)?,
                None => default_key_file(dir)?,
            };
            key.write_key_file(&path)?;
            (
                SealKind::KeyFile { path: path.clone() },
                Vec::new(),
                Some(path),
            )
        }
    };
    let created = create(dir, seal, &key);
    if created.is_err()
        && let Some(path) = &key_file
    {
        // The key opens nothing: do not leave it behind to be mistaken for one that does.
        let _ = std::fs::remove_file(path);
    }
    Ok(InitOutput {
        config: created?,
        shares,
        key_file,
    })
}

fn create(dir: &Path, seal: SealKind, key: &UnsealKey) -> Result<SealConfig, CoreError> {
    let storage: Arc<dyn Backend> = Arc::new(Embedded::create(dir)?);
    let initialized = initialize(storage, seal, key);
    if initialized.is_err() {
        let _ = std::fs::remove_file(dir.join(tresor_storage::STORE_FILE_NAME));
    }
    Ok(initialized?.1)
}

/// Initializes any backend: root key, keyring and a mount table with KV
/// version 2 at `secret/`, in one transaction. Returns the unsealed barrier.
pub fn initialize(
    storage: Arc<dyn Backend>,
    seal: SealKind,
    key: &UnsealKey,
) -> Result<(Arc<Barrier>, SealConfig), CoreError> {
    let barrier = Arc::new(Barrier::new(storage));
    let mut table = MountTable::default();
    let secret = new_entry("secret/", MountType::KvV2, "key/value secret storage");
    table.mounts.insert(secret.path.clone(), secret);
    let mounts = table_bytes(&table);
    let config = barrier.initialize(seal, key, &[(MOUNTS_KEY, &mounts)])?;
    Ok((barrier, config))
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

fn unseal_key(config: &SealConfig, unseal: &Unseal) -> Result<UnsealKey, CoreError> {
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
