//! `tresor scan`: argument parsing, baseline handling and exit codes; the
//! scanning itself lives in the `tresor-scan` crate.
use clap::{Args, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tresor_scan::{Baseline, Config, Format, History, Refs, Report, ScanError, Scanner, Target};

/// Exit code when the scan found secrets.
const FOUND: u8 = 1;
/// Exit code when the scan could not run.
const ERROR: u8 = 2;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ScanArgs {
    #[command(subcommand)]
    command: Option<ScanCommand>,
    /// Files or directories to scan (default `.`); `-` reads standard input.
    paths: Vec<PathBuf>,
    /// Scan the git history of the current repository: every unique blob once.
    #[arg(long, conflicts_with_all = ["staged", "paths"])]
    git: bool,
    /// With --git: only what is not reachable from this revision.
    #[arg(long, value_name = "REV", requires = "git")]
    since: Option<String>,
    /// With --git: scan this branch instead of HEAD.
    #[arg(long, value_name = "BRANCH", requires = "git", conflicts_with = "all")]
    branch: Option<String>,
    /// With --git: scan every ref (branches, tags, remotes).
    #[arg(long, requires = "git")]
    all: bool,
    /// Scan what is staged for the next commit (used by the pre-commit hook).
    #[arg(long, conflicts_with = "paths")]
    staged: bool,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Ignore findings recorded in FILE; if FILE does not exist, record the current findings in it.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Rewrite the --baseline file with the current findings.
    #[arg(long, requires = "baseline")]
    update_baseline: bool,
    /// Configuration file (default: .tresor-scan.toml in the current directory, if any).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Never show a progress bar.
    #[arg(long, short)]
    quiet: bool,
    /// Print the built-in rules (id, severity, description) and exit.
    // Not `exclusive`: that would refuse it beside the global options
    // a developer's TRESOR_* environment sets.
    #[arg(long, conflicts_with_all = ["paths", "git", "staged", "output", "baseline", "config"])]
    list_rules: bool,
}

#[derive(Subcommand)]
enum ScanCommand {
    /// Install a git pre-commit hook that runs `tresor scan --staged`.
    InstallHook {
        /// Replace an existing pre-commit hook.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
    Sarif,
}

pub fn run(args: ScanArgs) -> ExitCode {
    let result = match &args.command {
        Some(ScanCommand::InstallHook { force }) => install_hook(*force),
        None if args.list_rules => list_rules(),
        None => scan(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(ScanError::Output(e)) if crate::output::reader_gone(&e) => {
            ExitCode::from(crate::output::READER_GONE)
        }
        Err(e) => {
            eprintln!("tresor scan: error: {e}");
            ExitCode::from(ERROR)
        }
    }
}

fn list_rules() -> Result<u8, ScanError> {
    let mut out = std::io::stdout().lock();
    for rule in tresor_scan::builtin_rules() {
        writeln!(
            out,
            "{:<40} {:<8} {}",
            rule.id,
            rule.severity.as_str(),
            rule.description
        )
        .map_err(ScanError::Output)?;
    }
    Ok(0)
}

fn install_hook(force: bool) -> Result<u8, ScanError> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("tresor"));
    let hook = tresor_scan::install_hook(Path::new("."), &exe, force)?;
    eprintln!("installed {}", hook.display());
    Ok(0)
}

fn scan(args: &ScanArgs) -> Result<u8, ScanError> {
    let config = load_config(args)?;
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let scanner = Scanner::new(config, progress)?;
    let mut report = scanner.scan(&target(args))?;
    for warning in &report.warnings {
        eprintln!("tresor scan: warning: {warning}");
    }
    let suppressed = match &args.baseline {
        Some(path) => apply_baseline(path, args.update_baseline, &mut report)?,
        None => 0,
    };
    write_report(args, &report)?;
    summarize(&report, suppressed);
    Ok(if report.findings.is_empty() { 0 } else { FOUND })
}

fn target(args: &ScanArgs) -> Target {
    if args.git {
        let refs = match (&args.branch, args.all) {
            (Some(branch), _) => Refs::Branch(branch.clone()),
            (None, true) => Refs::All,
            (None, false) => Refs::Head,
        };
        Target::History(History {
            since: args.since.clone(),
            refs,
        })
    } else if args.staged {
        Target::Staged
    } else if args.paths.is_empty() {
        Target::Paths(vec![PathBuf::from(".")])
    } else {
        Target::Paths(args.paths.clone())
    }
}

fn load_config(args: &ScanArgs) -> Result<Config, ScanError> {
    match &args.config {
        Some(path) => Config::load(path),
        None if Path::new(tresor_scan::CONFIG_FILE).is_file() => {
            Config::load(Path::new(tresor_scan::CONFIG_FILE))
        }
        None => Ok(Config::default()),
    }
}

/// Records the findings when the baseline is new (or on --update-baseline),
/// otherwise removes the known ones. Returns how many were suppressed.
fn apply_baseline(path: &Path, update: bool, report: &mut Report) -> Result<usize, ScanError> {
    if update || !path.exists() {
        Baseline::from_findings(&report.findings).save(path)?;
        let recorded = report.findings.len();
        eprintln!(
            "tresor scan: recorded {recorded} finding(s) in baseline {}",
            path.display()
        );
        report.findings.clear();
        return Ok(recorded);
    }
    Ok(Baseline::load(path)?.suppress(&mut report.findings))
}

fn write_report(args: &ScanArgs, report: &Report) -> Result<(), ScanError> {
    let format = match args.format {
        OutputFormat::Text => Format::Text,
        OutputFormat::Json => Format::Json,
        OutputFormat::Sarif => Format::Sarif,
    };
    match &args.output {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|source| ScanError::Write {
                path: path.clone(),
                source,
            })?;
            let mut out = std::io::BufWriter::new(file);
            tresor_scan::write_report(format, &report.findings, &mut out)
                .and_then(|()| out.flush())
                .map_err(|source| ScanError::Write {
                    path: path.clone(),
                    source,
                })
        }
        None => {
            let mut out = std::io::stdout().lock();
            tresor_scan::write_report(format, &report.findings, &mut out).map_err(ScanError::Output)
        }
    }
}

fn summarize(report: &Report, suppressed: usize) {
    let mb = report.bytes as f64 / 1e6;
    let mut line = format!(
        "tresor scan: {} finding(s) in {} file(s), {mb:.1} MB",
        report.findings.len(),
        report.files
    );
    if suppressed > 0 {
        line.push_str(&format!(", {suppressed} suppressed by the baseline"));
    }
    eprintln!("{line}");
}
