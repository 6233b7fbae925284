//! Starting, running and stopping the server.

use crate::config::Storage;
use crate::http::{App, router};
use crate::limiter::FailedAuthLimiter;
use crate::state::{Core, CoreSettings};
use crate::tls::{ReloadableCert, TlsError};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::Service;
use tresor_barrier::{SealKind, UnsealKey};
use tresor_storage::{Backend, Embedded, Memory};
use zeroize::Zeroizing;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot open the store: {0}")]
    Store(String),
    #[error("cannot unseal the store: {0}")]
    Unseal(String),
    #[error("cannot reach the store: {0}")]
    Unavailable(String),
}

/// Where and how to listen.
pub struct Listener {
    pub address: SocketAddr,
    /// Certificate and key files; `None` serves plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_request_bytes: usize,
    pub failed_auth_burst: u32,
    pub failed_auth_window: Duration,
}

/// What dev mode prints for its user.
pub struct Dev {
    pub root_token: Zeroizing<String>,
    pub unseal_key: Zeroizing<String>,
}

/// A dev core: in-memory storage, initialized, unsealed, `secret/` mounted.
pub fn dev_core(
    settings: CoreSettings,
    root_token: Option<&str>,
) -> Result<(Arc<Core>, Dev), ServeError> {
    let storage: Arc<dyn Backend> = Arc::new(Memory::new());
    let core = Arc::new(Core::new(storage, settings));
    let key = UnsealKey::generate();
    let share = key
        .split(1, 1)
        .map_err(|e| ServeError::Store(e.to_string()))?
        .remove(0);
    let token = core
        .initialize_with(
            SealKind::Shamir {
                shares: 1,
                threshold: 1,
            },
            &key,
            root_token,
        )
        .map_err(|e| ServeError::Store(e.errors.join("; ")))?;
    Ok((
        core,
        Dev {
            root_token: token,
            unseal_key: share.to_base64(),
        },
    ))
}

/// A core over the embedded store in `dir` (created empty if missing),
/// unsealed with `key_file` when the store is sealed by one.
pub fn embedded_core(
    dir: &Path,
    key_file: Option<&Path>,
    settings: CoreSettings,
) -> Result<Arc<Core>, ServeError> {
    let storage = if Embedded::exists(dir) {
        Embedded::open(dir)
    } else {
        Embedded::create(dir)
    }
    .map_err(|e| ServeError::Store(e.to_string()))?;
    let core = Arc::new(Core::new(Arc::new(storage), settings));
    unseal_by_key_file(&core, key_file)?;
    Ok(core)
}

/// A core over the configured store, and when that store could not be
/// reached at start, the unseal still to do (see
/// [`Server::unseal_once_reachable`]).
pub struct Started {
    pub core: Arc<Core>,
    pub pending: Option<PendingUnseal>,
}

/// The start-up unseal of a store that did not answer yet.
pub struct PendingUnseal {
    key_file: Option<PathBuf>,
}

/// A core over the store `storage` names, unsealed with `key_file` when the
/// store is sealed by one. A PostgreSQL database gets tresor's schema
/// (created or migrated) on first contact; every server on it unseals itself.
/// A PostgreSQL database that does not answer yet does not stop the start:
/// the core comes back sealed, with the unseal pending.
pub fn store_core(
    storage: &Storage,
    key_file: Option<&Path>,
    settings: CoreSettings,
) -> Result<Started, ServeError> {
    match storage {
        Storage::Embedded(dir) => Ok(Started {
            core: embedded_core(dir, key_file, settings)?,
            pending: None,
        }),
        Storage::Postgres {
            url,
            pool_size,
            connect_timeout,
            timeout,
        } => postgres_core(
            url,
            *pool_size,
            *connect_timeout,
            *timeout,
            key_file,
            settings,
        ),
    }
}

#[cfg(feature = "postgres")]
fn postgres_core(
    url: &str,
    pool_size: Option<usize>,
    connect_timeout: Option<Duration>,
    timeout: Option<Duration>,
    key_file: Option<&Path>,
    settings: CoreSettings,
) -> Result<Started, ServeError> {
    let defaults = tresor_storage_postgres::Options::default();
    let options = tresor_storage_postgres::Options {
        pool_size: pool_size.unwrap_or(defaults.pool_size),
        connect_timeout: connect_timeout.unwrap_or(defaults.connect_timeout),
        timeout: timeout.unwrap_or(defaults.timeout),
    };
    let storage = tresor_storage_postgres::Postgres::open(url, &options)
        .map_err(|e| ServeError::Store(e.to_string()))?;
    let core = Arc::new(Core::new(Arc::new(storage), settings));
    let pending = match unseal_by_key_file(&core, key_file) {
        Ok(()) => None,
        Err(ServeError::Unavailable(why)) => {
            tracing::warn!(error = %why, "the store does not answer; serving 503 until it does");
            Some(PendingUnseal {
                key_file: key_file.map(Path::to_path_buf),
            })
        }
        Err(e) => return Err(e),
    };
    Ok(Started { core, pending })
}

#[cfg(not(feature = "postgres"))]
fn postgres_core(
    _: &str,
    _: Option<usize>,
    _: Option<Duration>,
    _: Option<Duration>,
    _: Option<&Path>,
    _: CoreSettings,
) -> Result<Started, ServeError> {
    Err(ServeError::Store(
        "this tresor was built without PostgreSQL support (cargo feature `postgres`)".into(),
    ))
}

/// Unseals `core` with its key file when the store is sealed by one; a
/// store that cannot be asked (503) is [`ServeError::Unavailable`].
fn unseal_by_key_file(core: &Core, key_file: Option<&Path>) -> Result<(), ServeError> {
    let failed = |e: crate::request::ApiError, other: fn(String) -> ServeError| {
        let why = e.errors.join("; ");
        if e.status == 503 {
            ServeError::Unavailable(why)
        } else {
            other(why)
        }
    };
    let config = core
        .seal_config()
        .map_err(|e| failed(e, ServeError::Store))?;
    if let Some(SealKind::KeyFile { path }) = config.map(|c| c.seal) {
        let file = key_file.unwrap_or(&path);
        let key = UnsealKey::read_key_file(file).map_err(|e| ServeError::Unseal(e.to_string()))?;
        core.unseal_with(&key)
            .map_err(|e| failed(e, ServeError::Unseal))?;
    }
    Ok(())
}

/// First and longest pause between two attempts to reach a store that did
/// not answer at start.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Retries the start-up unseal until the store answers, pausing twice as
/// long after each failure, up to [`RETRY_MAX`]. A failure other than an
/// unreachable store (a wrong key file) ends the retries: the server stays
/// sealed and says why in its log.
async fn unseal_when_reachable(core: Arc<Core>, pending: PendingUnseal) {
    let mut pause = RETRY_FIRST;
    loop {
        tokio::time::sleep(pause).await;
        let attempt = {
            let core = Arc::clone(&core);
            let key_file = pending.key_file.clone();
            tokio::task::spawn_blocking(move || unseal_by_key_file(&core, key_file.as_deref()))
                .await
        };
        match attempt {
            Ok(Err(ServeError::Unavailable(why))) => {
                pause = (pause * 2).min(RETRY_MAX);
                tracing::warn!(error = %why, retry_in = ?pause, "the store still does not answer");
            }
            Ok(Ok(())) => {
                tracing::info!(sealed = core.is_sealed(), "the store answers");
                return;
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "the store answers, but the server stays sealed");
                return;
            }
            Err(_) => return,
        }
    }
}

/// A running server's handles.
pub struct Server {
    listener: TcpListener,
    address: SocketAddr,
    app: Arc<App>,
    cert: Option<Arc<ReloadableCert>>,
    rotation: Option<crate::rotation::RotationConfig>,
    pending: Option<PendingUnseal>,
    audit_checkpoint_interval: Duration,
}

/// How often audit chains' positions are saved, unless configured.
pub const AUDIT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

impl Server {
    /// Binds the listener and loads the certificate.
    pub async fn bind(core: Arc<Core>, listener: Listener) -> Result<Self, ServeError> {
        let cert = match &listener.tls {
            Some((cert, key)) => Some(Arc::new(ReloadableCert::load(cert, key)?)),
            None => None,
        };
        let tcp = TcpListener::bind(listener.address)
            .await
            .map_err(|source| ServeError::Bind {
                address: listener.address,
                source,
            })?;
        let address = tcp.local_addr().map_err(|source| ServeError::Bind {
            address: listener.address,
            source,
        })?;
        let app = Arc::new(App {
            core,
            limiter: FailedAuthLimiter::new(
                listener.failed_auth_burst,
                listener.failed_auth_window,
            ),
            max_request_bytes: listener.max_request_bytes,
        });
        Ok(Self {
            listener: tcp,
            address,
            app,
            cert,
            rotation: None,
            pending: None,
            audit_checkpoint_interval: AUDIT_CHECKPOINT_INTERVAL,
        })
    }

    /// Runs the due rotations of a platform spec on a schedule while serving.
    pub fn schedule_rotation(&mut self, config: crate::rotation::RotationConfig) {
        self.rotation = Some(config);
    }

    /// Saves the audit chains' positions this often (and once more when the
    /// server stops): lines cut from a log's end after a save are detected.
    pub fn save_audit_checkpoints_every(&mut self, interval: Duration) {
        self.audit_checkpoint_interval = interval;
    }

    /// Unseals in the background, once the store answers, a store that did
    /// not answer at start; requests get 503 until then.
    pub fn unseal_once_reachable(&mut self, pending: PendingUnseal) {
        self.pending = Some(pending);
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// A handle that reloads this server from another task.
    pub fn reloader(&self) -> impl Fn() + Send + Sync + 'static {
        let cert = self.cert.clone();
        let core = Arc::clone(&self.app.core);
        move || {
            if let Some(cert) = &cert
                && let Err(e) = cert.reload()
            {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one");
            }
            if let Ok(unsealed) = core.unsealed() {
                unsealed.audit.reopen();
            }
        }
    }

    /// Serves until `shutdown` completes, then stops accepting and waits for
    /// the requests in flight to finish.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let router = router(Arc::clone(&self.app));
        let acceptor = self
            .cert
            .as_ref()
            .map(|cert| tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config())));
        let graceful = GracefulShutdown::new();
        let tidy = tokio::spawn(tidy_tokens(Arc::clone(&self.app.core)));
        let checkpoints = tokio::spawn(save_audit_checkpoints(
            Arc::clone(&self.app.core),
            self.audit_checkpoint_interval,
        ));
        let unseal = self.pending.map(|pending| {
            tokio::spawn(unseal_when_reachable(Arc::clone(&self.app.core), pending))
        });
        let rotation = self.rotation.map(|config| {
            tokio::spawn(crate::rotation::schedule(
                Arc::clone(&self.app.core),
                config,
            ))
        });
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let service = {
                let router = router.clone();
                hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(ConnectInfo(peer));
                        let mut router = router.clone();
                        async move { router.call(request.map(axum::body::Body::new)).await }
                    },
                )
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            match &acceptor {
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
                        let _ = watcher.watch(connection.into_owned()).await;
                    });
                }
                None => {
                    let connection =
                        builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
                    let connection = graceful.watch(connection.into_owned());
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                }
            }
        }
        drop(self.listener);
        tidy.abort();
        checkpoints.abort();
        for task in [rotation, unseal].into_iter().flatten() {
            task.abort();
        }
        graceful.shutdown().await;
        // The requests that finished last are on record: save where the chains stand.
        save_audit_checkpoints_once(Arc::clone(&self.app.core)).await;
    }
}

async fn save_audit_checkpoints(core: Arc<Core>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        save_audit_checkpoints_once(Arc::clone(&core)).await;
    }
}

async fn save_audit_checkpoints_once(core: Arc<Core>) {
    let saved = tokio::task::spawn_blocking(move || match core.unsealed() {
        Ok(unsealed) => unsealed.audit.save_checkpoints(),
        Err(_) => Ok(()),
    })
    .await;
    if let Ok(Err(e)) = saved {
        tracing::warn!(error = %e.errors.join("; "), "cannot save the audit checkpoints");
    }
}

/// How often expired tokens are removed.
const TIDY_INTERVAL: Duration = Duration::from_secs(60);

async fn tidy_tokens(core: Arc<Core>) {
    let mut interval = tokio::time::interval(TIDY_INTERVAL);
    loop {
        interval.tick().await;
        let core = Arc::clone(&core);
        let tidied = tokio::task::spawn_blocking(move || {
            let unsealed = core.unsealed().ok()?;
            Some(unsealed.tokens.tidy(std::time::SystemTime::now()))
        })
        .await;
        match tidied {
            Ok(Some(Err(e))) => tracing::warn!(error = %e, "token tidy failed"),
            Ok(Some(Ok(n))) if n > 0 => tracing::info!(removed = n, "expired tokens removed"),
            _ => {}
        }
    }
}
