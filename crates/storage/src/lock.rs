//! Waiting for a store file another process holds, and the notes that say
//! who holds it.
//!
//! redb locks the file: one writer, or any number of readers. An open that
//! finds it locked tries again until [`Locking::wait`] runs out, as SQLite's
//! busy timeout does. Each process holding a store leaves a note beside the
//! file (`lock-holder.<pid>.<n>`: what it is, whether it reads or writes,
//! since when), so that one whose wait ran out can say what it waited for.
//! Notes are best effort: a read-only directory simply gets none.

use crate::StorageError;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long an open waits for another process to let go of the file when
/// none is given.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(10);

/// The longest pause between two tries.
const MAX_PAUSE: Duration = Duration::from_millis(25);

const NOTE_PREFIX: &str = "lock-holder.";

/// How an open waits for a store another process holds, and how this
/// process names itself in its note while it holds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Locking {
    pub wait: Duration,
    /// What this process is, for the messages of the others: `tresor kv
    /// put`. Never a value.
    pub holder: String,
}

impl Default for Locking {
    fn default() -> Self {
        Self {
            wait: DEFAULT_LOCK_WAIT,
            holder: program_name(),
        }
    }
}

impl Locking {
    /// The default holder name, waiting `wait`.
    pub fn waiting(wait: Duration) -> Self {
        Self {
            wait,
            ..Self::default()
        }
    }
}

fn program_name() -> String {
    std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "a process".into())
}

/// Runs `open` until it gets past the lock or `locking.wait` runs out;
/// then the error names the holders of the store in `dir`.
pub(crate) fn waiting<T>(
    dir: &Path,
    locking: &Locking,
    mut open: impl FnMut() -> Result<T, StorageError>,
) -> Result<T, StorageError> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match open() {
            Err(StorageError::Locked { path, .. }) => {
                let waited = start.elapsed();
                if waited >= locking.wait {
                    return Err(StorageError::Locked {
                        path,
                        holders: holders(dir),
                        waited,
                    });
                }
                std::thread::sleep(pause.min(locking.wait - waited));
                pause = (pause * 2).min(MAX_PAUSE);
            }
            other => return other,
        }
    }
}

/// This process's note, removed when dropped.
#[derive(Debug)]
pub(crate) struct Note {
    path: PathBuf,
}

impl Note {
    /// Leaves a note in `dir`; a writer (which holds the file alone) first
    /// removes every other note, all of them left by processes gone.
    pub(crate) fn leave(dir: &Path, locking: &Locking, writing: bool) -> Option<Note> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NOTE_PREFIX}{pid}.{n}");
        if writing {
            for (stale, _) in notes(dir) {
                if stale.file_name().is_some_and(|f| *f != *name) {
                    let _ = std::fs::remove_file(stale);
                }
            }
        }
        let path = dir.join(name);
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mode = if writing { "writing" } else { "reading" };
        let text = format!("{}\n{mode}\n{since}\n", one_line(&locking.holder));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .ok()?;
        file.write_all(text.as_bytes()).ok()?;
        Some(Note { path })
    }
}

impl Drop for Note {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn one_line(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// The notes in `dir`, with the pid each names.
fn notes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let pid = name
                .strip_prefix(NOTE_PREFIX)?
                .split('.')
                .next()?
                .parse()
                .ok()?;
            Some((e.path(), pid))
        })
        .collect()
}

/// Who holds the store in `dir`, as its notes say: `process 4242 (tresor
/// server, writing for 3s)`. Notes of processes known to be gone are left
/// out.
pub(crate) fn holders(dir: &Path) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Where /proc exists, a pid without an entry is a process gone.
    let alive = |pid: u32| {
        !Path::new("/proc/self").exists() || Path::new("/proc").join(pid.to_string()).exists()
    };
    let mut found: Vec<(u32, String)> = notes(dir)
        .into_iter()
        .filter(|(_, pid)| alive(*pid))
        .filter_map(|(path, pid)| {
            let text = std::fs::read_to_string(path).ok()?;
            let mut lines = text.lines();
            let holder = lines.next()?.to_owned();
            let mode = lines.next()?.to_owned();
            let since: u64 = lines.next()?.parse().ok()?;
            Some((
                pid,
                format!(
                    "process {pid} ({holder}, {mode} for {}s)",
                    now.saturating_sub(since)
                ),
            ))
        })
        .collect();
    found.sort();
    found.dedup_by_key(|(pid, _)| *pid);
    match found.len() {
        0 => "another process".into(),
        _ => found
            .into_iter()
            .map(|(_, d)| d)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_names_its_holder_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let locking = Locking {
            wait: Duration::ZERO,
            holder: "tresor kv\nput".into(),
        };
        let note = Note::leave(dir.path(), &locking, true).unwrap();
        let said = holders(dir.path());
        let pid = std::process::id();
        assert!(
            said.starts_with(&format!("process {pid} (tresor kvput, writing for ")),
            "{said}"
        );
        drop(note);
        assert!(notes(dir.path()).is_empty());
        assert_eq!(holders(dir.path()), "another process");
    }

    #[test]
    fn a_writer_clears_the_notes_of_processes_gone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("lock-holder.999999999.0"),
            "x\nreading\n0\n",
        )
        .unwrap();
        let _note = Note::leave(dir.path(), &Locking::default(), true).unwrap();
        assert_eq!(notes(dir.path()).len(), 1);
    }
}
