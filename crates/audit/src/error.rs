//! Errors of the audit device and of log verification.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while writing or verifying an audit log. Messages say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "could not {action} audit file {path}: {source}; check that the path is writable and the disk is not full"
    )]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "the audit device did not confirm the write within {0:?}; the request must be refused (fail closed): check the disk or file behind the audit device"
    )]
    Timeout(Duration),

    #[error(
        "the audit device has been blocked on I/O for more than {0:?}; refusing at once until it recovers: check the disk or file behind the audit device"
    )]
    Stalled(Duration),

    #[error(
        "the audit device's queue is full (its writer is not keeping up); the request must be refused: check the disk behind the audit device"
    )]
    Backlog,

    #[error("the audit device is closed; enable it again")]
    Closed,

    #[error(
        "a write to audit file {0} failed and could not be rolled back; fix the file (see `tresor audit verify`), then reopen the device"
    )]
    Poisoned(PathBuf),

    #[error(
        "audit file {0} ends with an incomplete line (the process stopped mid-write); run `tresor audit verify` on it, move it aside and start a new file"
    )]
    TornTail(PathBuf),

    #[error(
        "audit file {0} does not end with a tresor audit chain line; use a new file for the audit device"
    )]
    NotAChain(PathBuf),

    #[error("audit salt must be at least {min} bytes; generate one with `Salt::generate()`")]
    SaltTooShort { min: usize },

    #[error(
        "the operating system's random generator failed: {0}; check /dev/urandom or getrandom(2) availability"
    )]
    Random(getrandom::Error),

    #[error("could not encode the audit entry: {0}")]
    Encode(String),

    #[error("audit log {path} is broken at line {line}: {problem}")]
    ChainBroken {
        path: PathBuf,
        line: usize,
        problem: ChainProblem,
    },
}

/// How a hash chain is broken at the reported line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainProblem {
    #[error("not a JSON audit line with a chain header")]
    Unparseable,
    #[error(
        "the line is incomplete (no trailing newline): the writer stopped mid-line or the file was cut"
    )]
    Incomplete,
    #[error("the file must start with a chain_start line; lines were removed from the beginning")]
    MissingStart,
    #[error("a chain_start line may only be the first line; lines from another log were inserted")]
    UnexpectedStart,
    #[error(
        "the line belongs to chain {found}, not {expected}; lines from another log were inserted"
    )]
    WrongChain { expected: String, found: String },
    #[error(
        "sequence jumps from {previous} to {found}: lines were deleted before this line, or it was moved here"
    )]
    Gap { previous: u64, found: u64 },
    #[error(
        "sequence number {found} follows {previous}: lines were reordered, duplicated or inserted"
    )]
    OutOfOrder { previous: u64, found: u64 },
    #[error("the line was modified: its hash differs from the one the next line recorded")]
    Modified,
    #[error("the line was inserted: the next line links to the line before it")]
    Inserted,
    #[error("the line does not link to the line before it: its `prev` hash was modified")]
    LinkBroken,
    #[error("the line differs from the checkpoint taken when it was written: it was modified")]
    CheckpointMismatch,
    #[error(
        "the log ends at sequence {last} but the checkpoint recorded sequence {checkpoint}: lines were removed from the end"
    )]
    Truncated { last: u64, checkpoint: u64 },
    #[error(
        "the checkpoint belongs to chain {checkpoint}, this log is chain {log}: verify against the right file"
    )]
    OtherChain { checkpoint: String, log: String },
}
