use crate::failure::{CmdResult, Failure};
use crate::output::outln;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tresor_server::config::Config;
use tresor_server::{Listener, NodeSettings, Server, Timeouts, TokenLimits, dev_node, store_node};

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
    /// Dev only: allow enabling audit devices through the API, writing under
    /// this directory (what `[audit] api_device_dir` does in tresor.toml).
    #[arg(long, requires = "dev")]
    dev_audit_dir: Option<PathBuf>,
    /// Start although an audit log does not match the position the store
    /// saved for it (cut, replaced, or newer than the store): the log is
    /// moved aside and a new chain starts that records where the saved one
    /// stood. Check the old log with `tresor audit verify --checkpoint` first.
    #[arg(long)]
    accept_audit_mismatch: bool,
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
    let mut snapshots = None;
    let mut pending = None;
    let mut checkpoint_interval = None;
    let (core, listener, banner) = if args.dev {
        let mut audit = tresor_audit::BrokerConfig::new(Duration::from_secs(2), false);
        audit.api_dir = args.dev_audit_dir;
        let settings = NodeSettings {
            audit,
            token_limits: TokenLimits::default(),
            kms: None,
            kms_connector: None,
        };
        let (core, dev) =
            dev_node(settings, args.dev_root_token.as_deref()).map_err(Failure::runtime)?;
        let listener = Listener {
            address: args.listen,
            tls: None,
            max_request_bytes: 32 * 1024 * 1024,
            failed_auth_burst: 20,
            failed_auth_window: Duration::from_secs(60),
            timeouts: Timeouts::default(),
            max_connections: 1024,
        };
        (core, listener, Some(dev))
    } else {
        let path = args.config.expect("clap requires --config without --dev");
        let config = Config::load(&path).map_err(Failure::usage)?;
        let mut audit = config.broker();
        audit.accept_mismatch = args.accept_audit_mismatch;
        let kms = configured_kms(&config.seal)?;
        let kms_connector = match &kms {
            // The configured key opens what it sealed, whatever the record says.
            Some(kms) => {
                let kms = std::sync::Arc::clone(kms);
                Some(std::sync::Arc::new(move |_: &tresor_barrier::KmsSeal| {
                    Ok(std::sync::Arc::clone(&kms))
                }) as tresor_core::KmsConnector)
            }
            None => crate::store::kms_connector(),
        };
        let settings = NodeSettings {
            audit,
            token_limits: TokenLimits::default(),
            kms,
            kms_connector,
        };
        let storage = config.storage.resolve().map_err(Failure::usage)?;
        let started = tokio::task::block_in_place(|| {
            store_node(&storage, config.seal.key_file.as_deref(), settings)
        })
        .map_err(Failure::runtime)?;
        pending = started.pending;
        let core = started.node;
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
            timeouts: config.listener.timeouts(),
            max_connections: config.listener.max_connections,
        };
        rotation = config.rotation;
        snapshots = config.snapshot;
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
    if let Some(snapshots) = snapshots {
        server.schedule_snapshots(snapshots);
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

/// The KMS `[seal] kind = "awskms"` names, if any.
#[cfg(feature = "aws")]
fn configured_kms(
    seal: &tresor_server::config::SealConfig,
) -> Result<Option<std::sync::Arc<dyn tresor_barrier::Kms>>, Failure> {
    let (Some(tresor_server::config::SealType::Awskms), Some(key_id), Some(region)) =
        (seal.kind, &seal.key_id, &seal.region)
    else {
        return Ok(None);
    };
    let kms = tresor_awskms::AwsKms::new(tresor_awskms::Settings {
        key_id: key_id.clone(),
        region: region.clone(),
        endpoint: seal.endpoint.clone(),
    })
    .map_err(Failure::runtime)?;
    Ok(Some(std::sync::Arc::new(kms)))
}

#[cfg(not(feature = "aws"))]
fn configured_kms(
    seal: &tresor_server::config::SealConfig,
) -> Result<Option<std::sync::Arc<dyn tresor_barrier::Kms>>, Failure> {
    match seal.kind {
        Some(_) => Err(Failure::usage(anyhow::anyhow!(
            "[seal] kind = \"awskms\" needs a tresor built with AWS support (cargo feature `aws`)"
        ))),
        None => Ok(None),
    }
}
