//! `tresor import`: existing secrets from AWS Secrets Manager, a Vault KV
//! v2 mount or a Kubernetes cluster, into the spec's store, with the
//! tresor.yaml entries that keep them where they are. Never prints a value.

use crate::cmd::platform::{failure, load};
use crate::failure::{CmdResult, Failure};
use crate::global::GlobalArgs;
use crate::output::out;
use clap::{Args, ValueEnum};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use tresor_core::Access;
use tresor_kv::SecretMap;
use tresor_platform::{Generator, KubernetesSpec, SecretStore, Spec, StoreSpec, check_key_name};

#[derive(Args)]
pub struct ImportArgs {
    /// Where the secrets are now.
    #[arg(long, value_enum)]
    pub from: Origin,
    /// AWS: secret names (`--prefix` for all under a prefix); Vault:
    /// MOUNT/PATH, a folder importing everything beneath; Kubernetes:
    /// NAMESPACE/NAME.
    #[arg(required_unless_present = "prefix")]
    pub names: Vec<String>,
    /// AWS: import every secret whose name starts with this.
    #[arg(long)]
    pub prefix: Option<String>,
    /// AWS: the region (default: the AWS default chain's).
    #[arg(long)]
    pub region: Option<String>,
    /// Vault: the address (default: VAULT_ADDR).
    #[arg(long)]
    pub address: Option<String>,
    /// Kubernetes: the kubeconfig context.
    #[arg(long)]
    pub context: Option<String>,
    /// The platform spec naming the store (default store beside it when it does not exist yet).
    #[arg(short = 'f', long = "filename", default_value = "tresor.yaml")]
    pub file: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Origin {
    Aws,
    Vault,
    Kubernetes,
}

/// One secret read from its source.
struct Found {
    /// Where it was read (`NAMESPACE/NAME`, `MOUNT/PATH`, the AWS name).
    origin: String,
    /// Its name in tresor.yaml (a valid Kubernetes name).
    name: String,
    data: SecretMap,
    /// The `namespace:` / `targets:` lines of its proposed entry.
    extra: String,
}

pub fn run(global: &GlobalArgs, args: ImportArgs) -> CmdResult {
    let spec = spec_or_default(&args.file)?;
    let found = match args.from {
        Origin::Aws => from_aws(&args, &spec)?,
        Origin::Vault => from_vault(&args)?,
        Origin::Kubernetes => from_kubernetes(&args)?,
    };
    if found.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "nothing to import: no secret matches"
        )));
    }
    check(&found, &spec)?;
    let opened = tresor_platform::open_store(&spec, true, Access::WriteOnDemand, &global.locking)
        .map_err(failure)?
        .expect("created when missing");
    store(opened.store(), &found)?;
    out!("{}", proposal(&found));
    Ok(())
}

/// Refuses, before anything is written, what cannot become tresor.yaml
/// entries beside `spec`'s.
fn check(found: &[Found], spec: &Spec) -> Result<(), Failure> {
    for (i, f) in found.iter().enumerate() {
        if let Some(first) = found[..i].iter().find(|g| g.name == f.name) {
            return Err(Failure::usage(anyhow::anyhow!(
                "`{}` is named twice: `{}` and `{}` would both become tresor.yaml secret `{}`; nothing was imported. Import one of them",
                f.name,
                first.origin,
                f.origin,
                f.name
            )));
        }
        for key in f.data.keys() {
            check_key_name(key).map_err(|why| {
                Failure::usage(anyhow::anyhow!(
                    "`{}` cannot be imported: {why} (rename the field at the source)",
                    f.name
                ))
            })?;
        }
        if let Some(other) = spec.secrets.iter().find(|s| s.name == f.name) {
            return Err(Failure::usage(anyhow::anyhow!(
                "the spec already declares `{}`; import it after removing or renaming that entry",
                other.name
            )));
        }
    }
    Ok(())
}

/// Writes every found secret into the store, after checking them all: bad
/// input imports nothing.
fn store(store: &dyn SecretStore, found: &[Found]) -> Result<(), Failure> {
    // Per secret, the version to write against; `None`: it is there already.
    let mut versions = Vec::new();
    for f in found {
        let stored = store.read(&f.name).map_err(failure)?;
        versions.push(match &stored.data {
            Some(data) if *data == f.data => None,
            Some(_) => {
                return Err(Failure::usage(anyhow::anyhow!(
                    "the store already holds a different `{}`; nothing was imported. Remove it from the store or import under another name",
                    f.name
                )));
            }
            None => Some(stored.version),
        });
    }
    for (f, version) in found.iter().zip(versions) {
        match version {
            None => eprintln!("{}: already in the store with these values", f.name),
            Some(version) => {
                if !store.write(&f.name, &f.data, version).map_err(failure)? {
                    return Err(Failure::runtime(anyhow::anyhow!(
                        "`{}` changed in the store while importing; run the import again",
                        f.name
                    )));
                }
                eprintln!("{}: imported {} keys", f.name, f.data.len());
            }
        }
    }
    Ok(())
}

/// The tresor.yaml entries of the found secrets: never a value.
fn proposal(found: &[Found]) -> String {
    let mut out = String::from(
        "# Proposed tresor.yaml entries (the values are in the store; none is shown).\n# Imported values are kept as they are until rotated: `generate` says how a\n# fresh one will be made.\nsecrets:\n",
    );
    for f in found {
        out.push_str(&entry(f));
    }
    out
}

/// The spec at `file`, or, when there is none yet, one naming the default
/// store beside it.
fn spec_or_default(file: &Path) -> Result<Spec, Failure> {
    if file.exists() {
        return load(file);
    }
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(Spec {
        name: "tresor".into(),
        store: StoreSpec::Embedded {
            path: dir.join(".tresor"),
            key_file: None,
            mount: "secret".into(),
        },
        kubernetes: KubernetesSpec::default(),
        secrets: Vec::new(),
    })
}

/// A Kubernetes name from a source's path: `mlops-platform/mlflow/db` in
/// platform `mlops-platform` becomes `mlflow-db`.
fn name_from(path: &str, platform: &str) -> String {
    let path = path
        .strip_prefix(&format!("{platform}/"))
        .unwrap_or(path)
        .trim_matches('/');
    let name: String = path
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    name.trim_matches(['-', '.']).to_owned()
}

fn entry(f: &Found) -> String {
    let mut out = format!("  {}:\n{}    keys:\n", f.name, f.extra);
    for (key, value) in f.data.iter() {
        let generator = resembling(value.as_str().unwrap_or_default());
        let _ = write!(out, "      {key}: {{generate: '{generator}'");
        if generator.weakness().is_some() {
            out.push_str(", allow_weak: imported as it was; rotate it to a stronger value");
        }
        out.push('}');
        if value
            .as_str()
            .is_some_and(|v| v.chars().any(char::is_whitespace))
        {
            // Spaces or lines: a document (a config file), not a random string.
            out.push_str("  # text, not a random string: a rotation would replace it with one");
        }
        out.push('\n');
    }
    out
}

/// The generator whose values look like `value`: how a rotation will
/// replace it. Only the value's shape is used, never printed.
fn resembling(value: &str) -> Generator {
    let len = value.len();
    let hex = len.is_multiple_of(2) && len > 0 && value.bytes().all(|b| b.is_ascii_hexdigit());
    let uuid = len == 36
        && value.split('-').map(str::len).eq([8, 4, 4, 4, 12])
        && value.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    let padded = len > 0
        && len.is_multiple_of(4)
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if uuid {
        Generator::Uuid
    } else if hex && value.bytes().any(|b| b.is_ascii_digit()) {
        Generator::Hex(len / 2)
    } else if padded && value.ends_with('=') {
        Generator::Base64(len / 4 * 3 - value.bytes().rev().take_while(|b| *b == b'=').count())
    } else if value.bytes().all(|b| b.is_ascii_alphanumeric()) && len > 0 {
        Generator::Alnum(len)
    } else {
        Generator::parse(&format!("password:{}", len.max(1))).expect("a valid length")
    }
}

#[cfg(feature = "aws")]
fn from_aws(args: &ImportArgs, spec: &Spec) -> Result<Vec<Found>, Failure> {
    let mut aws = tresor_aws::Aws::new().map_err(Failure::runtime)?;
    let region = args.region.as_deref();
    let mut names = args.names.clone();
    if let Some(prefix) = &args.prefix {
        names.extend(aws.list(region, prefix).map_err(Failure::runtime)?);
    }
    let resolved = aws.region_name(region).map_err(Failure::usage)?;
    let mut out = Vec::new();
    for name in names {
        let data = aws
            .read(region, &name)
            .map_err(Failure::runtime)?
            .ok_or_else(|| {
                Failure::usage(anyhow::anyhow!(
                    "AWS secret `{name}` does not exist in {resolved} (or is scheduled for deletion)"
                ))
            })?;
        out.push(Found {
            origin: name.clone(),
            name: name_from(&name, &spec.name),
            data,
            extra: format!("    targets:\n      aws: {{name: {name}, region: {resolved}}}\n"),
        });
    }
    Ok(out)
}

#[cfg(not(feature = "aws"))]
fn from_aws(_: &ImportArgs, _: &Spec) -> Result<Vec<Found>, Failure> {
    Err(Failure::usage(anyhow::anyhow!(
        "this tresor was built without the `aws` feature; build it with `--features aws`"
    )))
}

fn from_vault(args: &ImportArgs) -> Result<Vec<Found>, Failure> {
    let client = tresor_vault::connect(args.address.as_deref(), None, "the import")
        .map_err(Failure::usage)?;
    let address = client.address().to_owned();
    let mut out = Vec::new();
    let mut kvs: Vec<(String, tresor_vault::Kv)> = Vec::new();
    for name in &args.names {
        let (mount, path) = name.trim_matches('/').split_once('/').ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "`{name}` must be MOUNT/PATH, for example mlops-platform/mlflow"
            ))
        })?;
        if !kvs.iter().any(|(m, _)| m == mount) {
            let client = tresor_vault::connect(Some(&address), None, "the import")
                .map_err(Failure::usage)?;
            kvs.push((mount.to_owned(), tresor_vault::Kv::new(client, mount)));
        }
        let kv = &kvs.iter().find(|(m, _)| m == mount).expect("added above").1;
        let mut paths = match kv.read(path).map_err(Failure::runtime)? {
            Some(_) => vec![path.to_owned()],
            None => Vec::new(),
        };
        paths.extend(kv.list(path).map_err(Failure::runtime)?);
        if paths.is_empty() {
            return Err(Failure::usage(anyhow::anyhow!(
                "nothing at `{name}` in the Vault at {address}"
            )));
        }
        for p in paths {
            let Some(data) = kv
                .read(&p)
                .map_err(Failure::runtime)?
                .and_then(|r| r.data)
                .filter(|d| d.iter().all(|(_, v)| v.is_string()))
            else {
                return Err(Failure::usage(anyhow::anyhow!(
                    "`{mount}/{p}` holds no current version of string values; nothing was imported"
                )));
            };
            out.push(Found {
                origin: format!("{mount}/{p}"),
                name: name_from(&p, ""),
                data,
                extra: format!("    targets:\n      vault: {{mount: {mount}, path: {p}}}\n"),
            });
        }
    }
    Ok(out)
}

#[cfg(feature = "kubernetes")]
fn from_kubernetes(args: &ImportArgs) -> Result<Vec<Found>, Failure> {
    let runtime = tresor_kube::runtime()?;
    let context = args.context.as_deref();
    let mut out = Vec::new();
    for name in &args.names {
        let (ns, secret) = name.split_once('/').ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "`{name}` must be NAMESPACE/NAME, for example mlops/mlflow-secrets"
            ))
        })?;
        let data = runtime
            .block_on(async {
                let client = tresor_kube::connect(context).await?;
                tresor_kube::import::read_secret(&client, context, ns, secret).await
            })
            .map_err(Failure::runtime)?
            .ok_or_else(|| Failure::usage(anyhow::anyhow!("there is no Secret `{name}`")))?;
        let mut map = SecretMap::new();
        for (key, value) in data {
            let text = String::from_utf8(value.to_vec()).map_err(|_| {
                Failure::usage(anyhow::anyhow!(
                    "key `{key}` of Secret `{name}` is binary; tresor keeps text values"
                ))
            })?;
            map.insert(key, serde_json::Value::String(text));
        }
        out.push(Found {
            origin: name.clone(),
            name: secret.to_owned(),
            data: map,
            extra: format!("    namespace: {ns}\n"),
        });
    }
    Ok(out)
}

#[cfg(not(feature = "kubernetes"))]
fn from_kubernetes(_: &ImportArgs) -> Result<Vec<Found>, Failure> {
    Err(Failure::usage(anyhow::anyhow!(
        "this tresor was built without the `kubernetes` feature"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_resemble_the_values() {
        assert_eq!(resembling(&"ab12".repeat(16)), Generator::Hex(32));
        assert_eq!(
            resembling("1d8b2d4e-7a2b-4c1e-9f3a-0b6c5d4e3f21"),
            Generator::Uuid
        );
        assert_eq!(
            resembling("q0F1c2VyLXBhc3N3b3JkLTEyMw=="),
            Generator::Base64(19)
        );
        assert_eq!(resembling("mlflow"), Generator::Alnum(6));
        assert_eq!(
            resembling("a-b_c!"),
            Generator::parse("password:6").unwrap()
        );
    }

    #[test]
    fn names_drop_the_platform_and_slashes() {
        assert_eq!(
            name_from("mlops-platform/mlflow/db-credentials", "mlops-platform"),
            "mlflow-db-credentials"
        );
        assert_eq!(name_from("Team_A/App", ""), "team-a-app");
    }
}
