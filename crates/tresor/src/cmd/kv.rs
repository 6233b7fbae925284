use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs};
use crate::output::{cell, envelope, key_values, print_json, section, table, wipe};
use crate::output::{out, outln};
use crate::store::{self, KvPath, KvRead, Store};
use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use tresor_core::Access;
use tresor_kv::{MetadataUpdate, SecretMap, parse_duration};
use zeroize::Zeroizing;

#[derive(Args)]
pub struct SecretPath {
    /// The mount; then PATH is relative to it. Without it, PATH starts with the mount (`secret/app`).
    #[arg(long)]
    mount: Option<String>,
    /// The secret's path.
    path: String,
}

#[derive(Subcommand)]
pub enum KvCommand {
    /// Write a new version: KEY=VALUE pairs, KEY=- (value from stdin), KEY=@FILE, or one `-` / `@FILE.json` argument holding a JSON object.
    Put {
        /// Write only if the current version is this (0: only if the secret does not exist).
        #[arg(long)]
        cas: Option<u64>,
        #[command(flatten)]
        secret: SecretPath,
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Read a version (default: the current one).
    Get {
        #[arg(long)]
        version: Option<u64>,
        /// Print only this key's value.
        #[arg(long)]
        field: Option<String>,
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Change some keys of the current version, keeping the others, as a new version.
    Patch {
        #[arg(long)]
        cas: Option<u64>,
        #[command(flatten)]
        secret: SecretPath,
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// List the secrets and folders under a path.
    List {
        /// Only entries after this one (for paging).
        #[arg(long)]
        after: Option<String>,
        /// At most this many entries.
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Soft-delete the current version, or the given versions.
    Delete {
        #[arg(long, value_delimiter = ',')]
        versions: Vec<u64>,
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Restore soft-deleted versions.
    Undelete {
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Permanently remove the data of the given versions.
    Destroy {
        #[arg(long, value_delimiter = ',', required = true)]
        versions: Vec<u64>,
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Write an older version again as the new current version.
    Rollback {
        #[arg(long, required = true)]
        version: u64,
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Read and change a secret's metadata.
    #[command(subcommand)]
    Metadata(MetadataCommand),
}

#[derive(Subcommand)]
pub enum MetadataCommand {
    /// Show a secret's metadata and versions.
    Get {
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Create or change a secret's metadata.
    Put {
        #[arg(long)]
        max_versions: Option<u32>,
        #[arg(long)]
        cas_required: Option<bool>,
        /// For example 3h or 30m; 0s turns it off.
        #[arg(long)]
        delete_version_after: Option<String>,
        /// KEY=VALUE, repeatable; replaces all custom metadata.
        #[arg(long)]
        custom_metadata: Vec<String>,
        /// Write only if the metadata version is this (0: only if there is no metadata).
        #[arg(long)]
        cas: Option<u64>,
        #[command(flatten)]
        secret: SecretPath,
    },
    /// Delete a secret with all its versions and metadata.
    Delete {
        #[command(flatten)]
        secret: SecretPath,
    },
}

pub fn run(global: &GlobalArgs, command: KvCommand) -> CmdResult {
    match command {
        KvCommand::Put { cas, secret, pairs } => {
            let data = parse_data(&pairs)?;
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            let info = store.kv_write(&at, &data, cas)?;
            print_version_info(global, &at, &info);
            Ok(())
        }
        KvCommand::Patch { cas, secret, pairs } => {
            let data = parse_data(&pairs)?;
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            let info = store.kv_patch(&at, &data, cas)?;
            print_version_info(global, &at, &info);
            Ok(())
        }
        KvCommand::Get {
            version,
            field,
            secret,
        } => get(global, &secret, version, field.as_deref()),
        KvCommand::List {
            after,
            limit,
            secret,
        } => list(global, &secret, after.as_deref(), limit),
        KvCommand::Delete { versions, secret } => {
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            store.kv_delete(&at, &versions)?;
            outln!(
                "Success! Data deleted (if it existed) at: {}",
                at.api("data")
            );
            Ok(())
        }
        KvCommand::Undelete { versions, secret } => {
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            store.kv_undelete(&at, &versions)?;
            outln!("Success! Data written to: {}", at.api("undelete"));
            Ok(())
        }
        KvCommand::Destroy { versions, secret } => {
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            store.kv_destroy(&at, &versions)?;
            outln!("Success! Data written to: {}", at.api("destroy"));
            Ok(())
        }
        KvCommand::Rollback { version, secret } => {
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            let info = store.kv_rollback(&at, version)?;
            print_version_info(global, &at, &info);
            Ok(())
        }
        KvCommand::Metadata(command) => metadata(global, command),
    }
}

/// Opens the embedded store or the server, and finds the secret's mount.
fn resolve(
    global: &GlobalArgs,
    secret: &SecretPath,
    access: Access,
) -> Result<(Box<dyn Store>, KvPath), Failure> {
    let store = store::open(global, access)?;
    let at = store.kv_path(secret.mount.as_deref(), &secret.path)?;
    Ok((store, at))
}

/// Parses the data arguments of `kv put` and `kv patch`, before anything is
/// opened: a malformed argument writes nothing.
fn parse_data(pairs: &[String]) -> Result<SecretMap, Failure> {
    if let [single] = pairs
        && (single == "-" || (single.starts_with('@') && !single.contains('=')))
    {
        let text = if single == "-" {
            read_stdin()?
        } else {
            read_file(&single[1..])?
        };
        let value: Value = serde_json::from_slice(&text)
            .map_err(|e| Failure::usage(anyhow!("the JSON data is not valid: {e}")))?;
        return match value {
            Value::Object(map) => Ok(SecretMap::from_map(map)),
            _ => Err(Failure::usage(anyhow!(
                "the JSON data must be an object of keys and values"
            ))),
        };
    }
    let mut data = SecretMap::new();
    let mut stdin_used = false;
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Failure::usage(anyhow!(
                "invalid key/value pair `{}`: expected KEY=VALUE",
                key_only(pair)
            )));
        };
        if key.is_empty() {
            return Err(Failure::usage(anyhow!("a key/value pair has an empty key")));
        }
        if data.get(key).is_some() {
            return Err(Failure::usage(anyhow!("key `{key}` is given twice")));
        }
        let bytes = if value == "-" {
            if stdin_used {
                return Err(Failure::usage(anyhow!(
                    "only one value can be read from stdin"
                )));
            }
            stdin_used = true;
            trim_newline(read_stdin()?)
        } else if let Some(file) = value.strip_prefix('@') {
            read_file(file)?
        } else {
            Zeroizing::new(value.as_bytes().to_vec())
        };
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| Failure::usage(anyhow!("the value of `{key}` is not UTF-8 text")))?;
        data.insert(key.to_string(), Value::String(text));
    }
    Ok(data)
}

/// The part of a malformed argument that is safe to echo: it may be a value.
fn key_only(arg: &str) -> String {
    if arg.chars().count() > 24 {
        format!("{}...", arg.chars().take(4).collect::<String>())
    } else {
        arg.to_string()
    }
}

fn read_stdin() -> Result<Zeroizing<Vec<u8>>, Failure> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin().read_to_end(&mut buf)?;
    Ok(buf)
}

fn read_file(path: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| Failure::usage(anyhow!("cannot read {path}: {e}")))
}

fn trim_newline(mut bytes: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    bytes
}

fn print_version_info(global: &GlobalArgs, at: &KvPath, info: &Value) {
    if global.format == Format::Json {
        print_json(&envelope(info.clone()));
        return;
    }
    let secret_path = at.api("data");
    let width = secret_path.len().max(24);
    outln!("{}\n{secret_path}\n", section("Secret Path", width));
    outln!("{}", section("Metadata", width));
    if let Some(fields) = info.as_object() {
        out!("{}", key_values(fields));
    }
}

fn get(
    global: &GlobalArgs,
    secret: &SecretPath,
    version: Option<u64>,
    field: Option<&str>,
) -> CmdResult {
    let (store, at) = resolve(global, secret, Access::ReadOnly)?;
    let secret_path = at.api("data");
    let (data, meta) = match store.kv_read(&at, version)? {
        KvRead::Missing => {
            return Err(Failure::usage(anyhow!("no value found at {secret_path}")));
        }
        KvRead::Gone { metadata } => {
            let destroyed = metadata["destroyed"].as_bool().unwrap_or(false);
            let state = if destroyed { "destroyed" } else { "deleted" };
            return Err(Failure::usage(anyhow!(
                "version {} at {secret_path} is {state}{}",
                metadata["version"],
                if destroyed {
                    ""
                } else {
                    "; restore it with `tresor kv undelete -versions=N`"
                }
            )));
        }
        KvRead::Found { data, metadata } => (data, metadata),
    };
    if let Some(field) = field {
        let value = data
            .get(field)
            .ok_or_else(|| Failure::usage(anyhow!("field `{field}` not present in secret")))?;
        let text = Zeroizing::new(match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        if std::io::stdout().is_terminal() {
            outln!("{}", text.as_str());
        } else {
            out!("{}", text.as_str());
        }
        return Ok(());
    }
    if global.format == Format::Json {
        let mut out = envelope(json!({ "data": data, "metadata": meta }));
        print_json(&out);
        wipe(&mut out);
        return Ok(());
    }
    let width = secret_path.len().max(24);
    outln!("{}\n{secret_path}\n", section("Secret Path", width));
    outln!("{}", section("Metadata", width));
    if let Some(fields) = meta.as_object() {
        outln!("{}", key_values(fields));
    }
    outln!("{}", section("Data", width));
    let rows: Vec<Vec<String>> = data.iter().map(|(k, v)| vec![k.clone(), cell(v)]).collect();
    let mut printed = Zeroizing::new(table(&["Key", "Value"], &rows));
    out!("{}", printed.as_str());
    zeroize::Zeroize::zeroize(&mut *printed);
    for mut row in rows {
        row.iter_mut().for_each(zeroize::Zeroize::zeroize);
    }
    Ok(())
}

fn list(
    global: &GlobalArgs,
    secret: &SecretPath,
    after: Option<&str>,
    limit: Option<usize>,
) -> CmdResult {
    let (store, at) = resolve(global, secret, Access::ReadOnly)?;
    let keys = store.kv_list(&at, after, limit)?;
    if keys.is_empty() {
        return Err(Failure::usage(anyhow!(
            "no value found at {}",
            at.api("metadata")
        )));
    }
    if global.format == Format::Json {
        print_json(&json!(keys));
    } else {
        let rows: Vec<Vec<String>> = keys.into_iter().map(|k| vec![k]).collect();
        out!("{}", table(&["Keys"], &rows));
    }
    Ok(())
}

fn metadata(global: &GlobalArgs, command: MetadataCommand) -> CmdResult {
    match command {
        MetadataCommand::Get { secret } => {
            let (store, at) = resolve(global, &secret, Access::ReadOnly)?;
            let Some(value) = store.kv_metadata(&at)? else {
                return Err(Failure::usage(anyhow!(
                    "no value found at {}",
                    at.api("metadata")
                )));
            };
            if global.format == Format::Json {
                print_json(&envelope(value));
                return Ok(());
            }
            let secret_path = at.api("metadata");
            let width = secret_path.len().max(24);
            outln!("{}\n{secret_path}\n", section("Metadata Path", width));
            outln!("{}", section("Metadata", width));
            let mut fields = value.as_object().cloned().unwrap_or_default();
            let versions = fields.remove("versions");
            out!("{}", key_values(&fields));
            if let Some(Value::Object(versions)) = versions {
                let mut numbered: Vec<(u64, Value)> = versions
                    .into_iter()
                    .filter_map(|(n, v)| n.parse().ok().map(|n| (n, v)))
                    .collect();
                numbered.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
                for (n, v) in numbered {
                    outln!("\n{}", section(&format!("Version {n}"), width));
                    if let Some(v) = v.as_object() {
                        out!("{}", key_values(v));
                    }
                }
            }
            Ok(())
        }
        MetadataCommand::Put {
            max_versions,
            cas_required,
            delete_version_after,
            custom_metadata,
            cas,
            secret,
        } => {
            let delete_version_after = delete_version_after
                .map(|d| parse_duration(&d).map_err(|e| Failure::usage(anyhow!(e))))
                .transpose()?;
            let custom = parse_custom_metadata(&custom_metadata)?;
            let update = MetadataUpdate {
                max_versions,
                cas_required,
                delete_version_after,
                custom_metadata: custom,
                merge: false,
                cas,
            };
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            store.kv_write_metadata(&at, &update)?;
            outln!("Success! Data written to: {}", at.api("metadata"));
            Ok(())
        }
        MetadataCommand::Delete { secret } => {
            let (store, at) = resolve(global, &secret, Access::WriteOnDemand)?;
            store.kv_delete_metadata(&at)?;
            outln!(
                "Success! Data deleted (if it existed) at: {}",
                at.api("metadata")
            );
            Ok(())
        }
    }
}

fn parse_custom_metadata(
    pairs: &[String],
) -> Result<Option<BTreeMap<String, Option<String>>>, Failure> {
    if pairs.is_empty() {
        return Ok(None);
    }
    let mut map = BTreeMap::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').ok_or_else(|| {
            Failure::usage(anyhow!(
                "invalid custom metadata `{pair}`: expected KEY=VALUE"
            ))
        })?;
        map.insert(key.to_string(), Some(value.to_string()));
    }
    Ok(Some(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pairs_are_refused_without_echoing_long_values() {
        assert!(parse_data(&["novalue".into()]).is_err());
        assert!(parse_data(&["=x".into()]).is_err());
        assert!(parse_data(&["a=1".into(), "a=2".into()]).is_err());
        let data = parse_data(&["a=1".into(), "b=x=y".into()]).unwrap();
        assert_eq!(data.get("b").unwrap(), "x=y");
        assert_eq!(key_only("supersecretvaluewithoutequalsign"), "supe...");
    }
}
