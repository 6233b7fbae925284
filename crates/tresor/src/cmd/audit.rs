use crate::failure::{CmdResult, Failure};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check an audit log's hash chain: any edited, deleted, inserted or
    /// reordered line makes this fail, naming the first bad line.
    Verify {
        /// The audit log file.
        file: PathBuf,
    },
}

pub fn run(command: AuditCommand) -> CmdResult {
    match command {
        AuditCommand::Verify { file } => {
            let report = tresor_audit::verify(&file).map_err(Failure::runtime)?;
            println!(
                "{}: {} lines, hash chain intact (chain {})",
                file.display(),
                report.lines,
                report.chain_id
            );
            Ok(())
        }
    }
}
