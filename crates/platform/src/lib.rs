//! The platform spec (`tresor.yaml`) and what `tresor apply` does with it:
//! validate everything, generate strong values from the OS CSPRNG, plan
//! against the store, then write.
//!
//! Nothing here ever puts a secret value in an error, a `Debug` output or the
//! plan table.
#![forbid(unsafe_code)]

pub mod generate;
pub mod parallel;
mod plan;
mod push;
mod spec;
mod store;
pub mod strength;

pub use generate::{Generator, GeneratorError};
pub use plan::{
    Action, GENERATED_PREFIX, KeyAction, KeyPlan, MANAGED_BY, Outcome, Plan, SecretPlan, plan,
};
pub use push::{
    Destination, Entry, Job, OWNER_PLATFORM, OWNER_SECRET, Owner, PushReport, PushResult, Pushed,
    TargetError, Unreachable, push,
};
pub use spec::{
    AwsTarget, Consumer, ConsumerKind, DEFAULT_ROTATION_EVERY, KeyPair, KeyRef, KeySpec,
    KubernetesSpec, PostgresRotation, Problem, ROTATION_RECORD_PREFIX, Rotation, SPEC_VERSION,
    SecretSpec, Source, Spec, SpecError, StoreSpec, Strategy, Targets, VaultAuth, VaultTarget,
    check_key_name, load, parse,
};
pub use store::{RemoteStore, SecretStore, Stored};

use std::path::{Path, PathBuf};
use tresor_core::{Access, CoreError, InitOptions, Locking, Unseal};
use tresor_kv::KvEngine;

/// Why planning or applying failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error(transparent)]
    Kv(#[from] tresor_kv::KvError),
    #[error(
        "secret `{secret}` changed in the store while it was being applied; it keeps the other change. Run `tresor apply` again"
    )]
    Changed { secret: String },
    #[error(transparent)]
    Server(#[from] tresor_client::Error),
    #[error(
        "the spec names the tresor server at {0}, but no token is set: run `tresor login` or set TRESOR_TOKEN"
    )]
    ServerStore(String),
}

impl PlatformError {
    /// Whether the input was at fault (exit code 2) rather than the store.
    pub fn is_usage(&self) -> bool {
        match self {
            PlatformError::Spec(_) | PlatformError::ServerStore(_) => true,
            PlatformError::Core(e) => e.is_usage(),
            PlatformError::Kv(e) => e.is_client_error(),
            PlatformError::Server(e) => e.is_client_error(),
            PlatformError::Changed { .. } => false,
        }
    }
}

/// The spec's store, opened: an embedded store's KV mount or a server's.
pub struct Opened {
    store: SpecStore,
    /// Set when this call created the store: where its key file is.
    pub created_key_file: Option<PathBuf>,
}

/// The kind of store a spec names, opened.
enum SpecStore {
    Embedded(KvEngine),
    Server(RemoteStore),
}

impl Opened {
    /// The store, for plan and apply.
    pub fn store(&self) -> &dyn SecretStore {
        match &self.store {
            SpecStore::Embedded(kv) => kv,
            SpecStore::Server(remote) => remote,
        }
    }

    /// The embedded store's KV engine, when the spec names one.
    pub fn local(&self) -> Option<&KvEngine> {
        match &self.store {
            SpecStore::Embedded(kv) => Some(kv),
            SpecStore::Server(_) => None,
        }
    }
}

/// Opens the spec's embedded store, waiting for other processes holding it
/// as `locking` says. A missing store is created (key file outside the
/// repository) unless `create` is false, in which case `None` comes back: a
/// dry run on a fresh clone writes nothing.
pub fn open_store(
    spec: &Spec,
    create: bool,
    access: Access,
    locking: &Locking,
) -> Result<Option<Opened>, PlatformError> {
    let (path, key_file, mount) = match &spec.store {
        StoreSpec::Embedded {
            path,
            key_file,
            mount,
        } => (path, key_file, mount),
        StoreSpec::Server { address } => {
            let client = tresor_client::Client::from_env(Some(address))?
                .filter(tresor_client::Client::has_token)
                .ok_or_else(|| PlatformError::ServerStore(address.clone()))?;
            return Ok(Some(Opened {
                store: SpecStore::Server(RemoteStore::new(client, "secret")),
                created_key_file: None,
            }));
        }
    };
    let mut created_key_file = None;
    if !exists(path) {
        if !create {
            return Ok(None);
        }
        let out = tresor_core::init(path, InitOptions::KeyFile(key_file.clone()))?;
        created_key_file = out.key_file;
    }
    let store = tresor_core::open_with(
        path,
        &Unseal {
            key_file: key_file.clone(),
            ..Unseal::default()
        },
        access,
        locking,
    )?;
    let kv: KvEngine = store.kv(&store.mount(mount)?)?;
    Ok(Some(Opened {
        store: SpecStore::Embedded(kv),
        created_key_file,
    }))
}

fn exists(dir: &Path) -> bool {
    dir.join(tresor_storage::STORE_FILE_NAME).is_file()
}

#[cfg(test)]
mod tests;
