//! `tresor status`: a server's seal status, as `vault status` prints it.

use crate::cmd::target;
use crate::failure::Failure;
use crate::output::{cell, print_json, table};
use crate::store::{Format, GlobalArgs};
use clap::Args;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, env = "TRESOR_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Exits 0 when unsealed, 2 when sealed (as `vault status` does, so
/// scripts can wait on it), 1 when the server cannot be asked.
pub fn run(global: &GlobalArgs) -> ExitCode {
    let sealed = target::require_remote(global, "status").and_then(|client| {
        let status = client.seal_status().map_err(Failure::from)?;
        print(global, &status);
        Ok(status["sealed"].as_bool().unwrap_or(true))
    });
    match sealed {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(2),
        Err(failure) => failure.report(),
    }
}

/// Prints a `sys/seal-status` answer.
pub fn print(global: &GlobalArgs, status: &Value) {
    if global.format == Format::Json {
        print_json(status);
        return;
    }
    let sealed = status["sealed"].as_bool().unwrap_or(true);
    let mut rows = vec![
        vec!["Seal Type".into(), cell(&status["type"])],
        vec!["Initialized".into(), cell(&status["initialized"])],
        vec!["Sealed".into(), cell(&status["sealed"])],
        vec!["Total Shares".into(), cell(&status["n"])],
        vec!["Threshold".into(), cell(&status["t"])],
    ];
    if sealed {
        rows.push(vec![
            "Unseal Progress".into(),
            format!("{}/{}", cell(&status["progress"]), cell(&status["t"])),
        ]);
        rows.push(vec!["Unseal Nonce".into(), cell(&status["nonce"])]);
    }
    rows.push(vec!["Version".into(), cell(&status["version"])]);
    rows.push(vec!["Storage Type".into(), cell(&status["storage_type"])]);
    rows.push(vec!["HA Enabled".into(), "false".into()]);
    print!("{}", table(&["Key", "Value"], &rows));
}
