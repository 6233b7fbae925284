use crate::failure::{CmdResult, Failure};
use crate::output::outln;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tresor_server::config::Config;
use tresor_server::{CoreSettings, Listener, Server, TokenLimits, dev_core, store_core};

#[derive(Args)]
pub struct ServerArgs {
    /// The server configuration file (TOML).
    #[arg(long, required_unless_present = "dev", conflicts_with = "dev")]
    config: Option<PathBuf>,
    /// In-memory, unsealed, with `secret/` mounted and a root token printed.
    #[arg(long)]
    dev: bool,
    /// The dev server's root token (default: a random one).
    #[arg(
        long,
        requires = "dev",
        env = "TRESOR_DEV_ROOT_TOKEN",
        hide_env_values = true
    )]
    dev_root_token: Option<String>,
    /// The dev server's address.
    #[arg(long, requires = "dev", default_value = "127.0.0.1:8200")]
    listen: SocketAddr,
}

pub fn run(args: ServerArgs) -> CmdResult {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> CmdResult {
    let mut rotation = None;
    let mut pending = None;
    let mut checkpoint_interval = None;
    let (core, listener, banner) = if args.dev {
        let settings = CoreSettings {
            audit_write_timeout: Duration::from_secs(2),
            audit_fsync: false,
            token_limits: TokenLimits::default(),
        };
        let (core, dev) =
            dev_core(settings, args.dev_root_token.as_deref()).map_err(Failure::runtime)?;
        let listener = Listener {
            address: args.listen,
            tls: None,
            max_request_bytes: 32 * 1024 * 1024,
            failed_auth_burst: 20,
            failed_auth_window: Duration::from_secs(60),
        };
        (core, listener, Some(dev))
    } else {
        let path = args.config.expect("clap requires --config without --dev");
        let config = Config::load(&path).map_err(Failure::usage)?;
        let settings = CoreSettings {
            audit_write_timeout: config.audit.write_timeout,
            audit_fsync: config.audit.fsync,
            token_limits: TokenLimits::default(),
        };
        let storage = config.storage.resolve().map_err(Failure::usage)?;
        let started = tokio::task::block_in_place(|| {
            store_core(&storage, config.seal.key_file.as_deref(), settings)
        })
        .map_err(Failure::runtime)?;
        pending = started.pending;
        let core = started.core;
        let tls = match (
            &config.listener.tls_cert_file,
            &config.listener.tls_key_file,
        ) {
            (Some(cert), Some(key)) if !config.listener.tls_disable => {
                Some((cert.clone(), key.clone()))
            }
            _ => None,
        };
        let listener = Listener {
            address: config.listener.address,
            tls,
            max_request_bytes: config.limits.max_request_bytes,
            failed_auth_burst: config.limits.failed_auth_burst,
            failed_auth_window: config.limits.failed_auth_window,
        };
        rotation = config.rotation;
        checkpoint_interval = Some(config.audit.checkpoint_interval);
        (core, listener, None)
    };
    let scheme = if listener.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let mut server = Server::bind(core, listener)
        .await
        .map_err(Failure::runtime)?;
    if let Some(rotation) = rotation {
        server.schedule_rotation(rotation);
    }
    if let Some(pending) = pending {
        server.unseal_once_reachable(pending);
    }
    if let Some(interval) = checkpoint_interval {
        server.save_audit_checkpoints_every(interval);
    }
    let address = server.address();
    if let Some(dev) = banner {
        outln!("WARNING! dev mode is enabled! tresor runs entirely in memory, starts unsealed");
        outln!("with a single unseal key, and loses everything when it stops.\n");
        outln!("    $ export VAULT_ADDR='{scheme}://{address}'\n");
        outln!("Unseal Key: {}", dev.unseal_key.as_str());
        outln!("Root Token: {}\n", dev.root_token.as_str());
    }
    outln!("tresor server listening on {scheme}://{address}");
    let reload = server.reloader();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            reload();
        }
    });
    server.run(shutdown_signal()).await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}
