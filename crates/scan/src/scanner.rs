//! Puts the engine, the configuration and the sources together.
use crate::config::Config;
use crate::engine::Engine;
use crate::error::ScanError;
use crate::finding::{self, Finding};
use crate::rules::{self, Rule};
use crate::stream::{self, Located, Outcome};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What to scan.
#[derive(Debug, Clone)]
pub enum Target {
    /// Files and directories; `-` is standard input.
    Paths(Vec<PathBuf>),
    /// The index: what `git commit` is about to record.
    Staged,
    /// Every unique blob reachable from the chosen refs.
    History(History),
}

#[derive(Debug, Clone, Default)]
pub struct History {
    /// Skip what is reachable from this revision (an incremental CI scan).
    pub since: Option<String>,
    pub refs: Refs,
}

#[derive(Debug, Clone, Default)]
pub enum Refs {
    #[default]
    Head,
    All,
    Branch(String),
}

/// The outcome of a scan before baselining.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub bytes: u64,
    pub files: u64,
    /// Problems that did not stop the scan (an unreadable file).
    pub warnings: Vec<String>,
}

pub struct Scanner {
    engine: Engine,
    config: Config,
    progress: ProgressBar,
}

impl Scanner {
    /// Built-in rules, minus disabled ones, plus custom rules (which replace
    /// built-ins of the same id).
    pub fn new(config: Config, progress: bool) -> Result<Self, ScanError> {
        let custom_ids: Vec<&str> = config.rules.iter().map(|r| r.id.as_str()).collect();
        let mut rules: Vec<Rule> = rules::builtin()
            .into_iter()
            .filter(|r| !custom_ids.contains(&r.id.as_str()))
            .map(Rule::new)
            .collect();
        let custom: Vec<Rule> = config
            .rules
            .iter()
            .cloned()
            .map(Rule::compiled)
            .collect::<Result<_, _>>()?;
        // Custom rules go before the generic built-ins so they win overlaps.
        rules.splice(0..0, custom);
        rules.retain(|r| !config.disabled_rules.contains(&r.spec.id));
        let engine = Engine::new(rules, config.values.clone())?;
        Ok(Self {
            engine,
            config,
            progress: progress_bar(progress),
        })
    }

    pub fn scan(&self, target: &Target) -> Result<Report, ScanError> {
        let report = match target {
            Target::Paths(paths) => self.scan_paths(paths),
            Target::Staged => crate::git::staged(self, Path::new(".")),
            Target::History(history) => crate::git::history(self, Path::new("."), history),
        };
        self.progress.finish_and_clear();
        let mut report = report?;
        report
            .findings
            .sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
        Ok(report)
    }

    pub(crate) fn path_allowed(&self, path: &str) -> bool {
        self.config.path_allowed(path)
    }

    pub(crate) fn finding(&self, located: Located, path: &str) -> Finding {
        let spec = &self.engine.rules()[located.rule].spec;
        Finding {
            rule_id: spec.id.clone(),
            description: spec.description.clone(),
            severity: spec.severity,
            path: path.to_string(),
            line: located.line,
            column: located.column,
            redacted: finding::redact(&located.secret),
            fingerprint: finding::fingerprint(&spec.id, &located.secret),
            commit: None,
        }
    }

    /// Scans one reader as `path`, appending to `findings`.
    pub(crate) fn scan_one(
        &self,
        reader: impl Read,
        path: &str,
        buf: &mut Vec<u8>,
        findings: &mut Vec<Finding>,
    ) -> std::io::Result<Outcome> {
        let outcome = stream::scan_reader(&self.engine, reader, buf, |m| {
            findings.push(self.finding(m, path));
        })?;
        if let Outcome::Scanned { bytes } = outcome {
            self.progress.inc(bytes);
        }
        Ok(outcome)
    }

    /// Scans bytes already in memory as `path`, appending to `findings`.
    pub(crate) fn scan_bytes(
        &self,
        data: &[u8],
        path: &str,
        findings: &mut Vec<Finding>,
    ) -> Outcome {
        let outcome = stream::scan_bytes(&self.engine, data, |m| {
            findings.push(self.finding(m, path));
        });
        if let Outcome::Scanned { bytes } = outcome {
            self.progress.inc(bytes);
        }
        outcome
    }

    fn scan_paths(&self, paths: &[PathBuf]) -> Result<Report, ScanError> {
        let mut report = Report::default();
        let mut dirs = Vec::new();
        for path in paths {
            if path.as_os_str() == "-" {
                let mut buf = Vec::new();
                let stdin = std::io::stdin().lock();
                let outcome = self
                    .scan_one(stdin, "<stdin>", &mut buf, &mut report.findings)
                    .map_err(|source| ScanError::Read {
                        path: path.clone(),
                        source,
                    })?;
                count(&mut report, outcome);
            } else {
                std::fs::metadata(path).map_err(|source| ScanError::Read {
                    path: path.clone(),
                    source,
                })?;
                dirs.push(path.clone());
            }
        }
        if !dirs.is_empty() {
            let tree = self.scan_tree(&dirs);
            report.findings.extend(tree.findings);
            report.bytes += tree.bytes;
            report.files += tree.files;
            report.warnings.extend(tree.warnings);
        }
        Ok(report)
    }

    /// Walks the trees in parallel, honouring .gitignore and skipping `.git`.
    fn scan_tree(&self, roots: &[PathBuf]) -> Report {
        let mut builder = ignore::WalkBuilder::new(&roots[0]);
        for root in &roots[1..] {
            builder.add(root);
        }
        builder
            .hidden(false)
            .require_git(false)
            .git_global(false)
            .filter_entry(|e| e.file_name() != ".git")
            .threads(threads());
        let findings = Mutex::new(Vec::new());
        let warnings = Mutex::new(Vec::new());
        let bytes = AtomicU64::new(0);
        let files = AtomicU64::new(0);
        builder.build_parallel().run(|| {
            let mut buf = Vec::new();
            let mut local = Vec::new();
            let (findings, warnings, bytes, files) = (&findings, &warnings, &bytes, &files);
            Box::new(move |entry| {
                let entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        lock(warnings).push(e.to_string());
                        return ignore::WalkState::Continue;
                    }
                };
                if !entry.file_type().is_some_and(|t| t.is_file()) {
                    return ignore::WalkState::Continue;
                }
                let display = display_path(entry.path(), roots);
                if self.path_allowed(&display) {
                    return ignore::WalkState::Continue;
                }
                let scanned = std::fs::File::open(entry.path())
                    .and_then(|file| self.scan_one(file, &display, &mut buf, &mut local));
                match scanned {
                    Ok(Outcome::Scanned { bytes: n }) => {
                        bytes.fetch_add(n, Ordering::Relaxed);
                        files.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Outcome::Binary) => {}
                    Err(e) => lock(warnings).push(format!("{display}: {e}")),
                }
                if !local.is_empty() {
                    lock(findings).append(&mut local);
                }
                ignore::WalkState::Continue
            })
        });
        Report {
            findings: findings.into_inner().unwrap_or_else(|p| p.into_inner()),
            bytes: bytes.into_inner(),
            files: files.into_inner(),
            warnings: warnings.into_inner().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

pub(crate) fn count(report: &mut Report, outcome: Outcome) {
    if let Outcome::Scanned { bytes } = outcome {
        report.bytes += bytes;
        report.files += 1;
    }
}

/// A poisoned lock only means another worker panicked; its data is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Paths relative to the scan root when it is `.`, as written otherwise.
fn display_path(path: &Path, roots: &[PathBuf]) -> String {
    let relative = roots
        .iter()
        .filter(|r| r.as_os_str() == ".")
        .find_map(|r| path.strip_prefix(r).ok())
        .unwrap_or(path);
    relative.to_string_lossy().into_owned()
}

fn progress_bar(enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} scanning: {bytes} ({bytes_per_sec}) {elapsed}")
    {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}
