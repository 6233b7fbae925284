//! tresor as the Kubernetes API server's KMS provider: a plugin serving
//! the KMS plugin gRPC API (`v1beta1`, which the API server has spoken
//! since 1.10, and `v2`, which current ones prefer) on a unix socket. The
//! API server encrypts each Secret with a fresh data key and sends only
//! that key here; the plugin wraps it with a transit key (as `vault:v<n>:`
//! ciphertext) and unwraps it when the Secret is read. The key never
//! leaves tresor; rotating the transit key changes what new data keys are
//! wrapped with, and the old ciphertext still opens.
#![forbid(unsafe_code)]

mod authority;
mod grpc;
pub mod proto;
mod service;

pub use grpc::{Code, GrpcBody, Options, Status, serve};
pub use service::{KeyService, LocalTransit, ServiceError, Wrapped};

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the plugin could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error("the socket {path}: {problem}")]
    Socket { path: PathBuf, problem: String },
    #[error("the health endpoint {addr}: {source}")]
    Health {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the plugin's threads: {0}")]
    Runtime(std::io::Error),
}

/// Binds `socket` (mode 0600: only its owner, the API server's user, may
/// call it), answers until SIGTERM or SIGINT, then removes the socket. A
/// socket left by a plugin that died is replaced; one a live plugin still
/// answers on is refused. With `health`, `GET /healthz` on that address
/// answers 200 once a data key wraps and unwraps, 503 with the reason
/// otherwise.
pub fn run(
    socket: &Path,
    service: Arc<dyn KeyService>,
    options: Options,
    health: Option<SocketAddr>,
) -> Result<(), PluginError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("tresor-kms")
        .enable_all()
        .build()
        .map_err(PluginError::Runtime)?;
    runtime.block_on(async {
        let listener = bind(socket)?;
        if let Some(addr) = health {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| PluginError::Health { addr, source })?;
            tokio::spawn(health_server(listener, Arc::clone(&service), options));
        }
        tracing::info!(socket = %socket.display(), key = %service.describe(), "kms plugin: serving");
        serve(listener, service, options, stopped()).await;
        let _ = std::fs::remove_file(socket);
        tracing::info!("kms plugin: stopped");
        Ok(())
    })
}

fn bind(path: &Path) -> Result<tokio::net::UnixListener, PluginError> {
    let problem = |problem: String| PluginError::Socket {
        path: path.into(),
        problem,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(problem(
                    "another process answers on it; stop it or choose another --socket".into(),
                ));
            }
            std::fs::remove_file(path).map_err(|e| problem(e.to_string()))?;
        }
        Ok(_) => {
            return Err(problem(
                "it exists and is not a socket; choose another --socket".into(),
            ));
        }
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| problem(e.to_string()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| problem(e.to_string()))?;
    Ok(listener)
}

async fn stopped() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// A data key wrapped and unwrapped again: the check behind `/healthz`
/// (the API server's own health check of a v1 plugin does the same).
pub fn check(service: &dyn KeyService) -> Result<String, ServiceError> {
    let key_id = service.key_id()?;
    let wrapped = service.encrypt(b"tresor health check")?;
    let back = service.decrypt(&wrapped.ciphertext)?;
    if back.as_slice() != b"tresor health check" {
        return Err(ServiceError::Internal(
            "a wrapped data key did not unwrap to itself".into(),
        ));
    }
    Ok(key_id)
}

async fn health_server(
    listener: tokio::net::TcpListener,
    service: Arc<dyn KeyService>,
    options: Options,
) {
    use http_body_util::Full;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let service = Arc::clone(&service);
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |req: http::Request<_>| {
                let service = Arc::clone(&service);
                async move {
                    let (status, text) = if req.uri().path() != "/healthz" {
                        (404, "not found\n".to_owned())
                    } else {
                        let probe = tokio::task::spawn_blocking(move || check(&*service));
                        match tokio::time::timeout(options.timeout, probe).await {
                            Ok(Ok(Ok(key_id))) => (200, format!("ok {key_id}\n")),
                            Ok(Ok(Err(e))) => (503, format!("{e}\n")),
                            Ok(Err(_)) => (503, "the health check failed\n".to_owned()),
                            Err(_) => (503, format!("no answer within {:?}\n", options.timeout)),
                        }
                    };
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder()
                            .status(status)
                            .header("content-type", "text/plain")
                            .body(Full::new(bytes::Bytes::from(text)))
                            .expect("a static response builds"),
                    )
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), handler)
                .await;
        });
    }
}
