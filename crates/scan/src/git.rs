//! Git sources: `git rev-list` and `git diff --cached` say which blobs to
//! scan, workers read each unique blob once in-process (gix), and one
//! `git log` walk, beside the scan, finds where the blobs with findings
//! entered the history.
use crate::error::ScanError;
use crate::finding::{Commit, Finding};
use crate::scanner::{History, Refs, Report, Scanner, count, lock, threads};
use crate::stream::Outcome;
use gix::odb::pack;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

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

/// Findings tagged with the index of the blob they were found in.
type Tagged = Vec<(usize, Finding)>;

/// Called by the scan when a blob holds findings.
type OnFinding<'a> = &'a (dyn Fn() + Sync);

/// Workers claim blobs in batches of this size, which keeps them balanced.
const BATCH: usize = 64;

pub fn history(scanner: &Scanner, repo: &Path, history: &History) -> Result<Report, ScanError> {
    let revs = rev_args(history);
    let blobs: Vec<Blob> = list_blobs(repo, &revs)?
        .into_iter()
        .filter(|b| !scanner.path_allowed(&b.path))
        .collect();
    let ids: HashMap<gix::ObjectId, usize> = blobs
        .iter()
        .enumerate()
        .filter_map(|(i, b)| Some((gix::ObjectId::from_hex(b.oid.as_bytes()).ok()?, i)))
        .collect();
    let store = open(repo)?;
    // The commit walk that attributes findings needs nothing from the scan,
    // so it runs beside it (its own thread and git process), starting at the
    // first finding: a clean history is never walked.
    let (start_walk, walk_started) = mpsc::sync_channel(1);
    let (scanned, walked) = std::thread::scope(|s| {
        let (revs, ids, blobs) = (&revs, &ids, &blobs);
        let walk = s.spawn(move || {
            walk_started
                .recv()
                .ok()
                .map(|()| walk_log(repo, revs, ids, blobs))
                .transpose()
        });
        let on_finding = move || {
            let _ = start_walk.try_send(());
        };
        let scanned = scan_history(scanner, &store, blobs, ids, &on_finding);
        drop(on_finding);
        let walked = walk
            .join()
            .unwrap_or_else(|_| Err(git_error("log", "the log reader stopped".into())));
        (scanned, walked)
    });
    let (found, mut report) = scanned?;
    report.findings = match walked? {
        Some(sightings) => attribute(repo, &blobs, &sightings, found)?,
        // Nothing was found, so nothing started the walk.
        None => Vec::new(),
    };
    Ok(report)
}

/// Scans every blob once: those in packs that hold many of them by walking
/// the packs, the rest one by one.
fn scan_history(
    scanner: &Scanner,
    store: &gix::ThreadSafeRepository,
    blobs: &[Blob],
    ids: &HashMap<gix::ObjectId, usize>,
    on_finding: OnFinding<'_>,
) -> Result<(Tagged, Report), ScanError> {
    let (mut found, mut report, scanned) = scan_packs(scanner, store, blobs, ids, on_finding)?;
    let rest: Vec<usize> = (0..blobs.len()).filter(|&i| !scanned[i]).collect();
    let (more, part) = scan_in_parallel(scanner, store, blobs, &rest, on_finding)?;
    found.extend(more);
    merge(&mut report, part);
    Ok((found, report))
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
    wanted: &HashMap<gix::ObjectId, usize>,
    on_finding: OnFinding<'_>,
) -> Result<(Tagged, Report, Vec<bool>), ScanError> {
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
            if !findings.is_empty() {
                on_finding();
            }
            let mut found = lock(&found);
            count(&mut found.1, outcome);
            found.0.extend(findings.into_iter().map(|f| (i, f)));
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

/// Scans the blobs at `todo` (indices into `blobs`): one worker per core,
/// each claiming batches from a shared counter, so large and small blobs
/// spread evenly.
fn scan_in_parallel(
    scanner: &Scanner,
    repo: &gix::ThreadSafeRepository,
    blobs: &[Blob],
    todo: &[usize],
    on_finding: OnFinding<'_>,
) -> Result<(Tagged, Report), ScanError> {
    if todo.is_empty() {
        return Ok((Tagged::new(), Report::default()));
    }
    let next = AtomicUsize::new(0);
    let workers = threads().min(todo.len().div_ceil(BATCH)).max(1);
    let results: Vec<Result<(Tagged, Report), ScanError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| s.spawn(|| scan_blobs(scanner, repo, blobs, todo, &next, on_finding)))
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
    todo: &[usize],
    next: &AtomicUsize,
    on_finding: OnFinding<'_>,
) -> Result<(Tagged, Report), ScanError> {
    let mut repo = repo.to_thread_local();
    // Every blob is read once: caching decoded objects would only cost memory.
    repo.object_cache_size(None);
    let mut report = Report::default();
    let mut found = Vec::new();
    loop {
        let start = next.fetch_add(BATCH, Ordering::Relaxed);
        if start >= todo.len() {
            return Ok((found, report));
        }
        for &i in &todo[start..(start + BATCH).min(todo.len())] {
            let blob = &blobs[i];
            let mut findings = Vec::new();
            match scan_blob(scanner, &repo, blob, &mut findings)? {
                Some(outcome) => count(&mut report, outcome),
                None => report.warnings.push(format!(
                    "{} ({}): larger than 256 MiB, not scanned",
                    blob.path, blob.oid
                )),
            }
            if !findings.is_empty() {
                on_finding();
            }
            found.extend(findings.into_iter().map(|f| (i, f)));
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

/// Where each blob first entered the history, from one walk of `git log`.
struct Sightings {
    /// Every commit of the log, newest first: its id and author time.
    commits: Vec<(gix::ObjectId, i64)>,
    /// Per blob, the index in `commits` of the oldest commit that added it.
    added_in: Vec<Option<usize>>,
    /// Per blob, the path it was added at, where that is not the path it
    /// was listed with.
    paths: HashMap<usize, String>,
}

/// Walks `git log --raw` newest first, so the last sighting of a blob is the
/// commit that introduced it.
fn walk_log(
    repo: &Path,
    revs: &[String],
    ids: &HashMap<gix::ObjectId, usize>,
    blobs: &[Blob],
) -> Result<Sightings, ScanError> {
    let mut command = git(repo);
    command
        .args([
            "log",
            "--format=%x00%H %at",
            "--raw",
            "--no-abbrev",
            "--no-renames",
        ])
        .args(revs)
        .arg("--");
    let mut child = spawn(command, "log")?;
    let mut sightings = Sightings {
        commits: Vec::new(),
        added_in: vec![None; blobs.len()],
        paths: HashMap::new(),
    };
    if let Some(out) = child.stdout.take() {
        read_log(out, ids, blobs, &mut sightings).map_err(|e| git_error("log", e.to_string()))?;
    }
    finish(child, "log")?;
    Ok(sightings)
}

fn read_log(
    out: ChildStdout,
    ids: &HashMap<gix::ObjectId, usize>,
    blobs: &[Blob],
    sightings: &mut Sightings,
) -> io::Result<()> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    for line in BufReader::with_capacity(1 << 20, out).split(b'\n') {
        let line = line?;
        if let Some(rest) = line.strip_prefix(b"\0") {
            let text = String::from_utf8_lossy(rest);
            let (id, time) = text.split_once(' ').unwrap_or((&text, ""));
            let id = gix::ObjectId::from_hex(id.as_bytes()).map_err(|_| invalid("commit id"))?;
            sightings
                .commits
                .push((id, time.trim().parse().unwrap_or(0)));
        } else if line.starts_with(b":") {
            let Some(tab) = memchr::memchr(b'\t', &line) else {
                continue;
            };
            let Some(new_oid) = line[..tab].split(|&b| b == b' ').nth(3) else {
                continue;
            };
            let blob = gix::ObjectId::from_hex(new_oid)
                .ok()
                .and_then(|id| ids.get(&id));
            let (Some(&blob), Some(commit)) = (blob, sightings.commits.len().checked_sub(1)) else {
                continue;
            };
            sightings.added_in[blob] = Some(commit);
            let path = String::from_utf8_lossy(&line[tab + 1..]);
            if path == blobs[blob].path {
                sightings.paths.remove(&blob);
            } else {
                sightings.paths.insert(blob, path.into_owned());
            }
        }
    }
    Ok(())
}

/// Keeps one finding per secret and path: its first appearance, with the
/// commit that introduced its blob.
fn attribute(
    repo: &Path,
    blobs: &[Blob],
    sightings: &Sightings,
    found: Tagged,
) -> Result<Vec<Finding>, ScanError> {
    // Earliest author time first; commits of the same second by their place
    // in the log (a larger age is older), so the order of the scan never matters.
    let mut first: HashMap<(String, String), (Finding, Option<usize>)> = HashMap::new();
    let rank = |commit: Option<usize>| {
        let time = commit.map_or(i64::MAX, |c| sightings.commits[c].1);
        (time, std::cmp::Reverse(commit.map_or(0, |c| c + 1)))
    };
    for (blob, mut finding) in found {
        let commit = sightings.added_in[blob];
        if commit.is_some() {
            finding.path = sightings
                .paths
                .get(&blob)
                .unwrap_or(&blobs[blob].path)
                .clone();
        }
        let key = (finding.fingerprint.clone(), finding.path.clone());
        match first.get(&key) {
            Some((_, existing)) if rank(*existing) <= rank(commit) => {}
            _ => {
                first.insert(key, (finding, commit));
            }
        }
    }
    let ids: Vec<gix::ObjectId> = first
        .values()
        .filter_map(|(_, commit)| Some(sightings.commits[(*commit)?].0))
        .collect();
    let described = describe(repo, &ids)?;
    first
        .into_values()
        .map(|(mut finding, commit)| {
            if let Some(c) = commit {
                let (id, timestamp) = sightings.commits[c];
                let (author, date) = described
                    .get(&id)
                    .ok_or_else(|| git_error("log", format!("{id}: commit not found")))?;
                finding.commit = Some(Commit {
                    id: id.to_string(),
                    author: author.clone(),
                    date: date.clone(),
                    timestamp,
                });
            }
            Ok(finding)
        })
        .collect()
}

/// Author and date of a few commits, formatted by git.
fn describe(
    repo: &Path,
    ids: &[gix::ObjectId],
) -> Result<HashMap<gix::ObjectId, (String, String)>, ScanError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut command = git(repo);
    command
        .args([
            "log",
            "--no-walk=unsorted",
            "--stdin",
            "--format=%H%x00%an <%ae>%x00%aI",
        ])
        .stdin(Stdio::piped());
    let mut child = spawn(command, "log")?;
    // git reads every revision from stdin before it writes.
    if let Some(mut stdin) = child.stdin.take() {
        let list: String = ids.iter().map(|id| format!("{id}\n")).collect();
        stdin
            .write_all(list.as_bytes())
            .map_err(|e| git_error("log", e.to_string()))?;
    }
    let mut described = HashMap::new();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| git_error("log", e.to_string()))?;
            let mut parts = line.split('\0');
            let (Some(id), Some(author), Some(date)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if let Ok(id) = gix::ObjectId::from_hex(id.as_bytes()) {
                described.insert(id, (author.to_string(), date.to_string()));
            }
        }
    }
    finish(child, "log")?;
    Ok(described)
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
    let todo: Vec<usize> = (0..blobs.len()).collect();
    let (found, mut report) = scan_in_parallel(scanner, &open(repo)?, &blobs, &todo, &|| {})?;
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
