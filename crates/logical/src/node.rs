//! One server's hold on a store: the barrier over its storage, its seal
//! state, and once unsealed, the engines that serve requests.

use crate::{Error, Result};
use std::sync::{Arc, Mutex, RwLock};
use tresor_audit::{AuditBroker, BrokerConfig};
use tresor_barrier::seal::Share;
use tresor_barrier::{Barrier, SealConfig, SealKind, UnsealKey};
use tresor_core::Store;
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
}

/// A server's view of one store.
pub struct Node {
    storage: Arc<dyn Backend>,
    barrier: Arc<Barrier>,
    unsealed: RwLock<Option<Arc<Unsealed>>>,
    /// Shares submitted through sys/unseal so far.
    progress: Mutex<Vec<Share>>,
    settings: NodeSettings,
}

/// What sys/init returns: the shares and the root token, shown once.
pub struct Initialized {
    pub shares: Vec<Share>,
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

    /// Initializes the store with Shamir shares and creates a root token.
    /// The store stays sealed, as Vault's does after init.
    pub fn initialize(&self, shares: u8, threshold: u8) -> Result<Initialized> {
        if self.seal_config()?.is_some() {
            return Err(Error::bad_request("Vault is already initialized"));
        }
        let key = UnsealKey::generate();
        let split = key.split(shares, threshold)?;
        let root_token =
            self.initialize_with(SealKind::Shamir { shares, threshold }, &key, None)?;
        self.seal();
        Ok(Initialized {
            shares: split,
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

    pub fn seal(&self) {
        *self.unsealed.write().unwrap_or_else(|p| p.into_inner()) = None;
        self.barrier.seal();
    }

    fn load(&self) -> Result<Unsealed> {
        Ok(Unsealed {
            store: Store::new(Arc::clone(&self.barrier)),
            policies: PolicyStore::open(Arc::clone(&self.barrier))?,
            tokens: TokenStore::new(Arc::clone(&self.barrier), self.settings.token_limits),
            audit: AuditBroker::open(Arc::clone(&self.barrier), self.settings.audit.clone())
                .map_err(|e| Error::Internal(format!("cannot open the audit devices: {e}")))?,
        })
    }
}
