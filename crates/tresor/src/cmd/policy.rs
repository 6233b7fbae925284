//! `tresor policy write|read|list|delete`: ACL policies on a server.

use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs};
use crate::output::outln;
use crate::output::{envelope, print_json};
use crate::store::require_remote;
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::json;
use std::io::Read;
use tresor_client::Method;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from an HCL or JSON file (`-`: stdin).
    Write { name: String, file: String },
    /// Print a policy's text.
    Read { name: String },
    /// List the policies' names.
    List,
    /// Delete a policy; tokens that name it lose what it granted.
    Delete { name: String },
}

fn path(name: &str) -> String {
    format!("sys/policies/acl/{name}")
}

pub fn run(global: &GlobalArgs, command: PolicyCommand) -> CmdResult {
    let client = require_remote(global, "policy")?;
    match command {
        PolicyCommand::Write { name, file } => {
            let mut text = String::new();
            if file == "-" {
                std::io::stdin().read_to_string(&mut text)?;
            } else {
                text = std::fs::read_to_string(&file)
                    .map_err(|e| Failure::usage(anyhow!("cannot read {file}: {e}")))?;
            }
            client.call(Method::Put, &path(&name), Some(&json!({ "policy": text })))?;
            outln!("Success! Uploaded policy: {name}");
        }
        PolicyCommand::Read { name } => {
            let Some(mut body) = client.read(&path(&name))? else {
                return Err(Failure::usage(anyhow!(
                    "no policy named {name}; `tresor policy list` shows them"
                )));
            };
            let data = body["data"].take();
            if global.format == Format::Json {
                print_json(&envelope(data));
            } else {
                outln!("{}", data["policy"].as_str().unwrap_or_default());
            }
        }
        PolicyCommand::List => {
            let names = client.list(&path(""), None, None)?;
            if global.format == Format::Json {
                print_json(&json!(names));
            } else {
                // `vault policy list` prints bare names, one a line.
                for name in names {
                    outln!("{name}");
                }
            }
        }
        PolicyCommand::Delete { name } => {
            client.delete(&path(&name))?;
            outln!("Success! Deleted policy: {name}");
        }
    }
    Ok(())
}
