//! `tresor login`: checks a token against the server and keeps it in a
//! file only its owner can read, for later commands.

use crate::failure::{CmdResult, Failure};
use crate::global::{Format, GlobalArgs};
use crate::output::{cell, print_json, table, wipe};
use crate::output::{out, outln};
use crate::store::require_remote;
use anyhow::anyhow;
use clap::Args;
use serde_json::Value;
use std::io::{BufRead, IsTerminal};
use zeroize::Zeroizing;

#[derive(Args)]
pub struct LoginArgs {
    /// Output format.
    #[arg(long, env = "TRESOR_FORMAT", value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The token; `-` or nothing reads it from stdin.
    pub token: Option<String>,
}

pub fn run(global: &GlobalArgs, token: Option<String>) -> CmdResult {
    let client = require_remote(global, "login")?;
    let token = match token {
        Some(t) if t != "-" => Zeroizing::new(t),
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprint!("Token: ");
            }
            let mut line = Zeroizing::new(String::new());
            stdin.lock().read_line(&mut line)?;
            Zeroizing::new(line.trim().to_string())
        }
    };
    if token.is_empty() {
        return Err(Failure::usage(anyhow!(
            "no token given: `tresor login TOKEN`, or the token on stdin"
        )));
    }
    let mut data = client.with_token(token.clone()).lookup_self()?;
    let path = tresor_client::save_token(&token)?;
    if let Value::Object(map) = &mut data {
        // The token itself is not printed back.
        if let Some(mut id) = map.remove("id") {
            wipe(&mut id);
        }
    }
    if global.format == Format::Json {
        print_json(&data);
        return Ok(());
    }
    outln!(
        "Success! You are now authenticated. The token is stored in {} and is used when TRESOR_TOKEN and VAULT_TOKEN are unset.\n",
        path.display()
    );
    let rows = vec![
        vec!["token_accessor".into(), cell(&data["accessor"])],
        vec!["token_duration".into(), cell(&data["ttl"])],
        vec!["token_renewable".into(), cell(&data["renewable"])],
        vec!["token_policies".into(), cell(&data["policies"])],
    ];
    out!("{}", table(&["Key", "Value"], &rows));
    Ok(())
}
