use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs, parse_shares, shares_from_env};
use crate::output::{cell, key_values, print_json, table, wipe};
use crate::output::{out, outln};
use crate::store;
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use tresor_barrier::SealKind;
use tresor_client::{Client, Method};
use tresor_core::{Access, InitOptions, Unseal};
use tresor_storage::{Backend, Embedded};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Create a new store, sealed by a key file (the default), by Shamir
    /// shares, or by an AWS KMS key (--kms-key-id: auto-unseal, with
    /// recovery shares).
    Init {
        /// Split the unseal key into this many shares (default 5 when only
        /// -key-threshold is given, as Vault).
        #[arg(long, conflicts_with_all = ["key_file", "kms_key_id"])]
        key_shares: Option<u8>,
        /// How many shares unseal the store (default 3 as Vault, or every
        /// share when there are fewer).
        #[arg(long, conflicts_with_all = ["key_file", "kms_key_id"])]
        key_threshold: Option<u8>,
        /// Where to write the key file (default: under ~/.config/tresor/keys/).
        #[arg(
            long = "key-file",
            id = "key_file",
            value_name = "FILE",
            conflicts_with = "kms_key_id"
        )]
        init_key_file: Option<PathBuf>,
        #[command(flatten)]
        kms: KmsArgs,
    },
    /// Seal the store another way (key file, Shamir shares or AWS KMS)
    /// without re-encrypting anything.
    ///
    /// The store is opened as usual (key file, TRESOR_UNSEAL_KEYS or its
    /// KMS); its root key is then sealed under a new unseal key, in one
    /// write with the new seal record. The old key file or shares stop
    /// opening it. Anything refused leaves the store as it was.
    MigrateSeal {
        #[arg(long, value_enum)]
        to: SealTo,
        /// key-file: where to write the new key file (default: under ~/.config/tresor/keys/).
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        /// shamir: how many shares.
        #[arg(long, requires = "key_threshold")]
        key_shares: Option<u8>,
        /// shamir: how many unseal.
        #[arg(long, requires = "key_shares")]
        key_threshold: Option<u8>,
        #[command(flatten)]
        kms: KmsArgs,
    },
    /// Check unseal shares (or the key file) against the store.
    ///
    /// An embedded store keeps no unseal state between commands: this checks
    /// that the shares open it. Other commands take the shares from
    /// TRESOR_UNSEAL_KEYS. Shares not given as arguments are read from stdin,
    /// one per line.
    Unseal {
        /// Unseal key shares, as `operator init` printed them.
        shares: Vec<String>,
    },
    /// Add a new encryption key term; new writes use it, old data stays readable.
    Rotate,
    /// Show the active encryption key term.
    KeyStatus,
    /// Create a root token for `tresor server`, by holding the unseal key.
    ///
    /// A store initialized here (not through a server's `sys/init`) has no
    /// token yet; whoever can unseal it can make one.
    GenerateRoot,
    /// Save, restore, inspect and verify snapshots of the store.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Copy the store to another backend byte for byte (ciphertext and keys),
    /// then verify both sides by key count and checksum.
    ///
    /// Stop every server using the source first; the destination must be
    /// empty, or what an interrupted migrate of the same source left there:
    /// running the same command again finishes that copy. The embedded store
    /// is --store; the PostgreSQL URL comes from TRESOR_POSTGRES_URL or
    /// --postgres-url-file, never the command line.
    Migrate {
        #[arg(long, value_enum)]
        from: BackendKind,
        #[arg(long, value_enum)]
        to: BackendKind,
        /// A file holding the PostgreSQL URL.
        #[arg(long, value_name = "FILE")]
        postgres_url_file: Option<PathBuf>,
    },
}

/// `tresor operator snapshot`.
#[derive(Subcommand)]
pub enum SnapshotCommand {
    /// Write the store's ciphertext, as it stood at one moment, to FILE (or
    /// to a time-named file in --dir, keeping the newest --keep); nothing
    /// under FILE's name until the file is whole.
    Save {
        #[arg(required_unless_present = "dir", conflicts_with = "dir")]
        file: Option<PathBuf>,
        /// Save as `tresor-<UTC time>.snapshot` in this directory, as the
        /// server's scheduled snapshots do.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// With --dir: how many snapshots to keep.
        #[arg(long, default_value_t = 24)]
        keep: usize,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Restore FILE into an empty store (--store, or PostgreSQL), after
    /// checking all of it; a restore cut short is finished by running it again.
    Restore {
        file: PathBuf,
        #[command(flatten)]
        backend: BackendArgs,
    },
    /// Check FILE whole and print its manifest.
    Inspect { file: PathBuf },
    /// The restore drill: open FILE as a store in memory, unseal it (key
    /// file, TRESOR_UNSEAL_KEYS or its KMS) and read every record.
    Verify { file: PathBuf },
}

/// Which backend a snapshot comes from or goes to.
#[derive(clap::Args)]
pub struct BackendArgs {
    #[arg(long, value_enum, default_value = "embedded")]
    backend: BackendKind,
    /// A file holding the PostgreSQL URL (else TRESOR_POSTGRES_URL).
    #[arg(long, value_name = "FILE")]
    postgres_url_file: Option<PathBuf>,
}

/// The AWS KMS key of a KMS seal.
#[derive(clap::Args)]
pub struct KmsArgs {
    /// Seal with this AWS KMS key (id, ARN or alias/NAME).
    #[arg(long, value_name = "KEY")]
    kms_key_id: Option<String>,
    /// The key's region (default: AWS_REGION, then AWS_DEFAULT_REGION).
    #[arg(long, value_name = "REGION")]
    kms_region: Option<String>,
    /// A custom KMS endpoint (default: AWS_ENDPOINT_URL_KMS, then AWS_ENDPOINT_URL, then AWS's).
    #[arg(long, value_name = "URL")]
    kms_endpoint: Option<String>,
    /// Recovery shares, which open the store when the KMS cannot.
    #[arg(long, default_value_t = 5)]
    recovery_shares: u8,
    #[arg(long, default_value_t = 3)]
    recovery_threshold: u8,
}

/// What `migrate-seal` seals with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SealTo {
    KeyFile,
    Shamir,
    Awskms,
}

/// Where a store can live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendKind {
    Embedded,
    Postgres,
}

pub fn run(global: &GlobalArgs, command: OperatorCommand) -> CmdResult {
    match command {
        OperatorCommand::Init {
            key_shares,
            key_threshold,
            init_key_file,
            kms,
        } => match store::remote(global)? {
            Some(client) => init_remote(
                global,
                &client,
                shamir(key_shares, key_threshold),
                init_key_file,
            ),
            None => {
                let options = match (shamir(key_shares, key_threshold), kms.kms_key_id.is_some()) {
                    (_, true) => kms_options(&kms)?,
                    (Some((shares, threshold)), false) => InitOptions::Shamir { shares, threshold },
                    (None, false) => {
                        InitOptions::KeyFile(init_key_file.or_else(|| global.key_file.clone()))
                    }
                };
                init(global, options)
            }
        },
        OperatorCommand::MigrateSeal {
            to,
            new_key_file,
            key_shares,
            key_threshold,
            kms,
        } => {
            let options = match to {
                SealTo::KeyFile => InitOptions::KeyFile(new_key_file),
                SealTo::Shamir => {
                    let (shares, threshold) =
                        shamir(key_shares, key_threshold).ok_or_else(|| {
                            Failure::usage(anyhow!(
                                "--to shamir needs --key-shares and --key-threshold"
                            ))
                        })?;
                    InitOptions::Shamir { shares, threshold }
                }
                SealTo::Awskms => kms_options(&kms)?,
            };
            migrate_seal(global, options)
        }
        OperatorCommand::Unseal { shares } => match store::remote(global)? {
            Some(client) => unseal_remote(global, &client, shares),
            None => unseal(global, shares),
        },
        OperatorCommand::Rotate => rotate(global),
        OperatorCommand::KeyStatus => key_status(global),
        OperatorCommand::GenerateRoot => generate_root(global),
        OperatorCommand::Migrate {
            from,
            to,
            postgres_url_file,
        } => migrate(global, from, to, postgres_url_file.as_deref()),
        OperatorCommand::Snapshot(command) => snapshot(global, command),
    }
}

fn snapshot(global: &GlobalArgs, command: SnapshotCommand) -> CmdResult {
    use tresor_core::snapshot;
    let show = |what: &str, path: &Path, manifest: &snapshot::Manifest| {
        if global.format == Format::Json {
            print_json(&json!({ "file": path, "manifest": manifest }));
        } else {
            outln!(
                "{what} {}: store {} ({} seal, from {}), {} keys, sha256 {}, {} audit checkpoint(s).",
                path.display(),
                manifest.store_id,
                manifest.seal_type,
                manifest.backend,
                manifest.keys,
                manifest.sha256,
                manifest.audit_checkpoints.len()
            );
        }
    };
    match command {
        SnapshotCommand::Save {
            file,
            dir,
            keep,
            backend,
        } => {
            let source = open_backend(
                global,
                backend.backend,
                backend.postgres_url_file.as_deref(),
                false,
            )?;
            let saved = match (file, dir) {
                (Some(file), _) => snapshot::save(&*source, &file)?,
                (None, Some(dir)) => {
                    snapshot::save_into(&*source, &dir, keep, std::time::SystemTime::now())?
                }
                (None, None) => {
                    return Err(Failure::usage(anyhow!("give FILE or --dir")));
                }
            };
            show("Saved", &saved.path, &saved.manifest);
        }
        SnapshotCommand::Restore { file, backend } => {
            let created =
                backend.backend == BackendKind::Embedded && !Embedded::exists(&global.store);
            let destination = open_backend(
                global,
                backend.backend,
                backend.postgres_url_file.as_deref(),
                true,
            )?;
            let restored = snapshot::restore(&file, &*destination);
            let empty = matches!(destination.list("", None, Some(1)), Ok(keys) if keys.is_empty());
            if restored.is_err() && created && empty {
                drop(destination);
                let _ = std::fs::remove_file(global.store.join(tresor_storage::STORE_FILE_NAME));
            }
            let restored = restored?;
            if restored.resumed > 0 && global.format != Format::Json {
                outln!(
                    "Finished an interrupted restore: {} keys were already there.",
                    restored.resumed
                );
            }
            show("Restored", &file, &restored.manifest);
        }
        SnapshotCommand::Inspect { file } => show("Checked", &file, &snapshot::inspect(&file)?),
        SnapshotCommand::Verify { file } => {
            let (manifest, read) = snapshot::verify(&file, &crate::store::unseal(global)?)?;
            show("Verified", &file, &manifest);
            if global.format != Format::Json {
                outln!("Unsealed it in memory and read all {read} records back.");
            }
        }
    }
    Ok(())
}

/// Vault's defaults: 5 shares, a threshold of 3; either flag alone takes
/// the other's default (a threshold no larger than the shares).
const DEFAULT_SHARES: u8 = 5;
const DEFAULT_THRESHOLD: u8 = 3;

fn shamir(shares: Option<u8>, threshold: Option<u8>) -> Option<(u8, u8)> {
    match (shares, threshold) {
        (None, None) => None,
        (Some(n), None) => Some((n, DEFAULT_THRESHOLD.min(n))),
        (None, Some(t)) => Some((DEFAULT_SHARES, t)),
        (Some(n), Some(t)) => Some((n, t)),
    }
}

fn migrate(
    global: &GlobalArgs,
    from: BackendKind,
    to: BackendKind,
    url_file: Option<&Path>,
) -> CmdResult {
    if from == to {
        return Err(Failure::usage(anyhow!(
            "--from and --to are both {from:?}; a migration goes from one backend to the other"
        )));
    }
    let source = open_backend(global, from, url_file, false)?;
    let created = to == BackendKind::Embedded && !Embedded::exists(&global.store);
    let destination = open_backend(global, to, url_file, true)?;
    let names = (source.kind(), destination.kind());
    let copied = tresor_core::copy_store(&*source, &*destination);
    let empty = |b: &dyn Backend| matches!(b.list("", None, Some(1)), Ok(keys) if keys.is_empty());
    if copied.is_err() && created && empty(&*destination) {
        // Created above and still empty: leave no store file behind.
        drop(destination);
        let _ = std::fs::remove_file(global.store.join(tresor_storage::STORE_FILE_NAME));
    }
    let copied = copied.map_err(|e| match e {
        // Cut off mid-copy, not refused: what is there is kept for a re-run.
        tresor_core::CoreError::Storage(_) => Failure::runtime(anyhow::Error::new(e).context(
            "the copy stopped before its end; once the store answers again, run the same command to finish it",
        )),
        refused => Failure::from(refused),
    })?;
    let summary = &copied.summary;
    if global.format == Format::Json {
        print_json(&json!({
            "from": names.0,
            "to": names.1,
            "keys": summary.keys,
            "sha256": summary.sha256,
            "resumed": copied.resumed,
        }));
    } else {
        if copied.resumed > 0 {
            outln!(
                "Resumed an interrupted copy: {} keys were already there with the same bytes.",
                copied.resumed
            );
        }
        outln!(
            "Copied {} keys from {} to {}; both sides verified: {} keys, sha256 {}.",
            summary.keys - copied.resumed,
            names.0,
            names.1,
            summary.keys,
            summary.sha256
        );
    }
    Ok(())
}

/// The source read-only, or the destination: a new, empty store, or the
/// one an interrupted migrate left (which `copy_store` checks).
fn open_backend(
    global: &GlobalArgs,
    kind: BackendKind,
    url_file: Option<&Path>,
    destination: bool,
) -> Result<Box<dyn Backend>, Failure> {
    let storage = |e: tresor_storage::StorageError| Failure::from(tresor_core::CoreError::from(e));
    match kind {
        BackendKind::Embedded if destination => {
            let store = if Embedded::exists(&global.store) {
                Embedded::open(&global.store)
            } else {
                Embedded::create(&global.store)
            };
            Ok(Box::new(store.map_err(storage)?))
        }
        BackendKind::Embedded => Ok(Box::new(
            Embedded::open_read_only(&global.store).map_err(storage)?,
        )),
        BackendKind::Postgres => open_postgres(url_file).map_err(storage),
    }
}

#[cfg(feature = "postgres")]
fn open_postgres(
    url_file: Option<&Path>,
) -> Result<Box<dyn Backend>, tresor_storage::StorageError> {
    let url = match url_file {
        Some(file) => Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(|source| tresor_storage::StorageError::Io {
                    path: file.into(),
                    source,
                })?
                .trim()
                .to_owned(),
        ),
        None => Zeroizing::new(std::env::var("TRESOR_POSTGRES_URL").map_err(|_| {
            tresor_storage::StorageError::Backend(
                "no PostgreSQL URL: set TRESOR_POSTGRES_URL or pass --postgres-url-file".into(),
            )
        })?),
    };
    let options = tresor_storage_postgres::Options::default();
    Ok(Box::new(tresor_storage_postgres::Postgres::connect(
        &url, &options,
    )?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: Option<&Path>) -> Result<Box<dyn Backend>, tresor_storage::StorageError> {
    Err(tresor_storage::StorageError::Backend(
        "this tresor was built without PostgreSQL support (cargo feature `postgres`)".into(),
    ))
}

/// A KMS seal from the command line, its region and endpoint defaulting
/// to the AWS SDK's variables.
#[cfg(feature = "aws")]
fn kms_options(args: &KmsArgs) -> Result<InitOptions, Failure> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let key_id = args
        .kms_key_id
        .clone()
        .ok_or_else(|| Failure::usage(anyhow!("a KMS seal needs --kms-key-id")))?;
    let region = args
        .kms_region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .ok_or_else(|| {
            Failure::usage(anyhow!(
                "give the KMS key's region: --kms-region or AWS_REGION"
            ))
        })?;
    let endpoint = args
        .kms_endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_KMS"))
        .or_else(|| env("AWS_ENDPOINT_URL"));
    let kms = tresor_awskms::AwsKms::new(tresor_awskms::Settings {
        key_id,
        region,
        endpoint,
    })?;
    Ok(InitOptions::Kms {
        kms: std::sync::Arc::new(kms),
        recovery_shares: args.recovery_shares,
        recovery_threshold: args.recovery_threshold,
    })
}

#[cfg(not(feature = "aws"))]
fn kms_options(_: &KmsArgs) -> Result<InitOptions, Failure> {
    Err(Failure::usage(anyhow!(
        "this tresor was built without AWS support (cargo feature `aws`), so it cannot seal with AWS KMS"
    )))
}

fn migrate_seal(global: &GlobalArgs, options: InitOptions) -> CmdResult {
    let unseal = crate::store::unseal(global)?;
    let before = tresor_core::seal_config(&global.store)?;
    let out = tresor_core::migrate_seal(&global.store, &unseal, options)?;
    print_sealed(global, &out, "Store resealed")?;
    if global.format != Format::Json {
        match &before.seal {
            SealKind::KeyFile { path } if before.kms.is_none() => outln!(
                "The old key file {} no longer opens the store; delete it.",
                global.key_file.as_ref().unwrap_or(path).display()
            ),
            _ => outln!("The old unseal material no longer opens the store."),
        }
    }
    Ok(())
}

fn init(global: &GlobalArgs, options: InitOptions) -> CmdResult {
    let out = tresor_core::init(&global.store, options)?;
    print_sealed(global, &out, "Store initialized")?;
    if global.format != Format::Json {
        outln!("KV version 2 is mounted at secret/.");
    }
    Ok(())
}

/// What `init` and `migrate-seal` print: the only copy of the new shares
/// or where the key file went.
fn print_sealed(global: &GlobalArgs, out: &tresor_core::InitOutput, done: &str) -> CmdResult {
    let store = std::path::absolute(&global.store)?;
    if global.format == Format::Json {
        let b64: Vec<Zeroizing<String>> = out.shares.iter().map(|s| s.to_base64()).collect();
        let hex: Vec<Zeroizing<String>> = out.shares.iter().map(|s| s.to_hex()).collect();
        let (n, t) = match out.config.seal {
            SealKind::Shamir { shares, threshold } => (shares, threshold),
            SealKind::KeyFile { .. } => (0, 0),
        };
        let mut value = json!({
            "store": store,
            "store_id": out.config.store_id,
            "seal_type": out.config.type_name(),
            "key_file": out.key_file,
            "unseal_keys_b64": b64.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "unseal_keys_hex": hex.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            "unseal_shares": n,
            "unseal_threshold": t,
        });
        print_json(&value);
        zeroize_json(&mut value);
        return Ok(());
    }
    let kms = out.config.kms.is_some();
    match (&out.config.seal, &out.key_file) {
        (SealKind::Shamir { shares, threshold }, _) => {
            let name = if kms { "Recovery Key" } else { "Unseal Key" };
            for (i, share) in out.shares.iter().enumerate() {
                outln!("{name} {}: {}", i + 1, share.to_base64().as_str());
            }
            outln!();
            if let Some(tresor_barrier::KmsSeal::Awskms { key_id, region, .. }) = &out.config.kms {
                outln!(
                    "{done} at {}, sealed by AWS KMS key {key_id} ({region}): it opens without a key file wherever that key may be used.",
                    store.display()
                );
                outln!(
                    "Keep the {shares} recovery shares apart: any {threshold} of them open the store if the KMS key is lost or unreachable."
                );
            } else {
                outln!(
                    "{done} at {} with {shares} key shares and a key threshold of {threshold}.",
                    store.display()
                );
                outln!(
                    "Distribute the shares to different people: any {threshold} of them unseal the store."
                );
            }
        }
        (SealKind::KeyFile { .. }, Some(path)) => {
            outln!("{done} at {}.", store.display());
            outln!("Unseal key file: {}", path.display());
            eprintln!(
                "WARNING: back up the key file now, away from the store: without it the store cannot be opened."
            );
        }
        (SealKind::KeyFile { path }, None) => outln!("Unseal key file: {}", path.display()),
    }
    Ok(())
}

fn zeroize_json(value: &mut Value) {
    if let Value::Object(map) = value {
        for key in ["unseal_keys_b64", "unseal_keys_hex"] {
            if let Some(Value::Array(items)) = map.get_mut(key) {
                for item in items {
                    if let Value::String(s) = item {
                        zeroize::Zeroize::zeroize(s);
                    }
                }
            }
        }
    }
}

fn unseal(global: &GlobalArgs, given: Vec<String>) -> CmdResult {
    let config = tresor_core::seal_config(&global.store)?;
    let mut shares = shares_from_env()?;
    for text in &given {
        shares.extend(parse_shares(text)?);
    }
    if let (SealKind::Shamir { threshold, .. }, None) = (&config.seal, &config.kms) {
        let threshold = *threshold;
        let stdin = std::io::stdin();
        let interactive = stdin.is_terminal();
        while shares.len() < usize::from(threshold) {
            if interactive {
                eprint!("Unseal key share ({} of {threshold}): ", shares.len() + 1);
            }
            let mut line = Zeroizing::new(String::new());
            if stdin.lock().read_line(&mut line)? == 0 {
                break;
            }
            shares.extend(parse_shares(&line)?);
        }
    }
    let unseal = Unseal {
        shares,
        ..crate::store::unseal(global)?
    };
    tresor_core::open(&global.store, &unseal, Access::ReadOnly)?;
    let seal_type = config.type_name();
    let mut status = serde_json::Map::new();
    status.insert("Seal Type".into(), seal_type.into());
    match &config.seal {
        SealKind::Shamir { shares, threshold } => {
            status.insert("Total Shares".into(), (*shares).into());
            status.insert("Threshold".into(), (*threshold).into());
        }
        SealKind::KeyFile { path } => {
            let file = global.key_file.as_ref().unwrap_or(path);
            status.insert("Key File".into(), file.display().to_string().into());
        }
    }
    status.insert("Initialized".into(), true.into());
    status.insert("Unseal Check".into(), "ok".into());
    status.insert("Store ID".into(), config.store_id.clone().into());
    if global.format == Format::Json {
        print_json(&json!({
            "type": seal_type,
            "initialized": true,
            "unseal_check": "ok",
            "store_id": config.store_id,
        }));
    } else {
        out!("{}", key_values(&status));
    }
    Ok(())
}

fn rotate(global: &GlobalArgs) -> CmdResult {
    let status = store::open(global, Access::WriteOnDemand)?.rotate()?;
    print_key_status(global, &status, true);
    Ok(())
}

fn key_status(global: &GlobalArgs) -> CmdResult {
    let status = store::open(global, Access::ReadOnly)?.key_status()?;
    print_key_status(global, &status, false);
    Ok(())
}

/// `sys/init` on a server: it keeps the shares' hash, we print the shares
/// and the root token, once.
fn init_remote(
    global: &GlobalArgs,
    client: &Client,
    shamir: Option<(u8, u8)>,
    key_file: Option<PathBuf>,
) -> CmdResult {
    if key_file.is_some() {
        return Err(Failure::usage(anyhow!(
            "a server is sealed by Shamir shares or by its own config; -key-file is for the embedded store (unset TRESOR_ADDR)"
        )));
    }
    let (shares, threshold) = shamir.unwrap_or((DEFAULT_SHARES, DEFAULT_THRESHOLD));
    let mut answer = client
        .write(
            "sys/init",
            &json!({ "secret_shares": shares, "secret_threshold": threshold }),
        )?
        .unwrap_or(Value::Null);
    let b64: Vec<&str> = answer["keys_base64"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let root = answer["root_token"].as_str().unwrap_or_default();
    if global.format == Format::Json {
        let mut value = json!({
            "unseal_keys_b64": b64,
            "unseal_keys_hex": answer["keys"],
            "unseal_shares": shares,
            "unseal_threshold": threshold,
            "root_token": root,
        });
        print_json(&value);
        wipe(&mut value);
    } else {
        for (i, key) in b64.iter().enumerate() {
            outln!("Unseal Key {}: {key}", i + 1);
        }
        outln!("\nInitial Root Token: {root}\n");
        outln!(
            "Server initialized with {shares} key shares and a key threshold of {threshold}. Unseal it with `tresor operator unseal` and {threshold} of the keys; it starts sealed after every restart."
        );
    }
    wipe(&mut answer);
    Ok(())
}

/// `sys/unseal` with each share given, or one read from stdin.
fn unseal_remote(global: &GlobalArgs, client: &Client, given: Vec<String>) -> CmdResult {
    let mut keys: Vec<Zeroizing<String>> = given.into_iter().map(Zeroizing::new).collect();
    if keys.is_empty() {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprint!("Unseal Key: ");
        }
        let mut line = Zeroizing::new(String::new());
        stdin.lock().read_line(&mut line)?;
        keys.push(Zeroizing::new(line.trim().to_string()));
    }
    let mut status = client.seal_status()?;
    for key in &keys {
        let mut body = json!({ "key": key.as_str() });
        let answer = client.call(Method::Put, "sys/unseal", Some(&body));
        wipe(&mut body);
        status = answer?.unwrap_or(Value::Null);
    }
    crate::cmd::status::print(global, &status);
    Ok(())
}

fn generate_root(global: &GlobalArgs) -> CmdResult {
    let store = crate::store::open_embedded(global, Access::WriteOnDemand)?;
    let tokens = tresor_tokens::TokenStore::new(
        std::sync::Arc::clone(store.barrier()),
        tresor_tokens::Limits::default(),
    );
    let (token, entry) = tokens.create_root(None).map_err(Failure::runtime)?;
    if global.format == Format::Json {
        print_json(&json!({"root_token": token.expose(), "accessor": entry.accessor().expose()}));
    } else {
        outln!("Root Token: {}", token.expose());
        eprintln!(
            "Keep it secret; revoke it (tresor token revoke) once you have made narrower tokens."
        );
    }
    Ok(())
}

fn print_key_status(global: &GlobalArgs, status: &Value, rotated: bool) {
    if global.format == Format::Json {
        print_json(status);
        return;
    }
    if rotated {
        outln!("Success! Rotated key\n");
    }
    let mut rows = vec![
        vec!["Key Term".into(), cell(&status["term"])],
        vec!["Install Time".into(), cell(&status["install_time"])],
    ];
    if !status["terms"].is_null() {
        rows.push(vec!["Terms".into(), cell(&status["terms"])]);
    }
    out!("{}", table(&["Key", "Value"], &rows));
}
