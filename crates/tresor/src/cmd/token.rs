//! `tresor token create|lookup|renew|revoke` against a server.

use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs};
use crate::output::{cell, key_values, print_json, table, wipe};
use crate::output::{out, outln};
use crate::store::require_remote;
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Map, Value, json};
use std::time::Duration;
use tresor_client::Client;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token: a child of the one in use, unless -orphan.
    Create {
        /// A policy of the new token; repeatable.
        #[arg(long = "policy", value_name = "POLICY")]
        policies: Vec<String>,
        /// Time to live, for example 1h or 30m.
        #[arg(long)]
        ttl: Option<String>,
        /// A hard limit renewals cannot pass.
        #[arg(long)]
        explicit_max_ttl: Option<String>,
        /// Make a periodic token: every renewal extends it by this much.
        #[arg(long)]
        period: Option<String>,
        /// No parent: revoking the creator does not revoke this token.
        #[arg(long)]
        orphan: bool,
        /// How many requests the token may make (0: no limit).
        #[arg(long)]
        use_limit: Option<u64>,
        #[arg(long)]
        display_name: Option<String>,
        /// KEY=VALUE, repeatable.
        #[arg(long)]
        metadata: Vec<String>,
        /// Leave out the `default` policy.
        #[arg(long)]
        no_default_policy: bool,
    },
    /// Show a token's properties (default: the token in use).
    Lookup {
        /// The token, or with -accessor its accessor.
        token: Option<String>,
        /// The argument is an accessor, not a token.
        #[arg(long)]
        accessor: bool,
    },
    /// Extend a token's lease (default: the token in use).
    Renew {
        /// The token, or with -accessor its accessor.
        token: Option<String>,
        #[arg(long)]
        accessor: bool,
        /// How much to extend it by, for example 1h (default: its TTL).
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revoke a token and all its children.
    Revoke {
        /// The token, or with -accessor its accessor.
        token: Option<String>,
        #[arg(long)]
        accessor: bool,
        /// Revoke the token in use.
        #[arg(long = "self")]
        revoke_self: bool,
    },
}

pub fn run(global: &GlobalArgs, command: TokenCommand) -> CmdResult {
    let client = require_remote(global, "token")?;
    match command {
        TokenCommand::Create {
            policies,
            ttl,
            explicit_max_ttl,
            period,
            orphan,
            use_limit,
            display_name,
            metadata,
            no_default_policy,
        } => {
            let mut meta = Map::new();
            for pair in &metadata {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    Failure::usage(anyhow!("invalid metadata `{pair}`: expected KEY=VALUE"))
                })?;
                meta.insert(k.into(), v.into());
            }
            let mut body = json!({ "policies": policies, "meta": meta });
            let fields = [
                ("ttl", ttl.map(Value::from)),
                ("explicit_max_ttl", explicit_max_ttl.map(Value::from)),
                ("period", period.map(Value::from)),
                ("num_uses", use_limit.map(Value::from)),
                ("display_name", display_name.map(Value::from)),
                ("no_default_policy", Some(no_default_policy.into())),
            ];
            for (name, value) in fields {
                if let Some(value) = value {
                    body[name] = value;
                }
            }
            let endpoint = if orphan {
                "auth/token/create-orphan"
            } else {
                "auth/token/create"
            };
            let answer = client.write(endpoint, &body)?;
            print_auth(global, answer);
        }
        TokenCommand::Lookup { token, accessor } => {
            let answer = match (token, accessor) {
                (None, false) => {
                    client.call(tresor_client::Method::Get, "auth/token/lookup-self", None)?
                }
                (Some(a), true) => {
                    client.write("auth/token/lookup-accessor", &json!({ "accessor": a }))?
                }
                (Some(t), false) => {
                    secret_write(&client, "auth/token/lookup", json!({ "token": t }))?
                }
                (None, true) => return Err(accessor_needed()),
            };
            let mut answer = answer.unwrap_or(Value::Null);
            if global.format == Format::Json {
                print_json(&answer);
            } else if let Some(data) = answer["data"].as_object() {
                out!("{}", key_values(data));
            }
            wipe(&mut answer);
        }
        TokenCommand::Renew {
            token,
            accessor,
            increment,
        } => {
            let mut body = json!({});
            if let Some(increment) = increment {
                body["increment"] = increment.into();
            }
            let answer = match (token, accessor) {
                (None, false) => client.write("auth/token/renew-self", &body)?,
                (Some(a), true) => {
                    body["accessor"] = a.into();
                    client.write("auth/token/renew-accessor", &body)?
                }
                (Some(t), false) => {
                    body["token"] = t.into();
                    secret_write(&client, "auth/token/renew", body)?
                }
                (None, true) => return Err(accessor_needed()),
            };
            print_auth(global, answer);
        }
        TokenCommand::Revoke {
            token,
            accessor,
            revoke_self,
        } => {
            match (token, accessor, revoke_self) {
                (None, false, true) => {
                    client.write("auth/token/revoke-self", &json!({}))?;
                }
                (Some(a), true, false) => {
                    client.write("auth/token/revoke-accessor", &json!({ "accessor": a }))?;
                }
                (Some(t), false, false) => {
                    secret_write(&client, "auth/token/revoke", json!({ "token": t }))?;
                }
                _ => {
                    return Err(Failure::usage(anyhow!(
                        "name what to revoke: a TOKEN, -accessor ACCESSOR, or -self"
                    )));
                }
            }
            outln!("Success! Revoked token (if it existed)");
        }
    }
    Ok(())
}

fn accessor_needed() -> Failure {
    Failure::usage(anyhow!("-accessor needs the accessor as its argument"))
}

/// Writes a body holding a token, and wipes it afterwards.
fn secret_write(client: &Client, path: &str, mut body: Value) -> Result<Option<Value>, Failure> {
    let answer = client.write(path, &body);
    wipe(&mut body);
    Ok(answer?)
}

/// Prints the `auth` block of a create or renew answer, as `vault token create` does.
fn print_auth(global: &GlobalArgs, answer: Option<Value>) {
    let mut answer = answer.unwrap_or(Value::Null);
    if global.format == Format::Json {
        print_json(&answer);
    } else {
        let auth = &answer["auth"];
        let duration = match auth["lease_duration"].as_u64() {
            Some(0) | None => "∞".to_string(),
            Some(secs) => tresor_kv::format_duration(Duration::from_secs(secs)),
        };
        let mut rows = Vec::new();
        if auth["client_token"].as_str().is_some_and(|t| !t.is_empty()) {
            rows.push(vec!["token".into(), cell(&auth["client_token"])]);
        }
        rows.extend([
            vec!["token_accessor".into(), cell(&auth["accessor"])],
            vec!["token_duration".into(), duration],
            vec!["token_renewable".into(), cell(&auth["renewable"])],
            vec!["token_policies".into(), cell(&auth["token_policies"])],
            vec!["identity_policies".into(), "[]".into()],
            vec!["policies".into(), cell(&auth["policies"])],
        ]);
        out!("{}", table(&["Key", "Value"], &rows));
        rows.iter_mut()
            .flatten()
            .for_each(zeroize::Zeroize::zeroize);
    }
    wipe(&mut answer);
}
