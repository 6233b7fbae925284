//! `tresor transit`: a transit mount's keys, and encryption with them, on
//! the embedded store or a server (through Vault's `transit/...` API).

use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs};
use crate::output::{key_values, print_json, table};
use crate::output::{out, outln};
use crate::store;
use anyhow::anyhow;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Subcommand;
use serde_json::{Value, json};
use std::io::{Read, Write};
use tresor_client::{Client, Method};
use tresor_core::Access;
use tresor_transit::{CiphertextItem, CreateKey, EncryptItem, KeyConfig, KeyType, TransitEngine};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum TransitCommand {
    /// Create a named key (nothing changes if it exists).
    Create {
        name: String,
        /// aes256-gcm96 (default), aes128-gcm96, chacha20-poly1305 or xchacha20-poly1305.
        #[arg(long = "type", default_value = "aes256-gcm96")]
        key_type: String,
        /// Derive a key per request from its context.
        #[arg(long)]
        derived: bool,
        /// Allow the key to be exported (cannot be undone).
        #[arg(long)]
        exportable: bool,
        /// Rotate automatically this often (at least 1h; the server does it).
        #[arg(long, value_name = "DURATION")]
        auto_rotate_period: Option<humantime::Duration>,
        #[command(flatten)]
        mount: MountArg,
    },
    /// Show a key's settings and versions (never its material).
    Read {
        name: String,
        #[command(flatten)]
        mount: MountArg,
    },
    /// List the keys.
    List {
        #[command(flatten)]
        mount: MountArg,
    },
    /// Add a key version; new ciphertext uses it, old ciphertext still decrypts.
    Rotate {
        name: String,
        #[command(flatten)]
        mount: MountArg,
    },
    /// Change a key's settings.
    Config {
        name: String,
        /// Ciphertext of older versions stops decrypting.
        #[arg(long)]
        min_decryption_version: Option<i64>,
        /// Older versions stop encrypting (0: only the latest).
        #[arg(long)]
        min_encryption_version: Option<i64>,
        #[arg(long)]
        deletion_allowed: Option<bool>,
        /// Allow export (cannot be undone).
        #[arg(long)]
        exportable: bool,
        #[command(flatten)]
        mount: MountArg,
    },
    /// Delete a key whose deletion is allowed: its ciphertext is lost.
    Delete {
        name: String,
        #[command(flatten)]
        mount: MountArg,
    },
    /// Encrypt standard input; print the ciphertext.
    Encrypt {
        name: String,
        #[command(flatten)]
        mount: MountArg,
    },
    /// Decrypt a ciphertext; write the plaintext to standard output.
    Decrypt {
        name: String,
        ciphertext: String,
        #[command(flatten)]
        mount: MountArg,
    },
    /// Encrypt a ciphertext again with the key's latest version.
    Rewrap {
        name: String,
        ciphertext: String,
        #[command(flatten)]
        mount: MountArg,
    },
}

#[derive(clap::Args)]
pub struct MountArg {
    /// The transit mount.
    #[arg(long, default_value = "transit")]
    mount: String,
}

/// The embedded store's engine, or a server's API.
enum Side {
    Local(TransitEngine),
    Remote(Client, String),
}

impl Side {
    fn open(global: &GlobalArgs, mount: &MountArg, access: Access) -> Result<Self, Failure> {
        let mount = mount.mount.trim_matches('/').to_owned();
        match store::remote(global)? {
            Some(client) => Ok(Side::Remote(client, mount)),
            None => Ok(Side::Local(
                store::open_embedded(global, access)?.transit(&mount)?,
            )),
        }
    }
}

/// A write to the server's `<mount>/<path>`; the answer's `data`.
fn call(client: &Client, mount: &str, path: &str, body: &Value) -> Result<Value, Failure> {
    let answer = client.call(Method::Put, &format!("{mount}/{path}"), Some(body))?;
    Ok(answer
        .and_then(|mut a| a.get_mut("data").map(Value::take))
        .unwrap_or(Value::Null))
}

fn transit(e: tresor_transit::TransitError) -> Failure {
    tresor_core::CoreError::from(e).into()
}

fn json_of(value: &impl serde::Serialize) -> Value {
    serde_json::to_value(value).expect("engine outputs serialize")
}

pub fn run(global: &GlobalArgs, command: TransitCommand) -> CmdResult {
    match command {
        TransitCommand::Create {
            name,
            key_type,
            derived,
            exportable,
            auto_rotate_period,
            mount,
        } => {
            let side = Side::open(global, &mount, Access::WriteOnDemand)?;
            let period = auto_rotate_period.map(Into::into).unwrap_or_default();
            let info = match &side {
                Side::Local(engine) => {
                    let params = CreateKey {
                        key_type: KeyType::parse(&key_type).map_err(transit)?,
                        derived,
                        exportable,
                        auto_rotate_period: period,
                        ..CreateKey::default()
                    };
                    let written = engine.create_key(&name, &params).map_err(transit)?;
                    for warning in &written.warnings {
                        eprintln!("WARNING: {warning}");
                    }
                    json_of(&written.value)
                }
                Side::Remote(client, mount) => call(
                    client,
                    mount,
                    &format!("keys/{name}"),
                    &json!({
                        "type": key_type,
                        "derived": derived,
                        "exportable": exportable,
                        "auto_rotate_period": period.as_secs(),
                    }),
                )?,
            };
            print_key(global, &info)
        }
        TransitCommand::Read { name, mount } => {
            let side = Side::open(global, &mount, Access::ReadOnly)?;
            let info = match &side {
                Side::Local(engine) => engine
                    .read_key(&name)
                    .map_err(transit)?
                    .map(|i| json_of(&i)),
                Side::Remote(client, mount) => client
                    .read(&format!("{mount}/keys/{name}"))?
                    .map(|mut a| a["data"].take()),
            };
            let info = info.ok_or_else(|| {
                Failure::usage(anyhow!("no transit key `{name}` in mount {}/", mount.mount))
            })?;
            print_key(global, &info)
        }
        TransitCommand::List { mount } => {
            let side = Side::open(global, &mount, Access::ReadOnly)?;
            let keys = match &side {
                Side::Local(engine) => engine.list_keys(None, None).map_err(transit)?,
                Side::Remote(client, mount) => client.list(&format!("{mount}/keys"), None, None)?,
            };
            if global.format == Format::Json {
                print_json(&json!(keys));
            } else {
                let rows: Vec<Vec<String>> = keys.into_iter().map(|k| vec![k]).collect();
                out!("{}", table(&["Keys"], &rows));
            }
            Ok(())
        }
        TransitCommand::Rotate { name, mount } => {
            let side = Side::open(global, &mount, Access::WriteOnDemand)?;
            let info = match &side {
                Side::Local(engine) => json_of(&engine.rotate_key(&name).map_err(transit)?),
                Side::Remote(client, mount) => {
                    call(client, mount, &format!("keys/{name}/rotate"), &json!({}))?
                }
            };
            print_key(global, &info)
        }
        TransitCommand::Config {
            name,
            min_decryption_version,
            min_encryption_version,
            deletion_allowed,
            exportable,
            mount,
        } => {
            let side = Side::open(global, &mount, Access::WriteOnDemand)?;
            let config = KeyConfig {
                min_decryption_version,
                min_encryption_version,
                deletion_allowed,
                exportable: exportable.then_some(true),
                ..KeyConfig::default()
            };
            let info = match &side {
                Side::Local(engine) => {
                    let written = engine.configure_key(&name, &config).map_err(transit)?;
                    for warning in &written.warnings {
                        eprintln!("WARNING: {warning}");
                    }
                    json_of(&written.value)
                }
                Side::Remote(client, mount) => {
                    let mut body = serde_json::Map::new();
                    if let Some(v) = min_decryption_version {
                        body.insert("min_decryption_version".into(), v.into());
                    }
                    if let Some(v) = min_encryption_version {
                        body.insert("min_encryption_version".into(), v.into());
                    }
                    if let Some(v) = deletion_allowed {
                        body.insert("deletion_allowed".into(), v.into());
                    }
                    if exportable {
                        body.insert("exportable".into(), true.into());
                    }
                    call(
                        client,
                        mount,
                        &format!("keys/{name}/config"),
                        &Value::Object(body),
                    )?
                }
            };
            print_key(global, &info)
        }
        TransitCommand::Delete { name, mount } => {
            match Side::open(global, &mount, Access::WriteOnDemand)? {
                Side::Local(engine) => engine.delete_key(&name).map_err(transit)?,
                Side::Remote(client, mount) => client.delete(&format!("{mount}/keys/{name}"))?,
            }
            outln!("Success! Deleted key {name}");
            Ok(())
        }
        TransitCommand::Encrypt { name, mount } => {
            let mut plaintext = Zeroizing::new(Vec::new());
            std::io::stdin().read_to_end(&mut plaintext)?;
            let side = Side::open(global, &mount, Access::ReadOnly)?;
            let item = EncryptItem {
                plaintext: Zeroizing::new(B64.encode(plaintext.as_slice())),
                ..EncryptItem::default()
            };
            let out = match &side {
                Side::Local(engine) => json_of(
                    &engine
                        .encrypt(&name, std::slice::from_ref(&item), None)
                        .and_then(|w| w.value.into_single())
                        .map_err(transit)?,
                ),
                Side::Remote(client, mount) => call(
                    client,
                    mount,
                    &format!("encrypt/{name}"),
                    &json!({ "plaintext": item.plaintext.as_str() }),
                )?,
            };
            print_ciphertext(global, &out)
        }
        TransitCommand::Decrypt {
            name,
            ciphertext,
            mount,
        } => {
            let side = Side::open(global, &mount, Access::ReadOnly)?;
            let encoded: Zeroizing<String> = match &side {
                Side::Local(engine) => {
                    let item = CiphertextItem {
                        ciphertext,
                        ..CiphertextItem::default()
                    };
                    engine
                        .decrypt(&name, &[item])
                        .and_then(|b| b.into_single())
                        .map_err(transit)?
                        .plaintext
                        .clone()
                }
                Side::Remote(client, mount) => {
                    let mut out = call(
                        client,
                        mount,
                        &format!("decrypt/{name}"),
                        &json!({ "ciphertext": ciphertext }),
                    )?;
                    let text =
                        Zeroizing::new(out["plaintext"].as_str().unwrap_or_default().to_owned());
                    crate::output::wipe(&mut out);
                    text
                }
            };
            let plain = Zeroizing::new(
                B64.decode(encoded.as_bytes())
                    .map_err(|e| Failure::runtime(anyhow!("the plaintext is not base64: {e}")))?,
            );
            std::io::stdout().write_all(&plain)?;
            Ok(())
        }
        TransitCommand::Rewrap {
            name,
            ciphertext,
            mount,
        } => {
            let side = Side::open(global, &mount, Access::ReadOnly)?;
            let out = match &side {
                Side::Local(engine) => {
                    let item = CiphertextItem {
                        ciphertext,
                        ..CiphertextItem::default()
                    };
                    json_of(
                        &engine
                            .rewrap(&name, &[item])
                            .and_then(|b| b.into_single())
                            .map_err(transit)?,
                    )
                }
                Side::Remote(client, mount) => call(
                    client,
                    mount,
                    &format!("rewrap/{name}"),
                    &json!({ "ciphertext": ciphertext }),
                )?,
            };
            print_ciphertext(global, &out)
        }
    }
}

fn print_key(global: &GlobalArgs, info: &Value) -> CmdResult {
    if global.format == Format::Json {
        print_json(info);
    } else if let Value::Object(map) = info {
        out!("{}", key_values(map));
    }
    Ok(())
}

fn print_ciphertext(global: &GlobalArgs, out: &Value) -> CmdResult {
    if global.format == Format::Json {
        print_json(out);
    } else {
        outln!("{}", out["ciphertext"].as_str().unwrap_or_default());
    }
    Ok(())
}
