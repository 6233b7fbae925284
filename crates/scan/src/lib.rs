//! Placeholder replaced by the scanner work in progress.
#![forbid(unsafe_code)]
use std::process::ExitCode;

pub fn run(_paths: &[std::path::PathBuf]) -> ExitCode {
    ExitCode::from(2)
}
