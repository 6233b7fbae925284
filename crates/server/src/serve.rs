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
    unseal_by_key_file(Arc::new(Core::new(Arc::new(storage), settings)), key_file)
}

/// A core over the store `storage` names, unsealed with `key_file` when the
/// store is sealed by one. A PostgreSQL database gets tresor's schema
/// (created or migrated) on first contact; every server on it unseals itself.
pub fn store_core(
    storage: &Storage,
    key_file: Option<&Path>,
    settings: CoreSettings,
) -> Result<Arc<Core>, ServeError> {
    match storage {
        Storage::Embedded(dir) => embedded_core(dir, key_file, settings),
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
) -> Result<Arc<Core>, ServeError> {
    let defaults = tresor_storage_postgres::Options::default();
    let options = tresor_storage_postgres::Options {
        pool_size: pool_size.unwrap_or(defaults.pool_size),
        connect_timeout: connect_timeout.unwrap_or(defaults.connect_timeout),
        timeout: timeout.unwrap_or(defaults.timeout),
    };
    let storage = tresor_storage_postgres::Postgres::connect(url, &options)
        .map_err(|e| ServeError::Store(e.to_string()))?;
    unseal_by_key_file(Arc::new(Core::new(Arc::new(storage), settings)), key_file)
}

#[cfg(not(feature = "postgres"))]
fn postgres_core(
    _: &str,
    _: Option<usize>,
    _: Option<Duration>,
    _: Option<Duration>,
    _: Option<&Path>,
    _: CoreSettings,
) -> Result<Arc<Core>, ServeError> {
    Err(ServeError::Store(
        "this tresor was built without PostgreSQL support (cargo feature `postgres`)".into(),
    ))
}

fn unseal_by_key_file(core: Arc<Core>, key_file: Option<&Path>) -> Result<Arc<Core>, ServeError> {
    let config = core
        .seal_config()
        .map_err(|e| ServeError::Store(e.errors.join("; ")))?;
    if let Some(SealKind::KeyFile { path }) = config.map(|c| c.seal) {
        let file = key_file.unwrap_or(&path);
        let key = UnsealKey::read_key_file(file).map_err(|e| ServeError::Unseal(e.to_string()))?;
        core.unseal_with(&key)
            .map_err(|e| ServeError::Unseal(e.errors.join("; ")))?;
    }
    Ok(core)
}

/// A running server's handles.
pub struct Server {
    listener: TcpListener,
    address: SocketAddr,
    app: Arc<App>,
    cert: Option<Arc<ReloadableCert>>,
    rotation: Option<crate::rotation::RotationConfig>,
}

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
        })
    }

    /// Runs the due rotations of a platform spec on a schedule while serving.
    pub fn schedule_rotation(&mut self, config: crate::rotation::RotationConfig) {
        self.rotation = Some(config);
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
        if let Some(rotation) = rotation {
            rotation.abort();
        }
        graceful.shutdown().await;
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
