//! The platform commands: `tresor apply`, `tresor generate`, and with the
//! `kubernetes` feature, `tresor k8s`.

#[cfg(feature = "kubernetes")]
mod k8s;

use crate::failure::{CmdResult, Failure};
use crate::output::{out, outln};
use crate::store::GlobalArgs;
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::SystemTime;
use tresor_core::Access;
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
    let report = push_targets(&spec, &plan);
    out!("{}", report.lines());
    let delivered = deliver(&args, &spec, &plan);
    match report.failure_summary() {
        None => delivered,
        Some(summary) => {
            if let Err(k8s) = delivered {
                eprintln!("kubernetes: FAILED:");
                let _ = k8s.report();
            }
            Err(Failure::runtime(anyhow::anyhow!(summary)))
        }
    }
}

/// Pushes to every AWS and Vault target; a failed push leaves the others
/// going, and the report says what happened to each.
fn push_targets(spec: &Spec, plan: &tresor_platform::Plan) -> tresor_platform::DeliveryReport {
    let mut vault = tresor_vault::VaultDestination::new(&spec.name, plan);
    #[cfg(feature = "aws")]
    let mut aws = tresor_aws::AwsDestination::new(&spec.name);
    let mut destinations: Vec<&mut dyn tresor_platform::Destination> = vec![&mut vault];
    #[cfg(feature = "aws")]
    destinations.push(&mut aws);
    tresor_platform::deliver(spec, plan, &mut destinations)
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

#[cfg(feature = "kubernetes")]
fn deliver(args: &ApplyArgs, spec: &Spec, plan: &tresor_platform::Plan) -> CmdResult {
    match args
        .context
        .clone()
        .or_else(|| spec.kubernetes.context.clone())
    {
        Some(context) => k8s::deliver(spec, plan, Some(context), args.force_conflicts),
        None => {
            not_delivered(&args.file);
            Ok(())
        }
    }
}

#[cfg(not(feature = "kubernetes"))]
fn deliver(args: &ApplyArgs, _spec: &Spec, _plan: &tresor_platform::Plan) -> CmdResult {
    not_delivered(&args.file);
    Ok(())
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
