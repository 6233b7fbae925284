use crate::failure::{CmdResult, Failure};
use crate::output::{key_values, print_json, table};
use crate::store::{Format, GlobalArgs, parse_shares, shares_from_env};
use clap::Subcommand;
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use tresor_barrier::SealKind;
use tresor_core::{Access, InitOptions, Unseal};
use zeroize::Zeroizing;

#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Create a new store, sealed by a key file (the default) or by Shamir shares.
    Init {
        /// Split the unseal key into this many shares.
        #[arg(long, requires = "key_threshold", conflicts_with = "key_file")]
        key_shares: Option<u8>,
        /// How many shares unseal the store.
        #[arg(long, requires = "key_shares")]
        key_threshold: Option<u8>,
        /// Where to write the key file (default: under ~/.config/tresor/keys/).
        #[arg(long = "key-file", id = "key_file", value_name = "FILE")]
        init_key_file: Option<PathBuf>,
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
}

pub fn run(global: &GlobalArgs, command: OperatorCommand) -> CmdResult {
    match command {
        OperatorCommand::Init {
            key_shares,
            key_threshold,
            init_key_file,
        } => init(global, key_shares.zip(key_threshold), init_key_file),
        OperatorCommand::Unseal { shares } => unseal(global, shares),
        OperatorCommand::Rotate => rotate(global),
        OperatorCommand::KeyStatus => key_status(global),
        OperatorCommand::GenerateRoot => generate_root(global),
    }
}

fn init(global: &GlobalArgs, shamir: Option<(u8, u8)>, key_file: Option<PathBuf>) -> CmdResult {
    let options = match shamir {
        Some((shares, threshold)) => InitOptions::Shamir { shares, threshold },
        None => InitOptions::KeyFile(key_file.or_else(|| global.key_file.clone())),
    };
    let out = tresor_core::init(&global.store, options)?;
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
    match (&out.config.seal, &out.key_file) {
        (SealKind::Shamir { shares, threshold }, _) => {
            for (i, share) in out.shares.iter().enumerate() {
                println!("Unseal Key {}: {}", i + 1, share.to_base64().as_str());
            }
            println!();
            println!(
                "Store initialized at {} with {shares} key shares and a key threshold of {threshold}.",
                store.display()
            );
            println!(
                "Distribute the shares to different people: any {threshold} of them unseal the store."
            );
        }
        (SealKind::KeyFile { .. }, Some(path)) => {
            println!("Store initialized at {}.", store.display());
            println!("Unseal key file: {}", path.display());
            eprintln!(
                "WARNING: back up the key file now, away from the store: without it the store cannot be opened."
            );
        }
        (SealKind::KeyFile { path }, None) => println!("Unseal key file: {}", path.display()),
    }
    println!("KV version 2 is mounted at secret/.");
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
    if let SealKind::Shamir { threshold, .. } = config.seal {
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
        key_file: global.key_file.clone(),
        shares,
    };
    tresor_core::open(&global.store, &unseal, Access::ReadOnly)?;
    let seal_type = match config.seal {
        SealKind::Shamir { .. } => "shamir",
        SealKind::KeyFile { .. } => "key-file",
    };
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
        print!("{}", key_values(&status));
    }
    Ok(())
}

fn rotate(global: &GlobalArgs) -> CmdResult {
    let store = crate::store::open(global, Access::WriteOnDemand)?;
    let status = store.barrier().rotate()?;
    print_key_status(global, &status, true);
    Ok(())
}

fn key_status(global: &GlobalArgs) -> CmdResult {
    let store = crate::store::open(global, Access::ReadOnly)?;
    let status = store.barrier().key_status().map_err(Failure::from)?;
    print_key_status(global, &status, false);
    Ok(())
}

fn generate_root(global: &GlobalArgs) -> CmdResult {
    let store = crate::store::open(global, Access::WriteOnDemand)?;
    let tokens = tresor_tokens::TokenStore::new(
        std::sync::Arc::clone(store.barrier()),
        tresor_tokens::Limits::default(),
    );
    let (token, entry) = tokens.create_root(None).map_err(Failure::runtime)?;
    if global.format == Format::Json {
        print_json(&json!({"root_token": token.expose(), "accessor": entry.accessor().expose()}));
    } else {
        println!("Root Token: {}", token.expose());
        eprintln!("Keep it secret; revoke it (tresor token revoke) once you have made narrower tokens.");
    }
    Ok(())
}

fn print_key_status(global: &GlobalArgs, status: &tresor_barrier::KeyStatus, rotated: bool) {
    let installed = humantime::format_rfc3339_seconds(status.install_time).to_string();
    if global.format == Format::Json {
        print_json(&json!({"term": status.term, "install_time": installed, "terms": status.terms}));
        return;
    }
    if rotated {
        println!("Success! Rotated key\n");
    }
    print!(
        "{}",
        table(
            &["Key", "Value"],
            &[
                vec!["Key Term".into(), status.term.to_string()],
                vec!["Install Time".into(), installed],
                vec!["Terms".into(), status.terms.to_string()],
            ]
        )
    );
}
