//! `tresor rotate -f tresor.yaml [NAME...] [--due] [--dry-run]`: run (or
//! resume) rotations, then deliver what changed.

use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;
use crate::output::{out, outln};
use clap::Args;
use std::path::PathBuf;
use std::time::SystemTime;
use tresor_core::Access;
use tresor_platform::Spec;
use tresor_rotation::{Engine, Kubernetes, RotateError, Row};

#[derive(Args)]
pub struct RotateArgs {
    /// The platform spec.
    #[arg(short = 'f', long = "filename", default_value = "tresor.yaml")]
    pub file: PathBuf,
    /// The secrets to rotate now, due or not (default with --due: every secret).
    pub names: Vec<String>,
    /// Only those overdue, or whose rotation was left unfinished.
    #[arg(long)]
    pub due: bool,
    /// Say what would be rotated, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(global: &GlobalArgs, args: RotateArgs) -> CmdResult {
    if args.names.is_empty() && !args.due {
        return Err(Failure::usage(anyhow::anyhow!(
            "name the secrets to rotate, or pass --due to rotate those due (see `tresor status -f {}`)",
            args.file.display()
        )));
    }
    let spec = crate::cmd::platform::load(&args.file)?;
    let access = if args.dry_run {
        Access::ReadOnly
    } else {
        Access::WriteOnDemand
    };
    let f = args.file.display();
    let opened = tresor_platform::open_store(&spec, false, access, &global.locking)
        .map_err(crate::cmd::platform::failure)?
        .ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "the spec's store does not exist yet; run `tresor apply -f {f}` first"
            ))
        })?;
    let store = opened.store();
    let now = SystemTime::now();
    let rows = tresor_rotation::status(&spec, Some(store), now).map_err(failure)?;
    let chosen = choose(&spec, &rows, &args)?;
    // Due, but their policy does not let them be rotated: each says what to declare.
    let refused: Vec<&str> = rows
        .iter()
        .filter(|r| {
            args.due && r.overdue && (args.names.is_empty() || args.names.contains(&r.secret))
        })
        .filter_map(|r| r.refused.as_deref())
        .collect();
    if args.dry_run {
        for row in &chosen {
            outln!("{}", plan_line(row));
        }
        for why in &refused {
            outln!("would not rotate: {why}");
        }
        outln!("Dry run: nothing was rotated.");
        return Ok(());
    }
    for why in &refused {
        eprintln!("Error: {why}");
    }
    let engine = Engine::new(&spec, store);
    let mut changed = Vec::new();
    let mut errors = Vec::new();
    for row in &rows {
        let secret = engine.secret(&row.secret).map_err(failure)?;
        match engine.retire_due(secret, now) {
            Ok(Some(role)) => outln!("{}: retired login role `{role}`", row.secret),
            Ok(None) => {}
            Err(e) => {
                eprintln!("Error: {e}");
                errors.push(e);
            }
        }
    }
    for row in &chosen {
        let secret = engine.secret(&row.secret).map_err(failure)?;
        match engine.rotate(secret, SystemTime::now()) {
            Ok(rotated) => {
                let resumed = rotated
                    .resumed_after
                    .map(|s| format!(" (resumed after step `{s}`)"))
                    .unwrap_or_default();
                outln!(
                    "{}: rotated{resumed}; version {} is current",
                    rotated.secret,
                    rotated.version
                );
                for other in rotated.changed.iter().skip(1) {
                    outln!("{other}: follows `{}` (a reference)", rotated.secret);
                }
                changed.extend(rotated.changed);
            }
            Err(e) => {
                eprintln!("Error: {e}");
                errors.push(e);
            }
        }
    }
    let delivered = deliver(&engine, &args, &changed);
    let mut failed: Vec<String> = Vec::new();
    if !refused.is_empty() {
        let n = refused.len();
        failed.push(format!(
            "{n} secret{} due but not rotated: declare {} rotator (see above)",
            if n == 1 { " is" } else { "s are" },
            if n == 1 { "its" } else { "their" }
        ));
    }
    if !errors.is_empty() {
        let n = errors.len();
        failed.push(format!(
            "{n} rotation{} did not complete (see above)",
            if n == 1 { "" } else { "s" }
        ));
    }
    failed.extend(delivered.err());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::runtime(anyhow::anyhow!(failed.join("; "))))
    }
}

fn choose<'a>(spec: &Spec, rows: &'a [Row], args: &RotateArgs) -> Result<Vec<&'a Row>, Failure> {
    for name in &args.names {
        let Some(row) = rows.iter().find(|r| &r.secret == name) else {
            return Err(failure(RotateError::Unknown(name.clone())));
        };
        if row.rotator.is_none() {
            return Err(failure(RotateError::NoPolicy(name.clone())));
        }
        if let Some(why) = &row.refused {
            return Err(Failure::usage(anyhow::anyhow!("{why}")));
        }
    }
    let named = |r: &&Row| args.names.is_empty() || args.names.contains(&r.secret);
    let chosen: Vec<&Row> = rows
        .iter()
        .filter(named)
        .filter(|r| r.rotator.is_some() && (!args.due || r.due()))
        .collect();
    if chosen.is_empty() {
        let n = spec.secrets.iter().filter(|s| s.rotation.is_some()).count();
        outln!(
            "Nothing is due for rotation among the {n} secret{} with a rotation policy.",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(chosen)
}

fn plan_line(row: &Row) -> String {
    let rotator = row.rotator.as_deref().unwrap_or("none");
    match row.in_progress {
        Some(step) => format!(
            "{}: would resume the {rotator} rotation after step `{step}`",
            row.secret
        ),
        None => format!("{}: would rotate ({rotator})", row.secret),
    }
}

/// Delivers what was rotated (and what earlier runs left undelivered) and
/// prints where it went; the error says what is still undelivered.
fn deliver(engine: &Engine, args: &RotateArgs, changed: &[String]) -> Result<(), String> {
    let f = args.file.display();
    let delivery = engine.deliver(changed).map_err(|e| e.to_string())?;
    out!("{}", delivery.targets.lines());
    let mut incomplete = Vec::new();
    if let Some(counts) = delivery.targets.counts() {
        incomplete.push(format!(
            "rotated and stored, but delivery incomplete ({counts}): the rotation stays marked undelivered; run `tresor rotate -f {f} --due` once the targets are reachable (lines above), it delivers it"
        ));
    }
    match delivery.kubernetes {
        Ok(Kubernetes::Applied(lines)) => {
            for line in lines {
                outln!("{line}");
            }
        }
        Ok(Kubernetes::NoCluster) if !changed.is_empty() => outln!(
            "Not delivered to Kubernetes: the spec names no cluster (kubernetes.context); consumers reading the store see the new values, or deliver with `tresor k8s apply -f {f} --context CONTEXT`."
        ),
        Ok(Kubernetes::NoCluster) => {}
        Ok(Kubernetes::Unsupported) => outln!(
            "Not delivered to Kubernetes: this tresor was built without Kubernetes support; deliver with a build that has it (`tresor k8s apply -f {f}`)."
        ),
        Err(e) => incomplete.push(format!(
            "rotated and stored, but not delivered to the cluster: {e}. Run `tresor rotate --due` again (or `tresor k8s apply`) once the cluster is reachable: it delivers what is marked undelivered"
        )),
    }
    if incomplete.is_empty() {
        Ok(())
    } else {
        Err(incomplete.join("; "))
    }
}

fn failure(error: RotateError) -> Failure {
    if error.is_usage() {
        Failure::usage(error)
    } else {
        Failure::runtime(error)
    }
}
