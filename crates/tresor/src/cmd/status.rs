//! `tresor status`: a server's seal status, as `vault status` prints it;
//! with `-f tresor.yaml`, the rotation dashboard of a platform's secrets.

use crate::failure::Failure;
use crate::global::{Format, GlobalArgs};
use crate::output::{cell, print_json, table};
use crate::output::{out, outln};
use crate::store;
use clap::Args;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;
use tresor_core::Access;
use tresor_rotation::{Row, short_duration};

#[derive(Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, env = "TRESOR_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Instead of the server's seal status: the rotation status of every
    /// secret this platform spec declares (age, last rotated, next due).
    #[arg(short = 'f', long = "filename")]
    pub file: Option<PathBuf>,
}

/// `tresor status -f tresor.yaml`: one row per secret, exit 0.
pub fn rotation(global: &GlobalArgs, file: &Path) -> ExitCode {
    match dashboard(global, file) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn dashboard(global: &GlobalArgs, file: &Path) -> Result<(), Failure> {
    let format = global.format;
    let spec = crate::cmd::platform::load(file)?;
    let opened = tresor_platform::open_store(&spec, false, Access::ReadOnly, &global.locking)
        .map_err(crate::cmd::platform::failure)?;
    let now = SystemTime::now();
    let rows = tresor_rotation::status(&spec, opened.as_ref().map(|o| o.store()), now)
        .map_err(Failure::runtime)?;
    if format == Format::Json {
        print_json(&Value::Array(
            rows.iter().map(|r| row_json(r, now)).collect(),
        ));
        return Ok(());
    }
    let time = |t: Option<SystemTime>| {
        t.map(|t| humantime::format_rfc3339_seconds(t).to_string())
            .unwrap_or_else(|| "-".into())
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut due = time(r.next_due);
            if r.overdue {
                due.push_str(" OVERDUE");
            }
            let mut state = match r.in_progress {
                Some(step) => format!("unfinished after `{step}`"),
                None if r.version == 0 => "not stored".into(),
                None => "ok".into(),
            };
            if r.last_error.is_some() {
                state.push_str(", last attempt failed");
            }
            if r.undelivered {
                state.push_str(", not delivered");
            }
            if r.refused.is_some() {
                state.push_str(", refused: declare its rotator");
            }
            vec![
                r.secret.clone(),
                r.keys.join(","),
                if r.version == 0 {
                    "-".into()
                } else {
                    r.version.to_string()
                },
                r.age(now).map(short_duration).unwrap_or_else(|| "-".into()),
                r.last_rotated
                    .map_or_else(|| "never".into(), |t| time(Some(t))),
                if r.rotator.is_some() {
                    due
                } else {
                    "no policy".into()
                },
                state,
                if r.delivered_to.is_empty() {
                    "store only".into()
                } else {
                    r.delivered_to.join(", ")
                },
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &[
                "Secret",
                "Keys",
                "Version",
                "Age",
                "Last Rotated",
                "Next Due",
                "State",
                "Delivered To"
            ],
            &cells
        )
    );
    for why in rows.iter().filter_map(|r| r.refused.as_deref()) {
        outln!("Not rotatable as declared: {why}.");
    }
    let overdue = rows.iter().filter(|r| r.overdue).count();
    if overdue > 0 {
        outln!(
            "{overdue} secret{} overdue: run `tresor rotate -f {} --due`.",
            if overdue == 1 { " is" } else { "s are" },
            file.display()
        );
    }
    Ok(())
}

fn row_json(r: &Row, now: SystemTime) -> Value {
    let time = |t: Option<SystemTime>| {
        t.map(|t| Value::String(humantime::format_rfc3339_seconds(t).to_string()))
            .unwrap_or(Value::Null)
    };
    serde_json::json!({
        "secret": r.secret,
        "namespace": r.namespace,
        "keys": r.keys,
        "version": r.version,
        "previous_version": r.previous,
        "rotator": r.rotator,
        "every_seconds": r.every.map(|e| e.as_secs()),
        "age_seconds": r.age(now).map(|a| a.as_secs()),
        "last_rotated": time(r.last_rotated),
        "next_due": time(r.next_due),
        "overdue": r.overdue,
        "in_progress_step": r.in_progress,
        "last_error": r.last_error,
        "undelivered": r.undelivered,
        "refused": r.refused,
        "delivered_to": r.delivered_to,
    })
}

/// Exits 0 when unsealed, 2 when sealed (as `vault status` does, so
/// scripts can wait on it), 1 when the server cannot be asked.
pub fn run(global: &GlobalArgs) -> ExitCode {
    let sealed = store::require_remote(global, "status").and_then(|client| {
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
    out!("{}", table(&["Key", "Value"], &rows));
}
