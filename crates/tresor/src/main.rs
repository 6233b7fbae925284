//! The `tresor` command: wiring only; every feature lives in a library crate.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

#[derive(Parser)]
#[command(name = "tresor", version, about = "Secrets for Kubernetes platforms")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Find committed credentials in files and git history.
    #[cfg(feature = "scan")]
    Scan(cmd::scan::ScanArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "scan")]
        Command::Scan(args) => cmd::scan::run(args),
    }
}
