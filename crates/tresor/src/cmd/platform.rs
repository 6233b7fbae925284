//! The platform commands: `tresor apply`, `tresor generate`, and with the
//! `kubernetes` feature, `tresor k8s`.

#[cfg(feature = "kubernetes")]
mod k8s;

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;
use crate::output::{out, outln};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::SystemTime;
use tresor_core::Access;
use tresor_delivery::{Cluster, DeliveryError, Kubernetes, Options, Values};
use tresor_platform::generate::Class;
use tresor_platform::{Generator, PlatformError, Spec};

#[derive(Subcommand)]
pub enum PlatformCommand {
    /// Store every secret the platform spec declares: generate what is
    /// missing, keep what exists, and print the plan (never a value).
    Apply(ApplyArgs),
    /// Print one strong value: base64:N (N random bytes, as `openssl rand
    /// -base64 N`), hex:N, alnum:N, uuid, password or password:N.
    Generate(GenerateArgs),
    /// Deliver the platform's secrets to Kubernetes: render manifests, apply them.
    #[cfg(feature = "kubernetes")]
    #[command(subcommand)]
    K8s(k8s::K8sCommand),
}

#[derive(Args)]
pub struct ApplyArgs {
    /// The platform spec.
    #[arg(short = 'f', long = "filename", default_value = "tresor.yaml")]
    pub file: PathBuf,
    /// Show the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also deliver to this kubeconfig context (default: the spec's `kubernetes.context`).
    #[cfg(feature = "kubernetes")]
    #[arg(long)]
    pub context: Option<String>,
    /// Take over Secret fields that another field manager owns (a value
    /// edited with kubectl since), as `kubectl apply --server-side --force-conflicts`.
    #[cfg(feature = "kubernetes")]
    #[arg(long)]
    pub force_conflicts: bool,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// The generator, as in tresor.yaml: base64:32, hex:32, alnum:40, uuid, password:40.
    pub generator: String,
    /// Password classes, separated by commas: lower, upper, digits, symbols.
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<String>,
    /// The symbols a password draws from.
    #[arg(long, allow_hyphen_values = true)]
    pub symbols: Option<String>,
    /// Leave out characters easily confused (0 O 1 l I |).
    #[arg(long)]
    pub no_ambiguous: bool,
}

pub fn run(global: &GlobalArgs, command: PlatformCommand) -> CmdResult {
    match command {
        PlatformCommand::Apply(args) => apply(global, args),
        PlatformCommand::Generate(args) => generate(args),
        #[cfg(feature = "kubernetes")]
        PlatformCommand::K8s(command) => k8s::run(global, command),
    }
}

pub(crate) fn failure(error: PlatformError) -> Failure {
    if error.is_usage() {
        Failure::usage(error)
    } else {
        Failure::runtime(error)
    }
}

pub(crate) fn load(file: &std::path::Path) -> Result<Spec, Failure> {
    tresor_platform::load(file).map_err(|e| failure(e.into()))
}

fn apply(global: &GlobalArgs, args: ApplyArgs) -> CmdResult {
    let spec = load(&args.file)?;
    check_features(&spec)?;
    let opened =
        tresor_platform::open_store(&spec, !args.dry_run, Access::WriteOnDemand, &global.locking)
            .map_err(failure)?;
    if let Some(key_file) = opened.as_ref().and_then(|o| o.created_key_file.as_ref()) {
        eprintln!(
            "Created the store for {}; its key file is {} (mode 0600, outside the repository).\nBack the key file up: without it the secrets cannot be read.",
            args.file.display(),
            key_file.display()
        );
    }
    let plan = tresor_platform::plan(&spec, opened.as_ref().map(|o| o.store()), SystemTime::now())
        .map_err(failure)?;
    out!("{}", plan.table());
    for secret in &spec.secrets {
        if let Some(refused) = tresor_rotation::refusal(&spec, secret) {
            eprintln!("Warning: {refused}.");
        }
    }
    if args.dry_run {
        outln!("{}\nDry run: nothing was written.", plan.summary());
        return Ok(());
    }
    let opened = opened.expect("created above unless dry run");
    if plan.is_noop() {
        outln!("{}", plan.summary());
    } else {
        let outcome = plan.apply(opened.store()).map_err(failure)?;
        outln!(
            "Applied: {} created, {} updated, {} unchanged.",
            outcome.created,
            outcome.updated,
            outcome.unchanged
        );
    }
    let values = Values::planned(&spec, &plan);
    // Delivering reads nothing from the store: other commands may use it meanwhile.
    drop(opened);
    let options = Options {
        cluster: cluster(&args, &spec),
        targets: true,
    };
    let report = tresor_delivery::deliver(&values, &options);
    out!("{}", report.targets.lines());
    let delivered = cluster_outcome(report.kubernetes, &args.file);
    match report.targets.counts() {
        None => delivered,
        Some(counts) => {
            if let Err(k8s) = delivered {
                eprintln!("kubernetes: FAILED:");
                let _ = k8s.report();
            }
            Err(Failure::runtime(anyhow::anyhow!(
                "delivery incomplete ({counts}): the store holds every value, and each target holds either a secret's new values or its former ones (lines above). Fix the cause and run `tresor apply` again: it pushes only what differs"
            )))
        }
    }
}

/// The cluster `tresor apply` also delivers to: `--context`, else the spec's.
#[cfg(feature = "kubernetes")]
fn cluster(args: &ApplyArgs, spec: &Spec) -> Option<Cluster> {
    let context = args
        .context
        .clone()
        .or_else(|| spec.kubernetes.context.clone())?;
    Some(Cluster {
        context: Some(context),
        force_conflicts: args.force_conflicts,
        ..Cluster::default()
    })
}

#[cfg(not(feature = "kubernetes"))]
fn cluster(_args: &ApplyArgs, _spec: &Spec) -> Option<Cluster> {
    None
}

/// Prints what the cluster said, or that nothing went to one.
pub(crate) fn cluster_outcome(
    kubernetes: Result<Kubernetes, DeliveryError>,
    file: &std::path::Path,
) -> CmdResult {
    match kubernetes {
        Ok(Kubernetes::Applied(lines)) => {
            for line in lines {
                outln!("{line}");
            }
            Ok(())
        }
        Ok(Kubernetes::NoCluster | Kubernetes::Unsupported) => {
            not_delivered(file);
            Ok(())
        }
        Err(e) => Err(delivery_failure(e)),
    }
}

/// A delivery's failure: exit 2 when the input was at fault (the
/// kubeconfig, a field another manager owns), else 1.
pub(crate) fn delivery_failure(error: DeliveryError) -> Failure {
    match error {
        #[cfg(feature = "kubernetes")]
        DeliveryError::Kube(e) => k8s::kube_failure(*e),
        e if e.is_usage() => Failure::usage(e),
        e => Failure::runtime(e),
    }
}

/// Refuses, before anything is written, a spec naming AWS targets when this
/// binary cannot reach AWS.
fn check_features(spec: &Spec) -> Result<(), Failure> {
    if cfg!(feature = "aws") {
        return Ok(());
    }
    match spec.secrets.iter().find(|s| s.targets.aws.is_some()) {
        Some(s) => Err(Failure::usage(anyhow::anyhow!(
            "secret `{}` is delivered to AWS Secrets Manager, but this tresor was built without the `aws` feature; build it with `--features aws`",
            s.name
        ))),
        None => Ok(()),
    }
}

fn not_delivered(file: &std::path::Path) {
    let f = file.display();
    outln!(
        "Stored only: the spec names no cluster (kubernetes.context). Render manifests with `tresor k8s render -f {f} -o DIR`, or deliver with `tresor k8s apply -f {f} --context CONTEXT`."
    );
}

fn generate(args: GenerateArgs) -> CmdResult {
    let mut generator = Generator::parse(&args.generator).map_err(Failure::usage)?;
    let options = !args.classes.is_empty() || args.symbols.is_some() || args.no_ambiguous;
    match &mut generator {
        Generator::Password(p) => {
            if !args.classes.is_empty() {
                p.classes = args
                    .classes
                    .iter()
                    .map(|c| {
                        Class::parse(c).ok_or_else(|| {
                            Failure::usage(tresor_platform::GeneratorError::BadClass(c.clone()))
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            if let Some(symbols) = args.symbols {
                p.symbols = symbols;
            }
            p.no_ambiguous = args.no_ambiguous;
        }
        _ if options => {
            return Err(Failure::usage(anyhow::anyhow!(
                "--classes, --symbols and --no-ambiguous apply to password generators only"
            )));
        }
        _ => {}
    }
    generator.check().map_err(Failure::usage)?;
    if let Some(why) = generator.weakness() {
        eprintln!("Warning: {why}.");
    }
    let value = generator.generate();
    outln!("{}", *value);
    Ok(())
}
