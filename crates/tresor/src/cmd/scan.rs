use clap::Args;
use std::process::ExitCode;

#[derive(Args)]
pub struct ScanArgs {
    /// Files or directories to scan.
    paths: Vec<std::path::PathBuf>,
}

pub fn run(args: ScanArgs) -> ExitCode {
    tresor_scan::run(&args.paths)
}
