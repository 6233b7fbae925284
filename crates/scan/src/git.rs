//! Git sources: `git rev-list` and `git diff --cached` say which blobs to
//! scan, workers read each unique blob once in-process (gix), and `git log`
//! finds provenance only for blobs that hold findings.
use crate::error::ScanError;
use crate::finding::{Commit, Finding};
use crate::scanner::{History, Refs, Report, Scanner, count, lock, threads};
use crate::stream::Outcome;
use gix::odb::pack;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A blob to scan and the path it was reached by.
struct Blob {
    oid: String,
    path: String,
}

fn git(repo: &Path) -> Command {
    let mut command = Command::new("git");
    command.current_dir(repo).stdin(Stdio::null());
    command
}

fn spawn(mut command: Command, what: &str) -> Result<Child, ScanError> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| git_error(what, e.to_string()))
}

fn git_error(command: &str, message: String) -> ScanError {
    ScanError::Git {
        command: command.to_string(),
        message: message.trim().to_string(),
    }
}

/// Waits for `child` and turns a non-zero exit into an error with its stderr.
fn finish(mut child: Child, what: &str) -> Result<(), ScanError> {
    let mut stderr = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| git_error(what, e.to_string()))?;
    if status.success() {
        Ok(())
    } else {
        Err(git_error(what, stderr))
    }
}

fn rev_args(history: &History) -> Vec<String> {
    let mut args = match &history.refs {
        Refs::Head => vec!["HEAD".to_string()],
        Refs::All => vec!["--all".to_string()],
        Refs::Branch(branch) => vec![branch.clone()],
    };
    if let Some(since) = &history.since {
        args.push(format!("^{since}"));
    }
    args
}

/// Findings tagged with the blob they were found in.
type Tagged = Vec<(String, Finding)>;

/// Workers claim blobs in batches of this size, which keeps them balanced.
const BATCH: usize = 64;

pub fn history(scanner: &Scanner, repo: &Path, history: &History) -> Result<Report, ScanError> {
    let revs = rev_args(history);
    let blobs: Vec<Blob> = list_blobs(repo, &revs)?
        .into_iter()
        .filter(|b| !scanner.path_allowed(&b.path))
        .collect();
    let store = open(repo)?;
    let (mut found, mut report, scanned) = scan_packs(scanner, &store, &blobs)?;
    let rest: Vec<Blob> = blobs
        .into_iter()
        .zip(scanned)
        .filter(|(_, done)| !done)
        .map(|(blob, _)| blob)
        .collect();
    let (more, part) = scan_in_parallel(scanner, &store, &rest)?;
    found.extend(more);
    merge(&mut report, part);
    report.findings = attribute(repo, &revs, found)?;
    Ok(report)
}

fn merge(report: &mut Report, part: Report) {
    report.bytes += part.bytes;
    report.files += part.files;
    report.warnings.extend(part.warnings);
}

/// A pack is walked whole when at least this share of its objects are
/// blobs to scan; otherwise its blobs are looked up one by one.
const WALK_SHARE: u32 = 4;

/// Scans the blobs that sit in the repository's packs by walking each pack's
/// delta trees: every object is inflated once and every delta applied once
/// to a base still in memory, on every core, in pack order. Looking blobs up
/// one by one instead re-inflates delta chains. Returns which blobs were
/// scanned; the others (loose objects, packs holding few of them) are left
/// to the caller.
fn scan_packs(
    scanner: &Scanner,
    repo: &gix::ThreadSafeRepository,
    blobs: &[Blob],
) -> Result<(Tagged, Report, Vec<bool>), ScanError> {
    let wanted: HashMap<gix::ObjectId, usize> = blobs
        .iter()
        .enumerate()
        .filter_map(|(i, b)| Some((gix::ObjectId::from_hex(b.oid.as_bytes()).ok()?, i)))
        .collect();
    let done: Vec<AtomicBool> = blobs.iter().map(|_| AtomicBool::new(false)).collect();
    let found = Mutex::new((Tagged::new(), Report::default()));
    let hash = repo.to_thread_local().object_hash();
    for index_path in pack_indices(repo.objects_dir()) {
        let read_error =
            |e: String| git_error("read pack", format!("{}: {e}", index_path.display()));
        let index =
            pack::index::File::at(&index_path, hash).map_err(|e| read_error(e.to_string()))?;
        let in_pack = wanted
            .keys()
            .filter(|id| index.lookup(id).is_some())
            .count();
        if in_pack == 0 || (in_pack as u64) * u64::from(WALK_SHARE) < u64::from(index.num_objects())
        {
            continue;
        }
        let data = pack::data::File::at(index_path.with_extension("pack"), hash)
            .map_err(|e| read_error(e.to_string()))?;
        let scan = |kind: gix::object::Kind, bytes: &[u8], entry: &pack::index::Entry| {
            let Some(&i) = wanted.get(&entry.oid) else {
                return;
            };
            if kind != gix::object::Kind::Blob || done[i].swap(true, Ordering::Relaxed) {
                return;
            }
            let mut findings = Vec::new();
            let outcome = scanner.scan_bytes(bytes, &blobs[i].path, &mut findings);
            let mut found = lock(&found);
            count(&mut found.1, outcome);
            found
                .0
                .extend(findings.into_iter().map(|f| (blobs[i].oid.clone(), f)));
        };
        index
            .traverse_with_index(
                &data,
                |kind, bytes, entry, _: &dyn gix::progress::Progress| {
                    scan(kind, bytes, entry);
                    Ok::<_, std::convert::Infallible>(())
                },
                &mut gix::progress::Discard,
                &AtomicBool::new(false),
                pack::index::traverse::with_index::Options {
                    thread_limit: Some(threads()),
                    // Object ids come from the index; re-hashing every object
                    // would cost as much as inflating it.
                    check:
                        pack::index::traverse::SafetyCheck::SkipFileAndObjectChecksumVerification,
                },
            )
            .map_err(|e| read_error(e.to_string()))?;
    }
    let (tagged, report) = found.into_inner().unwrap_or_else(|p| p.into_inner());
    let done = done.into_iter().map(AtomicBool::into_inner).collect();
    Ok((tagged, report, done))
}

/// The `.idx` files of the repository's packs.
fn pack_indices(objects: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(objects.join("pack")) else {
        return Vec::new();
    };
    let mut indices: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "idx") && p.with_extension("pack").is_file())
        .collect();
    indices.sort();
    indices
}

/// Blobs larger than this are decompressed whole by the object database, so
/// they are skipped with a warning instead of risking the memory limit.
const MAX_BLOB: u64 = 256 << 20;

fn open(repo: &Path) -> Result<gix::ThreadSafeRepository, ScanError> {
    gix::discover(repo)
        .map(gix::Repository::into_sync)
        .map_err(|e| git_error("open", e.to_string()))
}

/// One worker per core; each claims batches of blobs from a shared counter,
/// so large and small blobs spread evenly.
fn scan_in_parallel(
    scanner: &Scanner,
    repo: &gix::ThreadSafeRepository,
    blobs: &[Blob],
) -> Result<(Tagged, Report), ScanError> {
    if blobs.is_empty() {
        return Ok((Tagged::new(), Report::default()));
    }
    let next = AtomicUsize::new(0);
    let workers = threads().min(blobs.len().div_ceil(BATCH)).max(1);
    let results: Vec<Result<(Tagged, Report), ScanError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| s.spawn(|| scan_blobs(scanner, repo, blobs, &next)))
            .collect();
        handles
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(git_error("read objects", "a worker stopped".into())))
            })
            .collect()
    });
    let mut found = Vec::new();
    let mut report = Report::default();
    for result in results {
        let (tagged, part) = result?;
        found.extend(tagged);
        merge(&mut report, part);
    }
    Ok((found, report))
}

fn scan_blobs(
    scanner: &Scanner,
    repo: &gix::ThreadSafeRepository,
    blobs: &[Blob],
    next: &AtomicUsize,
) -> Result<(Tagged, Report), ScanError> {
    let mut repo = repo.to_thread_local();
    // Every blob is read once: caching decoded objects would only cost memory.
    repo.object_cache_size(None);
    let mut report = Report::default();
    let mut found = Vec::new();
    loop {
        let start = next.fetch_add(BATCH, Ordering::Relaxed);
        if start >= blobs.len() {
            return Ok((found, report));
        }
        for blob in &blobs[start..(start + BATCH).min(blobs.len())] {
            let mut findings = Vec::new();
            match scan_blob(scanner, &repo, blob, &mut findings)? {
                Some(outcome) => count(&mut report, outcome),
                None => report.warnings.push(format!(
                    "{} ({}): larger than 256 MiB, not scanned",
                    blob.path, blob.oid
                )),
            }
            found.extend(findings.into_iter().map(|f| (blob.oid.clone(), f)));
        }
    }
}

/// Scans one blob; `None` when it is too large to read whole.
fn scan_blob(
    scanner: &Scanner,
    repo: &gix::Repository,
    blob: &Blob,
    findings: &mut Vec<Finding>,
) -> Result<Option<Outcome>, ScanError> {
    let read_error = |e: String| git_error("read objects", format!("{}: {e}", blob.oid));
    let id = gix::ObjectId::from_hex(blob.oid.as_bytes()).map_err(|e| read_error(e.to_string()))?;
    let header = repo
        .find_header(id)
        .map_err(|e| read_error(e.to_string()))?;
    if header.size() > MAX_BLOB {
        return Ok(None);
    }
    let object = repo
        .find_object(id)
        .map_err(|e| read_error(e.to_string()))?;
    Ok(Some(scanner.scan_bytes(&object.data, &blob.path, findings)))
}

/// `git rev-list --objects` lists each reachable object once, blobs with a path.
fn list_blobs(repo: &Path, revs: &[String]) -> Result<Vec<Blob>, ScanError> {
    let mut command = git(repo);
    command
        .args([
            "rev-list",
            "--objects",
            "--filter=object:type=blob",
            "--filter-provided-objects",
        ])
        .args(revs)
        .arg("--");
    let mut child = spawn(command, "rev-list")?;
    let mut blobs = Vec::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| git_error("rev-list", e.to_string()))?;
            if let Some((oid, path)) = line.split_once(' ') {
                blobs.push(Blob {
                    oid: oid.to_string(),
                    path: path.to_string(),
                });
            }
        }
    }
    finish(child, "rev-list")?;
    Ok(blobs)
}

/// Finds, for each blob with findings, the oldest commit that added it, then
/// keeps one finding per secret and path: its first appearance.
fn attribute(
    repo: &Path,
    revs: &[String],
    found: Vec<(String, Finding)>,
) -> Result<Vec<Finding>, ScanError> {
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut origins: HashMap<String, Option<Origin>> =
        found.iter().map(|(oid, _)| (oid.clone(), None)).collect();
    let mut command = git(repo);
    command
        .args([
            "log",
            "--format=%x00%H%x00%an <%ae>%x00%aI%x00%at",
            "--raw",
            "--no-abbrev",
            "--no-renames",
        ])
        .args(revs)
        .arg("--");
    let mut child = spawn(command, "log")?;
    if let Some(out) = child.stdout.take() {
        scan_log(out, &mut origins).map_err(|e| git_error("log", e.to_string()))?;
    }
    finish(child, "log")?;
    // Earliest author time first; commits of the same second by their place
    // in the log (a larger age is older), so the order of the scan never matters.
    let mut first: HashMap<(String, String), (Finding, usize)> = HashMap::new();
    for (oid, mut finding) in found {
        let mut age = 0;
        if let Some(Some(origin)) = origins.get(oid.as_str()) {
            finding.commit = Some(origin.commit.clone());
            finding.path = origin.path.clone();
            age = origin.age;
        }
        let key = (finding.fingerprint.clone(), finding.path.clone());
        let time = |f: &Finding| f.commit.as_ref().map_or(i64::MAX, |c| c.timestamp);
        let rank = (time(&finding), std::cmp::Reverse(age));
        match first.get(&key) {
            Some((existing, existing_age))
                if (time(existing), std::cmp::Reverse(*existing_age)) <= rank => {}
            _ => {
                first.insert(key, (finding, age));
            }
        }
    }
    Ok(first.into_values().map(|(finding, _)| finding).collect())
}

/// The commit that introduced a blob, the path it had there, and how many
/// commits came before it in the log (newest first).
struct Origin {
    commit: Commit,
    path: String,
    age: usize,
}

/// Walks `git log --raw` newest first, so the last sighting of a blob is the
/// commit that introduced it.
fn scan_log(out: ChildStdout, origins: &mut HashMap<String, Option<Origin>>) -> io::Result<()> {
    let mut commit: Option<Commit> = None;
    let mut age = 0;
    for line in BufReader::with_capacity(1 << 20, out).split(b'\n') {
        let line = line?;
        if let Some(rest) = line.strip_prefix(b"\0") {
            age += 1;
            let text = String::from_utf8_lossy(rest);
            let mut parts = text.split('\0');
            let (id, author, date, time) = (parts.next(), parts.next(), parts.next(), parts.next());
            commit = Some(Commit {
                id: id.unwrap_or_default().to_string(),
                author: author.unwrap_or_default().to_string(),
                date: date.unwrap_or_default().to_string(),
                timestamp: time.and_then(|t| t.trim().parse().ok()).unwrap_or(0),
            });
        } else if line.starts_with(b":") {
            let text = String::from_utf8_lossy(&line);
            let Some((meta, path)) = text.split_once('\t') else {
                continue;
            };
            let Some(new_oid) = meta.split(' ').nth(3) else {
                continue;
            };
            if let (Some(slot), Some(c)) = (origins.get_mut(new_oid), &commit) {
                *slot = Some(Origin {
                    commit: c.clone(),
                    path: path.to_string(),
                    age,
                });
            }
        }
    }
    Ok(())
}

/// Scans the staged version of every added, copied, modified or renamed file.
pub fn staged(scanner: &Scanner, repo: &Path) -> Result<Report, ScanError> {
    let output = git(repo)
        .args([
            "diff",
            "--cached",
            "--raw",
            "-z",
            "--no-abbrev",
            "--diff-filter=ACMR",
        ])
        .output()
        .map_err(|e| git_error("diff --cached", e.to_string()))?;
    if !output.status.success() {
        return Err(git_error(
            "diff --cached",
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    let blobs: Vec<Blob> = parse_raw_z(&output.stdout)
        .into_iter()
        .filter(|b| !scanner.path_allowed(&b.path))
        .collect();
    if blobs.is_empty() {
        return Ok(Report::default());
    }
    let (found, mut report) = scan_in_parallel(scanner, &open(repo)?, &blobs)?;
    report.findings = found.into_iter().map(|(_, f)| f).collect();
    Ok(report)
}

/// `:old_mode new_mode old_oid new_oid status\0path\0[path\0]` records.
fn parse_raw_z(raw: &[u8]) -> Vec<Blob> {
    let mut fields = raw.split(|&b| b == 0).filter(|f| !f.is_empty());
    let mut blobs = Vec::new();
    while let Some(meta) = fields.next() {
        let meta = String::from_utf8_lossy(meta);
        let parts: Vec<&str> = meta.split(' ').collect();
        let status = parts.get(4).copied().unwrap_or_default();
        let mut path = fields.next();
        if status.starts_with('R') || status.starts_with('C') {
            path = fields.next();
        }
        if let (Some(oid), Some(path)) = (parts.get(3), path) {
            blobs.push(Blob {
                oid: (*oid).to_string(),
                path: String::from_utf8_lossy(path).into_owned(),
            });
        }
    }
    blobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_z_records_parse_with_renames() {
        let raw = b":000000 100644 0000 1111 A\0new.txt\0:100644 100644 2222 3333 R087\0old.txt\0moved.txt\0";
        let blobs = parse_raw_z(raw);
        let got: Vec<_> = blobs
            .iter()
            .map(|b| (b.oid.as_str(), b.path.as_str()))
            .collect();
        assert_eq!(got, vec![("1111", "new.txt"), ("3333", "moved.txt")]);
    }
}
