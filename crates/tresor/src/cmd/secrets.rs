use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs};
use crate::output::{out, outln};
use crate::output::{print_json, table};
use crate::store;
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::Value;
use tresor_core::Access;

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Mount a secrets engine (`kv` or `kv-v2`; both are KV version 2).
    Enable {
        /// Where to mount it (default: the type's name).
        #[arg(long)]
        path: Option<String>,
        /// KV version; only 2 is supported.
        #[arg(long)]
        version: Option<u8>,
        #[arg(long, default_value = "")]
        description: String,
        /// The engine type.
        kind: String,
    },
    /// Unmount a secrets engine and delete all its data.
    Disable { path: String },
    /// List the mounted secrets engines.
    List,
}

pub fn run(global: &GlobalArgs, command: SecretsCommand) -> CmdResult {
    match command {
        SecretsCommand::Enable {
            path,
            version,
            description,
            kind,
        } => {
            let kind_ok = matches!(kind.as_str(), "kv" | "kv-v2");
            if !kind_ok {
                return Err(Failure::usage(anyhow!(
                    "unknown secrets engine type `{kind}`; tresor offers `kv` (version 2)"
                )));
            }
            if version.is_some_and(|v| v != 2) {
                return Err(Failure::usage(anyhow!("only KV version 2 is supported")));
            }
            let path = path.unwrap_or_else(|| kind.clone());
            let mounted =
                store::open(global, Access::WriteOnDemand)?.enable(&path, &description)?;
            outln!("Success! Enabled the kv-v2 secrets engine at: {mounted}");
            Ok(())
        }
        SecretsCommand::Disable { path } => {
            store::open(global, Access::WriteOnDemand)?.disable(&path)?;
            outln!(
                "Success! Disabled the secrets engine (if it existed) at: {}/",
                path.trim_matches('/')
            );
            Ok(())
        }
        SecretsCommand::List => {
            let mounts = store::open(global, Access::ReadOnly)?.mounts()?;
            if global.format == Format::Json {
                print_json(&Value::Object(mounts));
                return Ok(());
            }
            let text = |m: &Value, key: &str| m[key].as_str().unwrap_or_default().to_string();
            let rows: Vec<Vec<String>> = mounts
                .iter()
                .map(|(path, m)| {
                    vec![
                        path.clone(),
                        text(m, "type"),
                        text(m, "accessor"),
                        text(m, "description"),
                    ]
                })
                .collect();
            out!(
                "{}",
                table(&["Path", "Type", "Accessor", "Description"], &rows)
            );
            Ok(())
        }
    }
}
