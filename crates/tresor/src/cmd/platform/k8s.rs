//! `tresor k8s`: render manifests and deliver them to a cluster.

use super::{cluster_outcome, delivery_failure, failure, load};
use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;
use crate::output::{out, outln};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use tresor_core::Access;
use tresor_delivery::{Cluster, DeliveryError, Options, Values};
use tresor_kms_plugin::KeyService;
use tresor_kube::KubeError;
use tresor_kube::providers;
use tresor_kube::render::{self, EncryptionProvider, KmsApiVersion, KmsProvider};
use tresor_platform::Spec;
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum K8sCommand {
    /// Print (or write to -o DIR) the Secret manifests exactly as `kubectl
    /// create secret generic ... --dry-run=client -o yaml` would, from the
    /// values in the store; optionally RBAC, env snippets and an
    /// EncryptionConfiguration.
    Render(RenderArgs),
    /// Server-side apply the Secrets (field manager `tresor`), restart the
    /// consumers of Secrets that changed, prune on request.
    Apply(K8sApplyArgs),
    /// Serve the API server's KMS plugin API (v1beta1 and v2) on a unix
    /// socket, wrapping its data keys with a transit key of the store.
    ///
    /// The store (--store, unsealed by its key file or TRESOR_UNSEAL_KEYS)
    /// is opened read-only for each call, so `tresor transit rotate` can
    /// run beside the plugin. Point the API server at the socket with the
    /// EncryptionConfiguration of `tresor k8s render --kms`. Stops on
    /// SIGTERM or SIGINT and removes the socket.
    KmsPlugin(KmsPluginArgs),
    /// Find what breaks delivery: declared Secrets missing or different from
    /// the store, consumers whose service account may not read their Secret,
    /// consumers running pods older than their Secret. Exits 1 on findings.
    Doctor(DoctorArgs),
}

#[derive(Args)]
pub struct DoctorArgs {
    /// The platform spec.
    #[arg(short = 'f', long = "filename", default_value = "tresor.yaml")]
    pub file: PathBuf,
    /// The kubeconfig context (default: the spec's `kubernetes.context`, then the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Restart the consumers whose pods predate their Secret's last change.
    #[arg(long)]
    pub fix: bool,
}

#[derive(Args)]
pub struct KmsPluginArgs {
    /// The unix socket to serve on (the API server's `endpoint: unix://PATH`).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// The transit key that wraps data keys.
    #[arg(long, value_name = "NAME")]
    pub key: String,
    /// The transit mount holding the key.
    #[arg(long, default_value = "transit")]
    pub mount: String,
    /// Longest one call may take (a store another command is writing is
    /// waited for up to this long).
    #[arg(long, default_value = "3s")]
    pub timeout: humantime::Duration,
    /// Also answer `GET /healthz` on this address (200 once a data key
    /// wraps and unwraps, 503 with the reason otherwise).
    #[arg(long, value_name = "ADDR")]
    pub healthz: Option<std::net::SocketAddr>,
}

#[derive(Args)]
pub struct RenderArgs {
    /// The platform spec (default tresor.yaml; with --kms alone, none is needed).
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
    /// Write one file per manifest into this directory (mode 0600) instead of printing.
    #[arg(short = 'o', long = "output-dir")]
    pub output: Option<PathBuf>,
    /// Also render a ServiceAccount, Role and RoleBinding per consumer,
    /// granting `get` on exactly the Secrets it consumes.
    #[arg(long)]
    pub rbac: bool,
    /// Also render each consumer's env entries (`secretKeyRef`).
    #[arg(long)]
    pub env: bool,
    /// Also write an EncryptionConfiguration: with a fresh key (aescbc,
    /// secretbox; needs -o), or naming tresor's KMS plugin (kms).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "kms", value_name = "PROVIDER")]
    pub encryption_config: Option<Provider>,
    /// The KMS EncryptionConfiguration (as `--encryption-config kms`): the
    /// API server encrypts Secrets through `tresor k8s kms-plugin`.
    #[arg(long)]
    pub kms: bool,
    /// The plugin's socket, as `tresor k8s kms-plugin --socket` serves it.
    #[arg(long, default_value = "/var/run/tresor/kms.sock", value_name = "PATH")]
    pub kms_socket: String,
    /// The provider's name: part of every stored value's prefix; keep it once in use.
    #[arg(long, default_value = "tresor")]
    pub kms_name: String,
    /// The KMS API the API server speaks: v1 (all versions; off by default
    /// from 1.29) or v2 (1.27 and later).
    #[arg(long, value_enum, default_value = "v1")]
    pub kms_api_version: KmsApi,
    /// How long the API server waits for one plugin call.
    #[arg(long, default_value = "3s")]
    pub kms_timeout: humantime::Duration,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Provider {
    Aescbc,
    Secretbox,
    Kms,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KmsApi {
    V1,
    V2,
}

#[derive(Args)]
pub struct K8sApplyArgs {
    /// The platform spec.
    #[arg(short = 'f', long = "filename", default_value = "tresor.yaml")]
    pub file: PathBuf,
    /// The kubeconfig context (default: the spec's `kubernetes.context`, then the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Delete this platform's Secrets that the spec no longer declares.
    #[arg(long)]
    pub prune: bool,
    /// Also apply each consumer's ServiceAccount, Role and RoleBinding.
    #[arg(long)]
    pub rbac: bool,
    /// Take over fields that another field manager owns.
    #[arg(long)]
    pub force_conflicts: bool,
}

pub fn run(global: &GlobalArgs, command: K8sCommand) -> CmdResult {
    match command {
        K8sCommand::Render(args) => render_cmd(global, args),
        K8sCommand::KmsPlugin(args) => kms_plugin(global, args),
        K8sCommand::Apply(args) => {
            let spec = load(&args.file)?;
            let values = from_store(global, &spec, &args.file)?;
            let options = Options {
                cluster: Some(Cluster {
                    context: args.context.or_else(|| spec.kubernetes.context.clone()),
                    prune: args.prune,
                    rbac: args.rbac,
                    force_conflicts: args.force_conflicts,
                }),
                targets: false,
            };
            let report = tresor_delivery::deliver(&values, &options);
            cluster_outcome(report.kubernetes, &args.file)
        }
        K8sCommand::Doctor(args) => doctor(global, args),
    }
}

fn doctor(global: &GlobalArgs, args: DoctorArgs) -> CmdResult {
    let spec = load(&args.file)?;
    let deliveries = from_store(global, &spec, &args.file)?.kubernetes();
    let context = args.context.or_else(|| spec.kubernetes.context.clone());
    let file = args.file.display().to_string();
    let runtime = tresor_kube::runtime()?;
    let (findings, fixed) = runtime
        .block_on(async {
            let client = tresor_kube::connect(context.as_deref()).await?;
            let findings =
                tresor_kube::doctor(&client, context.as_deref(), &spec, &deliveries, &file).await?;
            let mut stale: Vec<_> = findings.iter().filter_map(|f| f.stale.clone()).collect();
            stale.sort();
            stale.dedup();
            let fixed = if args.fix {
                tresor_kube::fix(&client, context.as_deref(), &stale, SystemTime::now()).await?
            } else {
                Vec::new()
            };
            Ok::<_, KubeError>((findings, fixed))
        })
        .map_err(kube_failure)?;
    for finding in &findings {
        outln!("{}", finding.message);
    }
    for line in &fixed {
        outln!("{line}");
    }
    let open = findings
        .iter()
        .filter(|f| !(args.fix && f.stale.is_some()))
        .count();
    if open == 0 {
        if findings.is_empty() {
            outln!("No problems found.");
        }
        return Ok(());
    }
    Err(Failure::runtime(anyhow::anyhow!(
        "{open} problem{} found; each line above says what to run",
        if open == 1 { "" } else { "s" }
    )))
}

pub(crate) fn kube_failure(error: KubeError) -> Failure {
    match error {
        KubeError::Config { .. } | KubeError::Conflict { .. } => Failure::usage(error),
        _ => Failure::runtime(error),
    }
}

/// The values of every declared Secret, read from the store: rendering and
/// delivering never generate anything. The store is closed again at once.
fn from_store<'a>(global: &GlobalArgs, spec: &'a Spec, file: &Path) -> Result<Values<'a>, Failure> {
    let f = file.display();
    let opened = tresor_platform::open_store(spec, false, Access::ReadOnly, &global.locking)
        .map_err(failure)?
        .ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "the spec's store does not exist yet; run `tresor apply -f {f}` first"
            ))
        })?;
    let kubernetes = spec.secrets.iter().filter(|s| s.targets.kubernetes);
    Values::stored(spec, opened.store(), kubernetes).map_err(|e| match e {
        e @ (DeliveryError::MissingSecret(_) | DeliveryError::MissingKey { .. }) => {
            Failure::usage(anyhow::anyhow!("{e}; run `tresor apply -f {f}` first"))
        }
        other => delivery_failure(other),
    })
}

fn kms_plugin(global: &GlobalArgs, args: KmsPluginArgs) -> CmdResult {
    // Refused calls are logged (never a key or a data key) for whoever
    // runs the plugin beside the API server.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    let unseal = crate::store::unseal(global)?;
    let timeout: std::time::Duration = args.timeout.into();
    let service = tresor_kms_plugin::LocalTransit::new(
        global.store.clone(),
        unseal,
        &args.mount,
        &args.key,
        timeout,
    );
    // A key that cannot be used is said at once; the plugin still serves,
    // answering UNAVAILABLE until the store can be opened.
    match tresor_kms_plugin::check(&service) {
        Ok(key_id) => eprintln!("kms plugin: {} works ({key_id})", service.describe()),
        Err(tresor_kms_plugin::ServiceError::Misconfigured(why)) => {
            return Err(Failure::usage(anyhow::anyhow!(why)));
        }
        Err(e) => eprintln!(
            "kms plugin: WARNING: {e}; serving anyway, every call fails until it is fixed"
        ),
    }
    let options = tresor_kms_plugin::Options {
        timeout,
        ..tresor_kms_plugin::Options::default()
    };
    eprintln!("kms plugin: serving on {}", args.socket.display());
    tresor_kms_plugin::run(&args.socket, Arc::new(service), options, args.healthz)
        .map_err(Failure::runtime)
}

fn render_cmd(global: &GlobalArgs, args: RenderArgs) -> CmdResult {
    let provider = match (args.encryption_config, args.kms) {
        (None, true) => Some(Provider::Kms),
        (Some(p), true) if p != Provider::Kms => {
            return Err(Failure::usage(anyhow::anyhow!(
                "--kms asks for the KMS EncryptionConfiguration; drop it or the other --encryption-config provider"
            )));
        }
        (p, _) => p,
    };
    if provider.is_some_and(|p| p != Provider::Kms) && args.output.is_none() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--encryption-config writes a fresh encryption key: give -o DIR so that it goes to a file, not the terminal"
        )));
    }
    let file = args
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from("tresor.yaml"));
    let mut files: Vec<(String, Zeroizing<String>)> = Vec::new();
    // The KMS configuration alone needs no spec.
    let only_kms = provider == Some(Provider::Kms) && args.file.is_none() && !file.exists();
    if !only_kms {
        render_spec(global, &args, &file, &mut files)?;
    }
    if let Some(provider) = provider {
        let text = match provider {
            Provider::Aescbc => render::encryption_config(EncryptionProvider::Aescbc),
            Provider::Secretbox => render::encryption_config(EncryptionProvider::Secretbox),
            Provider::Kms => Zeroizing::new(render::kms_encryption_config(&KmsProvider {
                name: args.kms_name.clone(),
                socket: args.kms_socket.clone(),
                api_version: match args.kms_api_version {
                    KmsApi::V1 => KmsApiVersion::V1,
                    KmsApi::V2 => KmsApiVersion::V2,
                },
                timeout: args.kms_timeout.into(),
                cache_size: 1000,
            })),
        };
        files.push(("encryption-config.yaml".into(), text));
    }
    write_files(&args, &files)
}

fn render_spec(
    global: &GlobalArgs,
    args: &RenderArgs,
    file: &Path,
    files: &mut Vec<(String, Zeroizing<String>)>,
) -> CmdResult {
    let spec = load(file)?;
    let deliveries = from_store(global, &spec, file)?.kubernetes();
    for d in &deliveries {
        let data: Vec<(String, &[u8])> = d
            .data
            .iter()
            .map(|(k, v)| (k.clone(), v.as_slice()))
            .collect();
        let yaml = render::secret_yaml(&d.name, d.namespace.as_deref(), &data);
        let prefix = d
            .namespace
            .as_deref()
            .map(|n| format!("{n}."))
            .unwrap_or_default();
        files.push((format!("{prefix}{}.secret.yaml", d.name), yaml));
    }
    if args.rbac {
        files.push(("rbac.yaml".into(), Zeroizing::new(render::rbac_yaml(&spec))));
    }
    if args.env {
        files.push(("env.yaml".into(), Zeroizing::new(render::env_yaml(&spec))));
    }
    // Consumers of secrets in AWS or Vault: CSI classes, Agent patches, Vault policies.
    let vault_address = std::env::var("VAULT_ADDR").ok().filter(|a| !a.is_empty());
    let nodes = providers::secret_provider_classes(&spec, vault_address.as_deref())
        .into_iter()
        .chain(providers::agent_patches(&spec));
    for (name, node) in nodes {
        files.push((name, Zeroizing::new(node.to_yaml())));
    }
    for (name, hcl) in providers::vault_policies(&spec) {
        files.push((name, Zeroizing::new(hcl)));
    }
    Ok(())
}

fn write_files(args: &RenderArgs, files: &[(String, Zeroizing<String>)]) -> CmdResult {
    match &args.output {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for (name, text) in files {
                let path = dir.join(name);
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&path)?;
                file.write_all(text.as_bytes())?;
                outln!("wrote {}", path.display());
            }
        }
        None => {
            for (i, (name, text)) in files.iter().enumerate() {
                if i > 0 {
                    out!("---\n");
                }
                if name.ends_with(".hcl") {
                    // A Vault policy is not YAML: it goes out as a comment.
                    for line in text.lines() {
                        outln!("# {line}");
                    }
                } else {
                    out!("{}", text.as_str());
                }
            }
        }
    }
    Ok(())
}
