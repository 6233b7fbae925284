use crate::failure::{CmdResult, Failure};
use crate::output::{print_json, table};
use crate::store::{Format, GlobalArgs, open};
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use tresor_core::{Access, MountType};

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
            let store = open(global, Access::WriteOnDemand)?;
            let entry = store.enable(&path, MountType::KvV2, &description)?;
            println!(
                "Success! Enabled the kv-v2 secrets engine at: {}",
                entry.path
            );
            Ok(())
        }
        SecretsCommand::Disable { path } => {
            let store = open(global, Access::WriteOnDemand)?;
            store.disable(&path)?;
            println!(
                "Success! Disabled the secrets engine (if it existed) at: {}/",
                path.trim_matches('/')
            );
            Ok(())
        }
        SecretsCommand::List => {
            let store = open(global, Access::ReadOnly)?;
            let mounts = store.mounts()?;
            if global.format == Format::Json {
                let mut out = Map::new();
                for m in &mounts {
                    out.insert(
                        m.path.clone(),
                        json!({
                            "type": m.kind.name(),
                            "accessor": m.accessor,
                            "uuid": m.uuid,
                            "description": m.description,
                            "options": m.kind.options(),
                        }),
                    );
                }
                print_json(&Value::Object(out));
                return Ok(());
            }
            let rows: Vec<Vec<String>> = mounts
                .iter()
                .map(|m| {
                    vec![
                        m.path.clone(),
                        m.kind.name().to_string(),
                        m.accessor.clone(),
                        m.description.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(&["Path", "Type", "Accessor", "Description"], &rows)
            );
            Ok(())
        }
    }
}
