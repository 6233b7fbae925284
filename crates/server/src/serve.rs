//! Starting, running and stopping the server.

use crate::config::Storage;
use crate::http::{App, router};
use crate::limiter::FailedAuthLimiter;
use crate::tls::{ReloadableCert, TlsError};
use crate::watch::{Activity, Watched};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;
use tresor_barrier::{SealKind, UnsealKey};
use tresor_logical::{Error, Node, NodeSettings};
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
    pub timeouts: Timeouts,
    pub max_connections: usize,
}

/// How long a client may take (see `[listener]` in tresor.toml).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub header: Duration,
    pub body: Duration,
    pub tls_handshake: Duration,
    pub idle: Duration,
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        crate::config::ListenerConfig::default().timeouts()
    }
}

/// What dev mode prints for its user.
pub struct Dev {
    pub root_token: Zeroizing<String>,
    pub unseal_key: Zeroizing<String>,
}

/// A dev node: in-memory storage, initialized, unsealed, `secret/` mounted.
pub fn dev_node(
    settings: NodeSettings,
    root_token: Option<&str>,
) -> Result<(Arc<Node>, Dev), ServeError> {
    let storage: Arc<dyn Backend> = Arc::new(Memory::new());
    let core = Arc::new(Node::new(storage, settings));
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
        .map_err(|e| ServeError::Store(e.to_string()))?;
    Ok((
        core,
        Dev {
            root_token: token,
            unseal_key: share.to_base64(),
        },
    ))
}

/// A node over the embedded store in `dir` (created empty if missing),
/// unsealed with `key_file` when the store is sealed by one.
pub fn embedded_node(
    dir: &Path,
    key_file: Option<&Path>,
    settings: NodeSettings,
) -> Result<Arc<Node>, ServeError> {
    let storage = if Embedded::exists(dir) {
        Embedded::open(dir)
    } else {
        Embedded::create(dir)
    }
    .map_err(|e| ServeError::Store(e.to_string()))?;
    let core = Arc::new(Node::new(Arc::new(storage), settings));
    unseal_by_key_file(&core, key_file)?;
    Ok(core)
}

/// A node over the configured store, and when that store could not be
/// reached at start, the unseal still to do (see
/// [`Server::unseal_once_reachable`]).
pub struct Started {
    pub node: Arc<Node>,
    pub pending: Option<PendingUnseal>,
}

/// The start-up unseal of a store that did not answer yet.
pub struct PendingUnseal {
    key_file: Option<PathBuf>,
}

/// A node over the store `storage` names, unsealed with `key_file` when the
/// store is sealed by one. A PostgreSQL database gets tresor's schema
/// (created or migrated) on first contact; every server on it unseals itself.
/// A PostgreSQL database that does not answer yet does not stop the start:
/// the core comes back sealed, with the unseal pending.
pub fn store_node(
    storage: &Storage,
    key_file: Option<&Path>,
    settings: NodeSettings,
) -> Result<Started, ServeError> {
    match storage {
        Storage::Embedded(dir) => Ok(Started {
            node: embedded_node(dir, key_file, settings)?,
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
    settings: NodeSettings,
) -> Result<Started, ServeError> {
    let defaults = tresor_storage_postgres::Options::default();
    let options = tresor_storage_postgres::Options {
        pool_size: pool_size.unwrap_or(defaults.pool_size),
        connect_timeout: connect_timeout.unwrap_or(defaults.connect_timeout),
        timeout: timeout.unwrap_or(defaults.timeout),
    };
    let storage = tresor_storage_postgres::Postgres::open(url, &options)
        .map_err(|e| ServeError::Store(e.to_string()))?;
    let core = Arc::new(Node::new(Arc::new(storage), settings));
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
    Ok(Started {
        node: core,
        pending,
    })
}

#[cfg(not(feature = "postgres"))]
fn postgres_core(
    _: &str,
    _: Option<usize>,
    _: Option<Duration>,
    _: Option<Duration>,
    _: Option<&Path>,
    _: NodeSettings,
) -> Result<Started, ServeError> {
    Err(ServeError::Store(
        "this tresor was built without PostgreSQL support (cargo feature `postgres`)".into(),
    ))
}

/// Unseals `core` with its key file when the store is sealed by one; a
/// store that cannot be asked is [`ServeError::Unavailable`].
fn unseal_by_key_file(core: &Node, key_file: Option<&Path>) -> Result<(), ServeError> {
    let failed = |e: Error, other: fn(String) -> ServeError| match e {
        Error::Unavailable(why) => ServeError::Unavailable(why),
        other_error => other(other_error.to_string()),
    };
    let Some(config) = core
        .seal_config()
        .map_err(|e| failed(e, ServeError::Store))?
    else {
        return Ok(());
    };
    // A KMS-sealed store opens with its KMS (auto-unseal).
    let key = if config.kms.is_some() {
        core.kms_unseal_key(&config)
            .map_err(|e| failed(e, ServeError::Unseal))?
    } else if let SealKind::KeyFile { path } = &config.seal {
        let file = key_file.unwrap_or(path);
        UnsealKey::read_key_file(file).map_err(|e| ServeError::Unseal(e.to_string()))?
    } else {
        return Ok(());
    };
    core.unseal_with(&key)
        .map_err(|e| failed(e, ServeError::Unseal))
}

/// First and longest pause between two attempts to reach a store that did
/// not answer at start.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Retries the start-up unseal until the store answers, pausing twice as
/// long after each failure, up to [`RETRY_MAX`]. A failure other than an
/// unreachable store (a wrong key file) ends the retries: the server stays
/// sealed and says why in its log.
async fn unseal_when_reachable(core: Arc<Node>, pending: PendingUnseal) {
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
    snapshots: Option<crate::config::SnapshotConfig>,
    pending: Option<PendingUnseal>,
    audit_checkpoint_interval: Duration,
    timeouts: Timeouts,
    connections: Arc<Semaphore>,
}

/// How often audit chains' positions are saved, unless configured.
pub const AUDIT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(5);

/// First and longest pause after a failed accept (out of file descriptors,
/// say): the loop waits instead of spinning and filling the log.
const ACCEPT_PAUSE_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);
/// At most one log line about failed accepts this often.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

impl Server {
    /// Binds the listener and loads the certificate.
    pub async fn bind(node: Arc<Node>, listener: Listener) -> Result<Self, ServeError> {
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
            node,
            limiter: FailedAuthLimiter::new(
                listener.failed_auth_burst,
                listener.failed_auth_window,
                crate::limiter::DEFAULT_CAPACITY,
            ),
            max_request_bytes: listener.max_request_bytes,
            body_timeout: listener.timeouts.body,
        });
        Ok(Self {
            listener: tcp,
            address,
            app,
            cert,
            rotation: None,
            snapshots: None,
            pending: None,
            audit_checkpoint_interval: AUDIT_CHECKPOINT_INTERVAL,
            timeouts: listener.timeouts,
            connections: Arc::new(Semaphore::new(listener.max_connections.max(1))),
        })
    }

    /// Runs the due rotations of a platform spec on a schedule while serving.
    pub fn schedule_rotation(&mut self, config: crate::rotation::RotationConfig) {
        self.rotation = Some(config);
    }

    /// Saves snapshots of the store on a schedule while serving.
    pub fn schedule_snapshots(&mut self, config: crate::config::SnapshotConfig) {
        self.snapshots = Some(config);
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
        let node = Arc::clone(&self.app.node);
        move || {
            if let Some(cert) = &cert
                && let Err(e) = cert.reload()
            {
                tracing::error!(error = %e, "TLS certificate reload failed; keeping the old one");
            }
            if let Ok(unsealed) = node.unsealed() {
                unsealed.audit.reopen();
            }
        }
    }

    /// Serves until `shutdown` completes, then stops accepting and lets the
    /// requests in flight finish, for at most the shutdown grace; the audit
    /// chains' positions are saved last.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let router = router(Arc::clone(&self.app));
        let acceptor = self
            .cert
            .as_ref()
            .map(|cert| tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config())));
        let graceful = GracefulShutdown::new();
        let node = &self.app.node;
        let background = [
            Some(tokio::spawn(tidy_tokens(Arc::clone(node)))),
            Some(tokio::spawn(rotate_transit_keys(Arc::clone(node)))),
            self.snapshots
                .map(|config| tokio::spawn(save_snapshots(Arc::clone(node), config))),
            Some(tokio::spawn(save_audit_checkpoints(
                Arc::clone(node),
                self.audit_checkpoint_interval,
            ))),
            self.pending
                .map(|pending| tokio::spawn(unseal_when_reachable(Arc::clone(node), pending))),
            self.rotation
                .map(|config| tokio::spawn(crate::rotation::schedule(Arc::clone(node), config))),
        ];
        let mut failures = AcceptFailures::default();
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                permit = Arc::clone(&self.connections).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = &mut shutdown => break,
            };
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => {
                        failures.recovered();
                        pair
                    }
                    Err(e) => {
                        tokio::time::sleep(failures.failed(&e)).await;
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
            let connection = Connection {
                watcher: graceful.watcher(),
                timeouts: self.timeouts,
                permit,
            };
            match &acceptor {
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let handshake = self.timeouts.tls_handshake;
                    tokio::spawn(async move {
                        let activity = Activity::new();
                        let tcp = Watched::new(tcp, activity.clone());
                        match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => connection.serve(tls, activity, service).await,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, %peer, "TLS handshake failed")
                            }
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
                None => {
                    tokio::spawn(async move {
                        let activity = Activity::new();
                        let tcp = Watched::new(tcp, activity.clone());
                        connection.serve(tcp, activity, service).await;
                    });
                }
            }
        }
        drop(self.listener);
        for task in background.into_iter().flatten() {
            task.abort();
        }
        if tokio::time::timeout(self.timeouts.shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                grace = ?self.timeouts.shutdown_grace,
                "stopping with requests still in flight after the shutdown grace"
            );
        }
        // The requests that finished last are on record: save where the chains stand.
        save_audit_checkpoints_once(Arc::clone(node)).await;
    }
}

/// One accepted connection's limits and its place among the others.
struct Connection {
    watcher: Watcher,
    timeouts: Timeouts,
    /// Held while the connection lives: `max_connections` of them exist.
    permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves HTTP/1 or HTTP/2 on `io` until the client is done, the
    /// server stops, or no byte moved for the idle timeout.
    async fn serve<IO, S>(self, io: IO, activity: Activity, service: S)
    where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::Service<
                hyper::Request<hyper::body::Incoming>,
                Response = axum::response::Response,
                Error = std::convert::Infallible,
            > + Send
            + 'static,
        S::Future: Send + 'static,
    {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.timeouts.header);
        builder.http2().timer(TokioTimer::new());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let connection = self.watcher.watch(connection);
        tokio::pin!(connection);
        let idle = self.timeouts.idle;
        loop {
            let quiet = activity.quiet_for();
            if quiet >= idle {
                tracing::debug!("closing a connection idle for {quiet:?}");
                break;
            }
            tokio::select! {
                _ = &mut connection => break,
                () = tokio::time::sleep(idle - quiet) => {}
            }
        }
        drop(self.permit);
    }
}

/// Failed accepts in a row: how long to pause, and when to say so.
struct AcceptFailures {
    pause: Duration,
    unreported: u64,
    reported_at: Option<Instant>,
}

impl Default for AcceptFailures {
    fn default() -> Self {
        Self {
            pause: ACCEPT_PAUSE_FIRST,
            unreported: 0,
            reported_at: None,
        }
    }
}

impl AcceptFailures {
    /// Records a failure; returns how long to wait before accepting again.
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.unreported += 1;
        if self
            .reported_at
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY)
        {
            tracing::warn!(error = %error, failures = self.unreported, pause = ?self.pause, "accepting connections fails (out of file descriptors?); pausing");
            self.unreported = 0;
            self.reported_at = Some(Instant::now());
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(ACCEPT_PAUSE_MAX);
        pause
    }

    fn recovered(&mut self) {
        if self.pause != ACCEPT_PAUSE_FIRST {
            tracing::info!(unreported = self.unreported, "accepting connections again");
        }
        *self = Self::default();
    }
}

async fn save_audit_checkpoints(core: Arc<Node>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        save_audit_checkpoints_once(Arc::clone(&core)).await;
    }
}

async fn save_audit_checkpoints_once(core: Arc<Node>) {
    let saved = tokio::task::spawn_blocking(move || match core.unsealed() {
        Ok(unsealed) => unsealed.audit.save_checkpoints(),
        Err(_) => Ok(()),
    })
    .await;
    if let Ok(Err(e)) = saved {
        tracing::warn!(error = %e, "cannot save the audit checkpoints");
    }
}

/// How often expired tokens are removed.
const TIDY_INTERVAL: Duration = Duration::from_secs(60);

/// How often transit keys are checked for a due rotation (Vault's
/// periodic functions run each minute too); the shortest period is an hour.
const TRANSIT_ROTATE_CHECK: Duration = Duration::from_secs(60);

async fn rotate_transit_keys(core: Arc<Node>) {
    let mut interval = tokio::time::interval(TRANSIT_ROTATE_CHECK);
    loop {
        interval.tick().await;
        let core = Arc::clone(&core);
        let rotated = tokio::task::spawn_blocking(move || {
            core.rotate_due_transit_keys(std::time::SystemTime::now())
        })
        .await;
        match rotated {
            Ok(Ok(keys)) => {
                for (mount, key) in keys {
                    tracing::info!(%mount, %key, "transit key rotated (auto_rotate_period)");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "transit auto-rotation failed"),
            Err(_) => {}
        }
    }
}

/// Saves a snapshot every `config.every`, the first one period after the
/// start (a restart loop does not fill the directory).
async fn save_snapshots(core: Arc<Node>, config: crate::config::SnapshotConfig) {
    let start = tokio::time::Instant::now() + config.every;
    let mut interval = tokio::time::interval_at(start, config.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let core = Arc::clone(&core);
        let config = config.clone();
        let saved = tokio::task::spawn_blocking(move || {
            core.save_snapshot(&config.dir, config.keep, std::time::SystemTime::now())
        })
        .await;
        match saved {
            Ok(Ok(Some(saved))) => tracing::info!(
                path = %saved.path.display(),
                keys = saved.manifest.keys,
                bytes = saved.bytes,
                "snapshot saved"
            ),
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "scheduled snapshot failed"),
            Err(_) => {}
        }
    }
}

async fn tidy_tokens(core: Arc<Node>) {
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
