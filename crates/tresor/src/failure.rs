use std::process::ExitCode;
use tresor_core::CoreError;
use tresor_kv::KvError;

#[derive(Debug)]
/// A command's failure and the exit code it maps to: 2 when the input was
/// wrong or names nothing (as the vault CLI does), 1 when the store failed.
pub struct Failure {
    usage: bool,
    error: anyhow::Error,
}

impl Failure {
    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            usage: true,
            error: error.into(),
        }
    }

    pub fn runtime(error: impl Into<anyhow::Error>) -> Self {
        Self {
            usage: false,
            error: error.into(),
        }
    }

    pub fn report(self) -> ExitCode {
        eprintln!("Error: {:#}", self.error);
        if self.error.chain().any(locked) {
            eprintln!("To wait longer, pass --lock-wait=1m (or set TRESOR_LOCK_WAIT=1m).");
        }
        ExitCode::from(if self.usage { 2 } else { 1 })
    }
}

impl From<CoreError> for Failure {
    fn from(error: CoreError) -> Self {
        Self {
            usage: error.is_usage(),
            error: error.into(),
        }
    }
}

impl From<KvError> for Failure {
    fn from(error: KvError) -> Self {
        Self {
            usage: error.is_client_error(),
            error: error.into(),
        }
    }
}

impl From<tresor_barrier::BarrierError> for Failure {
    fn from(error: tresor_barrier::BarrierError) -> Self {
        CoreError::from(error).into()
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self::runtime(error)
    }
}

pub type CmdResult = Result<(), Failure>;

/// Whether `e` is another process holding the embedded store past the wait
/// (transparent wrappers hide it from the source chain: each is looked into).
fn locked(e: &(dyn std::error::Error + 'static)) -> bool {
    use tresor_platform::PlatformError;
    use tresor_storage::StorageError::Locked;
    matches!(e.downcast_ref(), Some(Locked { .. }))
        || matches!(e.downcast_ref(), Some(CoreError::Storage(Locked { .. })))
        || matches!(
            e.downcast_ref(),
            Some(PlatformError::Core(CoreError::Storage(Locked { .. })))
        )
        || matches!(
            e.downcast_ref(),
            Some(tresor_rotation::RotateError::Store(PlatformError::Core(
                CoreError::Storage(Locked { .. })
            )))
        )
}
