use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;
use crate::output::outln;
use crate::store;
use anyhow::anyhow;
use clap::Subcommand;
use std::path::PathBuf;
use tresor_audit::Checkpoint;
use tresor_core::Access;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check an audit log's hash chain: any edited, deleted, inserted or
    /// reordered line makes this fail, naming the first bad line.
    Verify {
        /// The audit log file.
        file: PathBuf,
        /// Also check the log against the position the server saved for its
        /// chain (every few seconds and when it stops), which detects lines
        /// cut from the end. Read from the server (--address, TRESOR_ADDR,
        /// VAULT_ADDR; the token needs sudo there), else from the embedded store.
        #[arg(long)]
        checkpoint: bool,
    },
}

pub fn run(global: &GlobalArgs, command: AuditCommand) -> CmdResult {
    match command {
        AuditCommand::Verify { file, checkpoint } => {
            let report = tresor_audit::verify(&file).map_err(Failure::runtime)?;
            if !checkpoint {
                outln!(
                    "{}: {} lines, hash chain intact (chain {})",
                    file.display(),
                    report.lines,
                    report.chain_id
                );
                return Ok(());
            }
            let saved = saved_checkpoint(global, &report.chain_id)?;
            let report =
                tresor_audit::verify_with_checkpoint(&file, &saved).map_err(Failure::runtime)?;
            outln!(
                "{}: {} lines, hash chain intact and holding the saved checkpoint (line {} of chain {})",
                file.display(),
                report.lines,
                saved.seq,
                report.chain_id
            );
            Ok(())
        }
    }
}

fn saved_checkpoint(global: &GlobalArgs, chain_id: &str) -> Result<Checkpoint, Failure> {
    let found = store::open(global, Access::ReadOnly)?.audit_checkpoint(chain_id)?;
    let value = found.ok_or_else(|| {
        Failure::runtime(anyhow!(
            "no checkpoint is saved for chain {chain_id}: the server saves one every \
             checkpoint_interval ([audit], 5s by default) and when it stops; check that this \
             log belongs to this store"
        ))
    })?;
    serde_json::from_value(value)
        .map_err(|e| Failure::runtime(anyhow!("the saved checkpoint is unreadable: {e}")))
}
