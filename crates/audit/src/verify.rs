//! Offline verification of an audit file's hash chain.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::iter::Peekable;
use std::path::{Path, PathBuf};

use crate::chain::{Checkpoint, LineHead, START_TYPE, sha256_hex};
use crate::error::{AuditError, ChainProblem};

/// A verified chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Lines in the file, the start marker included.
    pub lines: usize,
    pub chain_id: String,
    /// Position of the last line; compare with a stored checkpoint to detect truncation.
    pub last: Checkpoint,
    /// The previous file's chain, when this file continues it after a rotation.
    pub continues: Option<Checkpoint>,
}

/// Verifies a file's chain; editing, deleting, inserting or reordering lines is reported
/// with the first bad line. Truncation at the end needs [`verify_with_checkpoint`].
pub fn verify(path: &Path) -> Result<VerifyReport, AuditError> {
    Verifier::new(path)?.run(None)
}

/// Like [`verify`], and also checks the log still holds the checkpointed line unchanged,
/// which detects lines removed from the end and edits of the last lines.
pub fn verify_with_checkpoint(
    path: &Path,
    checkpoint: &Checkpoint,
) -> Result<VerifyReport, AuditError> {
    Verifier::new(path)?.run(Some(checkpoint))
}

/// One parsed line.
struct Record {
    number: usize,
    hash: String,
    head: LineHead,
}

type Records = Peekable<Box<dyn Iterator<Item = Result<Record, AuditError>>>>;

struct Verifier {
    path: PathBuf,
    records: Records,
}

impl Verifier {
    fn new(path: &Path) -> Result<Verifier, AuditError> {
        let file = File::open(path).map_err(|source| AuditError::Io {
            action: "open",
            path: path.to_owned(),
            source,
        })?;
        let owned = path.to_owned();
        let mut reader = BufReader::new(file);
        let mut number = 0;
        let lines = std::iter::from_fn(move || {
            let mut bytes = Vec::new();
            match reader.read_until(b'\n', &mut bytes) {
                Ok(0) => None,
                Ok(_) => {
                    number += 1;
                    Some(parse_record(&owned, number, bytes))
                }
                Err(source) => Some(Err(AuditError::Io {
                    action: "read",
                    path: owned.clone(),
                    source,
                })),
            }
        });
        let boxed: Box<dyn Iterator<Item = Result<Record, AuditError>>> = Box::new(lines);
        Ok(Verifier {
            path: path.to_owned(),
            records: boxed.peekable(),
        })
    }

    fn broken(&self, line: usize, problem: ChainProblem) -> AuditError {
        AuditError::ChainBroken {
            path: self.path.clone(),
            line,
            problem,
        }
    }

    fn run(mut self, checkpoint: Option<&Checkpoint>) -> Result<VerifyReport, AuditError> {
        let first = match self.records.next() {
            Some(record) => record?,
            None => return Err(self.broken(1, ChainProblem::MissingStart)),
        };
        if first.head.kind != START_TYPE || first.head.chain.seq != 0 {
            return Err(self.broken(1, ChainProblem::MissingStart));
        }
        if let Some(cp) = checkpoint
            && cp.chain_id != first.head.chain.id
        {
            let problem = ChainProblem::OtherChain {
                checkpoint: cp.chain_id.clone(),
                log: first.head.chain.id.clone(),
            };
            return Err(self.broken(1, problem));
        }
        self.check_checkpoint(&first, checkpoint)?;
        let continues = first.head.continues.clone();
        let mut before_previous: Option<Record> = None;
        let mut previous = first;
        while let Some(record) = self.records.next() {
            let current = record?;
            self.check_link(before_previous.as_ref(), &previous, &current)?;
            self.check_checkpoint(&current, checkpoint)?;
            before_previous = Some(std::mem::replace(&mut previous, current));
        }
        if let Some(cp) = checkpoint
            && previous.head.chain.seq < cp.seq
        {
            let problem = ChainProblem::Truncated {
                last: previous.head.chain.seq,
                checkpoint: cp.seq,
            };
            return Err(self.broken(previous.number + 1, problem));
        }
        Ok(VerifyReport {
            lines: previous.number,
            chain_id: previous.head.chain.id.clone(),
            last: Checkpoint {
                chain_id: previous.head.chain.id,
                seq: previous.head.chain.seq,
                hash: previous.hash,
            },
            continues,
        })
    }

    /// Checks that `current` directly follows `previous`, naming the line most likely at fault.
    fn check_link(
        &mut self,
        before_previous: Option<&Record>,
        previous: &Record,
        current: &Record,
    ) -> Result<(), AuditError> {
        let (prev, cur) = (&previous.head.chain, &current.head.chain);
        if cur.id != prev.id {
            let problem = ChainProblem::WrongChain {
                expected: prev.id.clone(),
                found: cur.id.clone(),
            };
            return Err(self.broken(current.number, problem));
        }
        if current.head.kind == START_TYPE {
            return Err(self.broken(current.number, ChainProblem::UnexpectedStart));
        }
        if cur.seq <= prev.seq {
            // A forged line slipped in with a plausible sequence number: the line after it
            // still links to the line before it.
            if let Some(bp) = before_previous
                && cur.seq == bp.head.chain.seq + 1
                && cur.prev.as_deref() == Some(bp.hash.as_str())
            {
                return Err(self.broken(previous.number, ChainProblem::Inserted));
            }
            let problem = ChainProblem::OutOfOrder {
                previous: prev.seq,
                found: cur.seq,
            };
            return Err(self.broken(current.number, problem));
        }
        if cur.seq > prev.seq + 1 {
            let problem = ChainProblem::Gap {
                previous: prev.seq,
                found: cur.seq,
            };
            return Err(self.broken(current.number, problem));
        }
        if cur.prev.as_deref() == Some(previous.hash.as_str()) {
            return Ok(());
        }
        // The link is broken: if the next line still vouches for `current`, then `current` is
        // intact and `previous` was modified; otherwise `current`'s own `prev` was edited.
        let next_vouches = matches!(
            self.records.peek(),
            Some(Ok(next)) if next.head.chain.prev.as_deref() == Some(current.hash.as_str())
        );
        let is_last = self.records.peek().is_none();
        if next_vouches || is_last {
            Err(self.broken(previous.number, ChainProblem::Modified))
        } else {
            Err(self.broken(current.number, ChainProblem::LinkBroken))
        }
    }

    fn check_checkpoint(
        &self,
        record: &Record,
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), AuditError> {
        match checkpoint {
            Some(cp) if cp.seq == record.head.chain.seq && cp.hash != record.hash => {
                Err(self.broken(record.number, ChainProblem::CheckpointMismatch))
            }
            _ => Ok(()),
        }
    }
}

fn parse_record(path: &Path, number: usize, mut bytes: Vec<u8>) -> Result<Record, AuditError> {
    let broken = |problem| AuditError::ChainBroken {
        path: path.to_owned(),
        line: number,
        problem,
    };
    if bytes.pop() != Some(b'\n') {
        return Err(broken(ChainProblem::Incomplete));
    }
    let head: LineHead =
        serde_json::from_slice(&bytes).map_err(|_| broken(ChainProblem::Unparseable))?;
    Ok(Record {
        number,
        hash: sha256_hex(&bytes),
        head,
    })
}
