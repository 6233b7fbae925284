//! The `tresor` command: argument parsing and wiring only; every feature
//! lives in a library crate.
#![forbid(unsafe_code)]

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use global::{Format, Group};
use std::process::ExitCode;

mod args;
mod cmd;
mod failure;
mod global;
mod output;
mod store;

// The server allocates and frees many small buffers per request (JSON, audit
// lines, ciphertext); glibc's allocator spent about a tenth of its CPU time there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tresor",
    version,
    about = "Secrets for Kubernetes platforms: an encrypted, versioned store with Vault's KV semantics",
    after_help = "Flags may be written Vault-style with one dash (-mount=secret) or with two (--mount=secret)."
)]
struct Cli {
    #[command(flatten)]
    store: global::StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Initialize, unseal and manage a store's keys.
    Operator(Group<cmd::operator::OperatorCommand>),
    /// Read and write secrets in a KV version 2 engine.
    Kv(Group<cmd::kv::KvCommand>),
    #[command(flatten)]
    Platform(cmd::platform::PlatformCommand),
    /// Read existing secrets from AWS Secrets Manager, Vault or Kubernetes
    /// into the store, and print the tresor.yaml entries for them (never a value).
    Import(cmd::import::ImportArgs),
    /// Enable, disable and list secrets engines.
    Secrets(Group<cmd::secrets::SecretsCommand>),
    /// Manage a transit mount's keys and encrypt or decrypt with them.
    Transit(Group<cmd::transit::TransitCommand>),
    /// Check audit logs.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// Run the Vault-compatible HTTP server.
    Server(cmd::server::ServerArgs),
    /// Show a server's seal status (exit code 2 when sealed), or with -f
    /// tresor.yaml the rotation status of a platform's secrets.
    Status(cmd::status::StatusArgs),
    /// Rotate secrets: create, set where checked, test, promote; then deliver.
    Rotate(cmd::rotate::RotateArgs),
    /// Create, look up, renew and revoke a server's tokens.
    Token(Group<cmd::token::TokenCommand>),
    /// Write, read, list and delete a server's ACL policies.
    Policy(Group<cmd::policy::PolicyCommand>),
    /// Check a token against the server and keep it for later commands.
    Login(cmd::login::LoginArgs),
    /// Find committed credentials in files and git history.
    #[cfg(feature = "scan")]
    Scan(cmd::scan::ScanArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches_from(args::vault_style(std::env::args_os()));
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Subcommand names only: an argument may be a value.
    let mut holder = String::from("tresor");
    let mut at = &matches;
    while let Some((name, sub)) = at.subcommand() {
        holder.push(' ');
        holder.push_str(name);
        at = sub;
    }
    // Output that cannot be written unwinds out of the command (see
    // `output::write_stdout`); anything else unwinding is a real panic.
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(cli, &holder))) {
        Ok(code) => code,
        Err(payload) => match payload.downcast::<output::OutputError>() {
            Ok(failed) => output::exit_code(&failed.0),
            Err(panic) => std::panic::resume_unwind(panic),
        },
    }
}

fn run(cli: Cli, holder: &str) -> ExitCode {
    let global = |format| cli.store.with_format(format, holder);
    let result = match cli.command {
        Command::Operator(g) => cmd::operator::run(&global(g.format), g.command),
        Command::Kv(g) => cmd::kv::run(&global(g.format), g.command),
        Command::Platform(command) => cmd::platform::run(&global(Format::Table), command),
        Command::Import(args) => cmd::import::run(&global(Format::Table), args),
        Command::Secrets(g) => cmd::secrets::run(&global(g.format), g.command),
        Command::Transit(g) => cmd::transit::run(&global(g.format), g.command),
        Command::Server(args) => cmd::server::run(args),
        Command::Status(args) => match &args.file {
            Some(file) => return cmd::status::rotation(&global(args.format), file),
            None => return cmd::status::run(&global(args.format)),
        },
        Command::Rotate(args) => cmd::rotate::run(&global(Format::Table), args),
        Command::Token(g) => cmd::token::run(&global(g.format), g.command),
        Command::Policy(g) => cmd::policy::run(&global(g.format), g.command),
        Command::Login(args) => cmd::login::run(&global(args.format), args.token),
        Command::Audit(command) => cmd::audit::run(&global(Format::Table), command),
        #[cfg(feature = "scan")]
        Command::Scan(args) => return cmd::scan::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}
