use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs};
use crate::output::{out, outln};
use crate::output::{print_json, table};
use crate::store;
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::Value;
use tresor_core::{Access, MountType};

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Mount a secrets engine: `kv` or `kv-v2` (both KV version 2), or `transit`.
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
            let mount_type = match (MountType::parse(&kind), version) {
                (Some(MountType::KvV2), Some(1)) => MountType::KvV1,
                (Some(MountType::KvV2), None | Some(2)) => MountType::KvV2,
                (Some(MountType::KvV2), Some(other)) => {
                    return Err(Failure::usage(anyhow!(
                        "KV version {other} does not exist; use -version=1 or -version=2"
                    )));
                }
                (Some(other), _) => other,
                (None, _) => {
                    return Err(Failure::usage(anyhow!(
                        "unknown secrets engine type `{kind}`; tresor offers `kv` (version 2, or 1 with -version=1) and `transit`"
                    )));
                }
            };
            let path = path.unwrap_or_else(|| kind.clone());
            let mounted = store::open(global, Access::WriteOnDemand)?.enable(
                &path,
                mount_type,
                &description,
            )?;
            let (shown, _) = mount_type.enable_request();
            outln!("Success! Enabled the {shown} secrets engine at: {mounted}");
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
