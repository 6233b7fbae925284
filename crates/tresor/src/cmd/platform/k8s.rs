//! `tresor k8s`: render manifests and deliver them to a cluster.

use super::{cluster_outcome, delivery_failure, failure, load};
use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;
use crate::output::{out, outln};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tresor_core::Access;
use tresor_delivery::{Cluster, DeliveryError, Options, Values};
use tresor_kube::KubeError;
use tresor_kube::providers;
use tresor_kube::render::{self, EncryptionProvider};
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
pub struct RenderArgs {
    /// The platform spec.
    #[arg(short = 'f', long = "filename", default_value = "tresor.yaml")]
    pub file: PathBuf,
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
    /// Also write an EncryptionConfiguration with a fresh key (needs -o).
    #[arg(long, value_enum)]
    pub encryption_config: Option<Provider>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Provider {
    Aescbc,
    Secretbox,
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

fn render_cmd(global: &GlobalArgs, args: RenderArgs) -> CmdResult {
    if args.encryption_config.is_some() && args.output.is_none() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--encryption-config writes a fresh encryption key: give -o DIR so that it goes to a file, not the terminal"
        )));
    }
    let spec = load(&args.file)?;
    let deliveries = from_store(global, &spec, &args.file)?.kubernetes();
    let mut files: Vec<(String, Zeroizing<String>)> = Vec::new();
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
    if let Some(provider) = args.encryption_config {
        let provider = match provider {
            Provider::Aescbc => EncryptionProvider::Aescbc,
            Provider::Secretbox => EncryptionProvider::Secretbox,
        };
        files.push((
            "encryption-config.yaml".into(),
            render::encryption_config(provider),
        ));
    }
    match &args.output {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            for (name, text) in &files {
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
