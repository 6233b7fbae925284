use tresor_barrier::BarrierError;
use tresor_kv::KvError;
use tresor_storage::StorageError;
use tresor_transit::TransitError;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error(transparent)]
    Transit(#[from] TransitError),
    #[error("the mount {mount} is {}, not {wanted}; see `tresor secrets list`", .found.name_with_version())]
    WrongEngine {
        mount: String,
        wanted: &'static str,
        found: crate::MountType,
    },
    #[error("no secrets engine is mounted at the start of `{0}`; see `tresor secrets list`")]
    NoMount(String),
    #[error("invalid mount: {0}")]
    InvalidMount(String),
    #[error(
        "the store is sealed with Shamir shares; give at least {threshold} of them in TRESOR_UNSEAL_KEYS (separated by commas), or run `tresor server` and unseal it there"
    )]
    NeedShares { threshold: u8 },
    #[error(
        "no key file for this store: pass --key-file or set TRESOR_KEY_FILE (init recorded {recorded})"
    )]
    NoKeyFile { recorded: String },
    #[error(
        "the store is sealed by {seal}, and no client of it is at hand: this tresor was built without it, or give the recovery shares in TRESOR_UNSEAL_KEYS"
    )]
    NeedKms { seal: &'static str },
    #[error("the mount table is unreadable; restore the store from a backup")]
    CorruptMounts,
    #[error("a store already exists at {0}")]
    AlreadyExists(String),
    #[error("cannot migrate: {0}")]
    Migrate(String),
    #[error("{0}")]
    Snapshot(String),
}

impl CoreError {
    /// Whether the user asked for something impossible (rather than the
    /// store failing): the CLI exits 2 for these, as the vault CLI does.
    pub fn is_usage(&self) -> bool {
        match self {
            CoreError::Kv(e) => e.is_client_error(),
            CoreError::Transit(e) => e.is_client_error(),
            CoreError::NoMount(_)
            | CoreError::InvalidMount(_)
            | CoreError::AlreadyExists(_)
            | CoreError::WrongEngine { .. } => true,
            CoreError::Barrier(BarrierError::InvalidSeal(_) | BarrierError::BadShare(_)) => true,
            _ => false,
        }
    }
}
