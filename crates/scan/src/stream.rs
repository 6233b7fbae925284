//! Feeds any reader through the engine in bounded chunks, so a huge file or
//! blob never has to fit in memory; chunks overlap so no match is cut.
use crate::engine::Engine;
use std::io::{self, Read};

const CHUNK: usize = 8 << 20;
/// Longest match the overlap guarantees to see whole (PEM blocks are smaller).
const OVERLAP: usize = 64 << 10;
/// Like git: a NUL byte early in the content means binary.
const BINARY_PROBE: usize = 8000;

/// A match located by line and column (both 1-based).
#[derive(Debug, Clone)]
pub struct Located {
    pub rule: usize,
    pub secret: Vec<u8>,
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Scanned { bytes: u64 },
    Binary,
}

/// Scans `reader` to its end (or until it looks binary); `buf` is reused scratch.
pub fn scan_reader(
    engine: &Engine,
    mut reader: impl Read,
    buf: &mut Vec<u8>,
    mut emit: impl FnMut(Located),
) -> io::Result<Outcome> {
    scan_chunks(engine, &mut reader, buf, CHUNK, OVERLAP, &mut emit)
}

/// Scans bytes already in memory (a decoded blob) without copying them.
pub fn scan_bytes(engine: &Engine, data: &[u8], mut emit: impl FnMut(Located)) -> Outcome {
    if is_binary(data) {
        return Outcome::Binary;
    }
    locate(engine, data, data.len(), 1, &mut emit);
    Outcome::Scanned {
        bytes: data.len() as u64,
    }
}

fn is_binary(data: &[u8]) -> bool {
    memchr::memchr(0, &data[..data.len().min(BINARY_PROBE)]).is_some()
}

fn scan_chunks(
    engine: &Engine,
    mut reader: impl Read,
    buf: &mut Vec<u8>,
    chunk: usize,
    overlap: usize,
    emit: &mut impl FnMut(Located),
) -> io::Result<Outcome> {
    buf.clear();
    let mut first_line = 1;
    let mut total = 0u64;
    let mut first = true;
    loop {
        let before = buf.len();
        let read = fill(&mut reader, buf, chunk)?;
        total += read as u64;
        let eof = buf.len() - before < chunk;
        if first && is_binary(buf) {
            return Ok(Outcome::Binary);
        }
        first = false;
        let report_end = if eof { buf.len() } else { buf.len() - overlap };
        locate(engine, buf, report_end, first_line, emit);
        if eof {
            return Ok(Outcome::Scanned { bytes: total });
        }
        first_line += memchr::memchr_iter(b'\n', &buf[..report_end]).count();
        buf.drain(..report_end);
    }
}

fn locate(
    engine: &Engine,
    buf: &[u8],
    report_end: usize,
    first_line: usize,
    emit: &mut impl FnMut(Located),
) {
    let mut line = first_line;
    let mut counted_to = 0;
    let mut line_start = 0;
    for m in engine.find(buf) {
        if m.secret.start >= report_end {
            break;
        }
        for nl in memchr::memchr_iter(b'\n', &buf[counted_to..m.secret.start]) {
            line += 1;
            line_start = counted_to + nl + 1;
        }
        counted_to = m.secret.start;
        emit(Located {
            rule: m.rule,
            secret: buf[m.secret.clone()].to_vec(),
            line,
            column: m.secret.start - line_start + 1,
        });
    }
}

/// Appends up to `limit` bytes, fewer only at end of input.
fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, limit: usize) -> io::Result<usize> {
    reader.by_ref().take(limit as u64).read_to_end(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Rule, RuleSpec, Severity};

    fn engine() -> Engine {
        let spec = RuleSpec {
            id: "t".into(),
            description: "t".into(),
            severity: Severity::High,
            keywords: vec!["tok_".into()],
            regex: Some(r"tok_[a-z0-9]{8}".into()),
            entropy: None,
            generic: false,
            multiline: false,
            check: None,
            tp: Vec::new(),
            tn: Vec::new(),
        };
        Engine::new(vec![Rule::new(spec)], Vec::new()).unwrap()
    }

    #[test]
    fn matches_across_chunk_boundaries_are_found_once_with_lines() {
        let mut data = Vec::new();
        let mut expected = Vec::new();
        for line in 1..=5000 {
            if line % 700 == 0 {
                expected.push(line);
                data.extend_from_slice(b"key tok_ab12cd34 here\n");
            } else {
                data.extend_from_slice(b"filler text without anything\n");
            }
        }
        let mut lines = Vec::new();
        let outcome = scan_chunks(&engine(), &data[..], &mut Vec::new(), 4096, 64, &mut |m| {
            lines.push(m.line);
            assert_eq!(m.column, 5);
        })
        .unwrap();
        assert_eq!(lines, expected);
        assert_eq!(
            outcome,
            Outcome::Scanned {
                bytes: data.len() as u64
            }
        );
    }

    #[test]
    fn binary_content_is_skipped() {
        let data = b"tok_ab12cd34\0\x01\x02";
        let outcome = scan_reader(&engine(), &data[..], &mut Vec::new(), |_| panic!("found"));
        assert_eq!(outcome.unwrap(), Outcome::Binary);
        let outcome = scan_bytes(&engine(), data, |_| panic!("found"));
        assert_eq!(outcome, Outcome::Binary);
    }

    #[test]
    fn bytes_in_memory_are_located_like_a_stream() {
        let data = b"one\ntwo tok_ab12cd34\n";
        let mut found = Vec::new();
        let outcome = scan_bytes(&engine(), data, |m| found.push((m.line, m.column)));
        assert_eq!(found, vec![(2, 5)]);
        assert_eq!(
            outcome,
            Outcome::Scanned {
                bytes: data.len() as u64
            }
        );
    }
}
