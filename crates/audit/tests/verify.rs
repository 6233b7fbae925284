//! Tampering with a log is detected, naming the right line.

use std::fs;
use std::path::{Path, PathBuf};

use tresor_audit::{
    AuditEntry, AuditError, ChainProblem, Checkpoint, EntryKind, FileDevice, FileDeviceConfig,
    RequestInfo, Salt, verify, verify_with_checkpoint,
};

/// A log of a start line plus ten entries (11 lines), its lines, and its final checkpoint.
fn sample(dir: &Path) -> (Vec<String>, Checkpoint) {
    let path = dir.join("original.log");
    let device = FileDevice::open(FileDeviceConfig::new(&path), Salt::generate().unwrap()).unwrap();
    for i in 0..10 {
        let entry = AuditEntry {
            kind: EntryKind::Request,
            auth: None,
            request: RequestInfo {
                id: format!("req-{i}"),
                operation: "read".into(),
                path: format!("secret/data/item{i}"),
                ..RequestInfo::default()
            },
            response: None,
            error: None,
        };
        device.log(&entry).unwrap();
    }
    let checkpoint = device.checkpoint().unwrap();
    device.close().unwrap();
    let text = fs::read_to_string(&path).unwrap();
    (text.lines().map(str::to_owned).collect(), checkpoint)
}

fn write(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("tampered.log");
    fs::write(
        &path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
    path
}

fn broken_at(result: Result<tresor_audit::VerifyReport, AuditError>) -> (usize, ChainProblem) {
    match result {
        Err(AuditError::ChainBroken { line, problem, .. }) => (line, problem),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

/// Replaces the `prev` hash of a line by another valid-looking hash.
fn forge_prev(line: &str) -> String {
    let start = line.find("\"prev\":\"").unwrap() + 8;
    let mut forged = line.to_owned();
    forged.replace_range(start..start + 64, &"0".repeat(64));
    forged
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn untouched_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, checkpoint) = sample(dir.path());
    let path = write(dir.path(), &lines);
    let report = verify_with_checkpoint(&path, &checkpoint).unwrap();
    assert_eq!(report.lines, 11);
    assert_eq!(report.last, checkpoint);
    assert_eq!(report.continues, None);
}

#[test]
fn edited_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    lines[4] = lines[4].replace("item3", "item9");
    let (line, problem) = broken_at(verify(&write(dir.path(), &lines)));
    assert_eq!((line, problem), (5, ChainProblem::Modified));
}

#[test]
fn edited_start_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    lines[0] = lines[0].replace("\"time\":\"", "\"time\":\"1");
    assert_eq!(
        broken_at(verify(&write(dir.path(), &lines))),
        (1, ChainProblem::Modified)
    );
}

#[test]
fn edited_link_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    lines[5] = forge_prev(&lines[5]);
    assert_eq!(
        broken_at(verify(&write(dir.path(), &lines))),
        (6, ChainProblem::LinkBroken)
    );
}

#[test]
fn deleted_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    lines.remove(4);
    let (line, problem) = broken_at(verify(&write(dir.path(), &lines)));
    assert_eq!(line, 5);
    assert!(
        matches!(
            problem,
            ChainProblem::Gap {
                previous: 3,
                found: 5
            }
        ),
        "{problem}"
    );
}

#[test]
fn deleted_first_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    lines.remove(0);
    assert_eq!(
        broken_at(verify(&write(dir.path(), &lines))),
        (1, ChainProblem::MissingStart)
    );
}

#[test]
fn reordered_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    lines.swap(3, 4);
    let (line, problem) = broken_at(verify(&write(dir.path(), &lines)));
    assert_eq!(line, 4);
    assert!(matches!(problem, ChainProblem::Gap { .. }), "{problem}");
}

#[test]
fn duplicated_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    let copy = lines[2].clone();
    lines.insert(6, copy);
    let (line, problem) = broken_at(verify(&write(dir.path(), &lines)));
    assert_eq!(line, 7);
    assert!(
        matches!(problem, ChainProblem::OutOfOrder { .. }),
        "{problem}"
    );
}

#[test]
fn forged_insertion_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    // A forger who knows the format: right chain id, next sequence number, valid link.
    let after = &lines[4];
    let forged = lines[5].replace(
        &lines[5][lines[5].find("\"prev\":\"").unwrap() + 8..][..64],
        &sha256_hex(after),
    );
    let forged = forged.replace("item5", "forged");
    lines.insert(5, forged);
    assert_eq!(
        broken_at(verify(&write(dir.path(), &lines))),
        (6, ChainProblem::Inserted)
    );
}

#[test]
fn line_from_another_log_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    let other_dir = tempfile::tempdir().unwrap();
    let (other, _) = sample(other_dir.path());
    lines.insert(3, other[3].clone());
    let (line, problem) = broken_at(verify(&write(dir.path(), &lines)));
    assert_eq!(line, 4);
    assert!(
        matches!(problem, ChainProblem::WrongChain { .. }),
        "{problem}"
    );
}

#[test]
fn truncation_is_detected_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, checkpoint) = sample(dir.path());
    lines.truncate(9);
    let path = write(dir.path(), &lines);
    assert_eq!(verify(&path).unwrap().lines, 9);
    let (line, problem) = broken_at(verify_with_checkpoint(&path, &checkpoint));
    assert_eq!(line, 10);
    assert_eq!(
        problem,
        ChainProblem::Truncated {
            last: 8,
            checkpoint: 10
        }
    );
}

#[test]
fn edited_last_line_is_detected_with_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, checkpoint) = sample(dir.path());
    lines[10] = lines[10].replace("item9", "item0");
    let path = write(dir.path(), &lines);
    assert_eq!(
        broken_at(verify_with_checkpoint(&path, &checkpoint)),
        (11, ChainProblem::CheckpointMismatch)
    );
}

#[test]
fn cut_last_line_and_garbage_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (lines, _) = sample(dir.path());
    let path = dir.path().join("cut.log");
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    text.truncate(text.len() - 10);
    fs::write(&path, text).unwrap();
    assert_eq!(broken_at(verify(&path)), (11, ChainProblem::Incomplete));

    let mut garbage = lines.clone();
    garbage[7] = "not json".into();
    assert_eq!(
        broken_at(verify(&write(dir.path(), &garbage))),
        (8, ChainProblem::Unparseable)
    );
}

#[test]
fn error_messages_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (mut lines, _) = sample(dir.path());
    lines.remove(6);
    let message = verify(&write(dir.path(), &lines)).unwrap_err().to_string();
    assert!(
        message.contains("tampered.log is broken at line 7"),
        "{message}"
    );
    assert!(message.contains("lines were deleted"), "{message}");
}
