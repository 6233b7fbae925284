//! One server's hold on a store: the barrier over its storage, its seal
//! state, and once unsealed, the engines that serve requests.

use crate::{Error, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use tresor_audit::{AuditBroker, BrokerConfig};
use tresor_barrier::seal::Share;
use tresor_barrier::{Barrier, Kms, SealConfig, SealKind, UnsealKey};
use tresor_core::{KmsConnector, Store};
use tresor_policy::PolicyStore;
use tresor_storage::Backend;
use tresor_tokens::{Limits, TokenStore};

/// What exists only while the store is unsealed.
pub struct Unsealed {
    pub store: Store,
    pub policies: PolicyStore,
    pub tokens: TokenStore,
    pub audit: AuditBroker,
}

/// Settings a node needs from the server configuration.
#[derive(Clone)]
pub struct NodeSettings {
    pub audit: BrokerConfig,
    pub token_limits: Limits,
    /// The KMS that seals a store this server initializes (auto-unseal);
    /// `None`: `sys/init` makes Shamir shares.
    pub kms: Option<Arc<dyn Kms>>,
    /// Makes the client of the KMS a store's seal record names, to unseal
    /// a store sealed by one.
    pub kms_connector: Option<KmsConnector>,
}

/// A server's view of one store.
pub struct Node {
    storage: Arc<dyn Backend>,
    barrier: Arc<Barrier>,
    unsealed: RwLock<Option<Arc<Unsealed>>>,
    /// Shares submitted through sys/unseal so far.
    progress: Mutex<Vec<Share>>,
    settings: NodeSettings,
    /// The last remounts done here, by migration id: what `sys/remount/status`
    /// answers.
    remounts: Mutex<VecDeque<(String, String, String)>>,
}

/// Remounts remembered for `sys/remount/status`.
const REMOUNTS_KEPT: usize = 64;

/// What sys/init returns: the shares and the root token, shown once.
pub struct Initialized {
    pub shares: Vec<Share>,
    /// The shares are recovery shares: a KMS seals the store, which is
    /// unsealed already.
    pub recovery: bool,
    pub root_token: zeroize::Zeroizing<String>,
}

impl Node {
    pub fn new(storage: Arc<dyn Backend>, settings: NodeSettings) -> Self {
        let barrier = Arc::new(Barrier::new(Arc::clone(&storage)));
        Self {
            storage,
            barrier,
            unsealed: RwLock::new(None),
            progress: Mutex::new(Vec::new()),
            settings,
            remounts: Mutex::new(VecDeque::new()),
        }
    }

    pub fn storage_kind(&self) -> &'static str {
        self.storage.kind()
    }

    /// Whether reads may run on an async worker (see
    /// [`tresor_storage::Backend::reads_are_local`]).
    pub fn reads_are_local(&self) -> bool {
        self.storage.reads_are_local()
    }

    pub fn seal_config(&self) -> Result<Option<SealConfig>> {
        Ok(self.barrier.seal_config()?)
    }

    /// The engines, or an error while sealed.
    pub fn unsealed(&self) -> Result<Arc<Unsealed>> {
        self.unsealed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| self.sealed_error())
    }

    /// Sealed, naming the storage when it cannot be reached either (as
    /// while a server waits for its database to unseal itself).
    fn sealed_error(&self) -> Error {
        match self.seal_config() {
            Err(unavailable) => unavailable,
            Ok(_) => Error::Sealed,
        }
    }

    pub fn is_sealed(&self) -> bool {
        self.unsealed
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Initializes the store with Shamir shares and creates a root token;
    /// the store stays sealed, as Vault's does after init. With a KMS
    /// configured, the KMS seals the store, the shares are recovery shares,
    /// and the store is unsealed at once (Vault's auto-unseal).
    pub fn initialize(&self, shares: u8, threshold: u8) -> Result<Initialized> {
        if self.seal_config()?.is_some() {
            return Err(Error::bad_request("Vault is already initialized"));
        }
        if let Some(kms) = &self.settings.kms {
            let (barrier, _, key, recovery) = tresor_core::initialize_with_kms(
                Arc::clone(&self.storage),
                Arc::clone(kms),
                shares,
                threshold,
            )?;
            barrier.unseal(&key)?;
            self.barrier.unseal(&key)?;
            let unsealed = self.load()?;
            let (token, _) = unsealed.tokens.create_root(None)?;
            *self.unsealed.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(unsealed));
            return Ok(Initialized {
                shares: recovery,
                recovery: true,
                root_token: zeroize::Zeroizing::new(token.expose().to_string()),
            });
        }
        let key = UnsealKey::generate();
        let split = key.split(shares, threshold)?;
        let root_token =
            self.initialize_with(SealKind::Shamir { shares, threshold }, &key, None)?;
        self.seal();
        Ok(Initialized {
            shares: split,
            recovery: false,
            root_token,
        })
    }

    /// Initializes with `seal` and `key`, leaves the store unsealed, and
    /// returns a new root token (with the given id, for dev mode).
    pub fn initialize_with(
        &self,
        seal: SealKind,
        key: &UnsealKey,
        root_id: Option<&str>,
    ) -> Result<zeroize::Zeroizing<String>> {
        let (barrier, _) = tresor_core::initialize(Arc::clone(&self.storage), seal, key)?;
        barrier.unseal(key)?;
        self.barrier.unseal(key)?;
        let unsealed = self.load()?;
        let id = root_id.map(tresor_tokens::Token::new);
        let (token, _) = unsealed.tokens.create_root(id.as_ref())?;
        *self.unsealed.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(unsealed));
        Ok(zeroize::Zeroizing::new(token.expose().to_string()))
    }

    /// Adds one share; unseals once enough are in. A share already given is
    /// ignored, as Vault does, so one client cannot spoil the progress
    /// others made. Returns the progress.
    pub fn submit_share(&self, share: Share) -> Result<usize> {
        let config = self
            .seal_config()?
            .ok_or_else(|| Error::bad_request("Vault is not initialized"))?;
        let SealKind::Shamir { threshold, .. } = config.seal else {
            return Err(Error::bad_request(
                "this store is unsealed by its key file, not by shares",
            ));
        };
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if !progress.iter().any(|given| given.same_as(&share)) {
            progress.push(share);
        }
        if progress.len() < usize::from(threshold) {
            return Ok(progress.len());
        }
        let shares = std::mem::take(&mut *progress);
        drop(progress);
        // Enough shares that do not combine into the key: they are spent.
        let key = UnsealKey::combine(&shares)?;
        self.unseal_with(&key)?;
        Ok(0)
    }

    pub fn reset_progress(&self) {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub fn progress(&self) -> usize {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether this server initializes stores with a KMS.
    pub fn seals_with_kms(&self) -> bool {
        self.settings.kms.is_some()
    }

    /// The unseal key of a store a KMS seals, from the KMS.
    pub fn kms_unseal_key(&self, config: &SealConfig) -> Result<UnsealKey> {
        let unseal = tresor_core::Unseal {
            kms: self.settings.kms_connector.clone(),
            ..tresor_core::Unseal::default()
        };
        tresor_core::unseal_key(config, &unseal).map_err(Error::from)
    }

    /// Unseals with the whole key (key-file seal, or combined shares).
    pub fn unseal_with(&self, key: &UnsealKey) -> Result<()> {
        self.barrier.unseal(key)?;
        match self.load() {
            Ok(unsealed) => {
                *self.unsealed.write().unwrap_or_else(|p| p.into_inner()) =
                    Some(Arc::new(unsealed));
                Ok(())
            }
            Err(e) => {
                self.barrier.seal();
                Err(e)
            }
        }
    }

    /// Saves a snapshot of the store's ciphertext into `dir`, keeping the
    /// newest `keep` (see [`tresor_core::snapshot::save_into`]); `None`
    /// before the store is initialized, when there is nothing to save.
    pub fn save_snapshot(
        &self,
        dir: &std::path::Path,
        keep: usize,
        at: std::time::SystemTime,
    ) -> Result<Option<tresor_core::snapshot::Saved>> {
        if self.seal_config()?.is_none() {
            return Ok(None);
        }
        Ok(Some(tresor_core::snapshot::save_into(
            &*self.storage,
            dir,
            keep,
            at,
        )?))
    }

    /// Rotates the transit keys due at `at` (their `auto_rotate_period`
    /// passed); nothing while sealed.
    pub fn rotate_due_transit_keys(
        &self,
        at: std::time::SystemTime,
    ) -> Result<Vec<(String, String)>> {
        match self.unsealed() {
            Ok(unsealed) => Ok(unsealed.store.rotate_due_transit_keys(at)?),
            Err(Error::Sealed) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Records a remount done; returns its migration id.
    pub fn record_remount(&self, from: &str, to: &str) -> String {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the operating system's random generator failed");
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut remounts = self.remounts.lock().unwrap_or_else(|p| p.into_inner());
        if remounts.len() == REMOUNTS_KEPT {
            remounts.pop_front();
        }
        remounts.push_back((id.clone(), from.to_owned(), to.to_owned()));
        id
    }

    /// The source and target of the remount `id`, if it was done here.
    pub fn remount(&self, id: &str) -> Option<(String, String)> {
        self.remounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(known, _, _)| known == id)
            .map(|(_, from, to)| (from.clone(), to.clone()))
    }

    pub fn seal(&self) {
        *self.unsealed.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.barrier.seal();
    }

    fn load(&self) -> Result<Unsealed> {
        let store = Store::new(Arc::clone(&self.barrier));
        store.ensure_auth_table()?;
        Ok(Unsealed {
            store,
            policies: PolicyStore::open(Arc::clone(&self.barrier))?,
            tokens: TokenStore::new(Arc::clone(&self.barrier), self.settings.token_limits),
            audit: AuditBroker::open(Arc::clone(&self.barrier), self.settings.audit.clone())
                .map_err(|e| Error::Internal(format!("cannot open the audit devices: {e}")))?,
        })
    }
}
