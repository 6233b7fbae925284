use std::path::PathBuf;

/// Everything that can stop a scan; each message says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read {path}: {source}; check that it exists and is readable")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}; check the directory exists and is writable")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}; fix the file or pass another with --config")]
    Config { path: PathBuf, message: String },
    #[error("invalid rule `{id}`: {message}")]
    Rule { id: String, message: String },
    #[error("invalid baseline {path}: {message}; delete it to record a new one")]
    Baseline { path: PathBuf, message: String },
    #[error("git {command} failed: {message}; run it inside a git repository with git on PATH")]
    Git { command: String, message: String },
    #[error(
        "a pre-commit hook already exists at {0}; pass --force to replace it, or call `tresor scan --staged` from it"
    )]
    HookExists(PathBuf),
    #[error("cannot write the report: {0}")]
    Output(std::io::Error),
}
