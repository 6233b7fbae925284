//! Pushing stored values to the targets beyond the store (AWS Secrets
//! Manager, Vault): the loop over secrets and targets, and the report that
//! says, per target, what was pushed, what failed and what was not tried.
//! The targets themselves live in their own crates and implement
//! [`Destination`]; `tresor-delivery` drives this beside the cluster.

use crate::spec::{SecretSpec, Spec};
use std::fmt::Write;
use std::sync::{Mutex, MutexGuard, PoisonError};
use tresor_kv::SecretMap;

/// Recorded on a pushed secret (an AWS tag, Vault custom metadata) beside
/// [`crate::MANAGED_BY`]: the platform that owns it.
pub const OWNER_PLATFORM: &str = "tresor-platform";
/// The spec's name for it.
pub const OWNER_SECRET: &str = "tresor-secret";

/// What one push did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Created,
    /// A new version holds the new values.
    Updated,
    Unchanged,
    /// It already held exactly these values without tresor's marker; the
    /// marker was added (after `tresor import`, for instance).
    Adopted,
}

impl Pushed {
    /// A target already holding the values: `Unchanged` when it bears
    /// tresor's mark, `Adopted` (the mark is added) when not.
    pub fn kept(marked: bool) -> Self {
        if marked {
            Pushed::Unchanged
        } else {
            Pushed::Adopted
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pushed::Created => "created",
            Pushed::Updated => "updated",
            Pushed::Unchanged => "unchanged",
            Pushed::Adopted => "adopted (it held these values already)",
        }
    }
}

/// Who a pushed secret belongs to.
pub struct Owner<'a> {
    pub platform: &'a str,
    pub secret: &'a str,
}

impl Owner<'_> {
    /// The marks a target records for it (AWS tags, Vault custom metadata).
    pub fn marks(&self) -> [(&str, &str); 3] {
        [
            (crate::MANAGED_BY.0, crate::MANAGED_BY.1),
            (OWNER_PLATFORM, self.platform),
            (OWNER_SECRET, self.secret),
        ]
    }
}

/// Why one push failed. The message names the target and says what to do;
/// it never holds a value.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct TargetError {
    pub message: String,
    /// The endpoint could not be reached: later pushes to it are not tried.
    pub unreachable: bool,
}

/// One kind of target: every secret that names it is pushed to it.
pub trait Destination {
    /// `aws` or `vault`.
    fn kind(&self) -> &'static str;
    /// Where `secret` goes on this kind of target, when it names it.
    fn place(&self, secret: &SecretSpec) -> Option<String>;
    /// The endpoint (region, server) `secret` is pushed to: once one is
    /// unreachable, the rest of its pushes are skipped.
    fn endpoint(&self, secret: &SecretSpec) -> String;
    /// Makes the target hold exactly `data`, writing only when it differs.
    fn push(&mut self, secret: &SecretSpec, data: &SecretMap) -> Result<Pushed, TargetError>;

    /// Every push of one delivery, each result at its job's index. The
    /// default pushes one after the other; a target that takes several at
    /// once overrides it, skipping through [`Unreachable`] the pushes not
    /// yet started when their endpoint proved unreachable.
    fn push_all(&mut self, jobs: &[Job<'_>]) -> Vec<PushResult> {
        let unreachable = Unreachable::default();
        jobs.iter()
            .map(|job| {
                let endpoint = self.endpoint(job.secret);
                if unreachable.skips(&endpoint) {
                    return PushResult::Skipped;
                }
                unreachable.outcome(&endpoint, self.push(job.secret, job.data))
            })
            .collect()
    }
}

/// One push of a delivery: a secret and the values its target gets.
#[derive(Clone, Copy)]
pub struct Job<'a> {
    pub secret: &'a SecretSpec,
    pub data: &'a SecretMap,
}

/// The endpoints found unreachable during one delivery, shared by
/// concurrent pushes.
#[derive(Debug, Default)]
pub struct Unreachable(Mutex<Vec<String>>);

impl Unreachable {
    /// Whether a push to `endpoint` is not to be tried.
    pub fn skips(&self, endpoint: &str) -> bool {
        self.endpoints().iter().any(|e| e == endpoint)
    }

    /// A push's result, noting its endpoint when it proved unreachable.
    pub fn outcome(&self, endpoint: &str, pushed: Result<Pushed, TargetError>) -> PushResult {
        match pushed {
            Ok(pushed) => PushResult::Done(pushed),
            Err(e) => {
                if e.unreachable && !self.skips(endpoint) {
                    self.endpoints().push(endpoint.to_owned());
                }
                PushResult::Failed(e.message)
            }
        }
    }

    fn endpoints(&self) -> MutexGuard<'_, Vec<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The outcome of one secret on one target.
#[derive(Debug)]
pub enum PushResult {
    Done(Pushed),
    Failed(String),
    /// Not tried: its endpoint was found unreachable first.
    Skipped,
}

#[derive(Debug)]
pub struct Entry {
    pub kind: &'static str,
    pub secret: String,
    pub place: String,
    pub result: PushResult,
}

/// Every push of one delivery, in order.
#[derive(Debug, Default)]
pub struct PushReport {
    pub entries: Vec<Entry>,
}

/// Pushes each of `values` (a secret's name and the values its targets
/// get, in this order) to each destination its secret names, several at
/// once where the target allows. A failure does not stop the other pushes:
/// each push is one atomic write on its target, so every target ends
/// either holding a secret's new values or its former ones, and the report
/// says which.
pub fn push(
    spec: &Spec,
    values: &[(&str, &SecretMap)],
    destinations: &mut [&mut dyn Destination],
) -> PushReport {
    let mut report = PushReport::default();
    for destination in destinations.iter_mut() {
        let mut jobs = Vec::new();
        let mut places = Vec::new();
        for (name, data) in values {
            let Some(secret) = spec.secrets.iter().find(|s| s.name == *name) else {
                continue;
            };
            let Some(place) = destination.place(secret) else {
                continue;
            };
            jobs.push(Job { secret, data });
            places.push(place);
        }
        let results = destination.push_all(&jobs);
        debug_assert_eq!(results.len(), jobs.len(), "one result per push");
        for ((job, place), result) in jobs.iter().zip(places).zip(results) {
            report.entries.push(Entry {
                kind: destination.kind(),
                secret: job.secret.name.clone(),
                place,
                result,
            });
        }
    }
    report
}

impl PushReport {
    /// Pushes that failed or were not tried.
    pub fn incomplete(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| !matches!(e.result, PushResult::Done(_)))
            .count()
    }

    /// One line per push.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        for e in &self.entries {
            let what = match &e.result {
                PushResult::Done(p) => p.name().to_owned(),
                PushResult::Failed(why) => format!("FAILED: {why}"),
                PushResult::Skipped => "NOT TRIED: its endpoint is unreachable".into(),
            };
            let _ = writeln!(out, "{}: {} -> {}: {what}", e.kind, e.secret, e.place);
        }
        out
    }

    /// Whether every push of `secret` completed.
    pub fn complete(&self, secret: &str) -> bool {
        self.entries
            .iter()
            .filter(|e| e.secret == secret)
            .all(|e| matches!(e.result, PushResult::Done(_)))
    }

    /// Per target kind, how many pushes completed (`aws: 2 of 3
    /// delivered`); `None` when all did.
    pub fn counts(&self) -> Option<String> {
        if self.incomplete() == 0 {
            return None;
        }
        let mut kinds: Vec<&str> = self.entries.iter().map(|e| e.kind).collect();
        kinds.dedup();
        let parts: Vec<String> = kinds
            .iter()
            .map(|kind| {
                let all = self.entries.iter().filter(|e| e.kind == *kind);
                let total = all.clone().count();
                let done = all
                    .filter(|e| matches!(e.result, PushResult::Done(_)))
                    .count();
                format!("{kind}: {done} of {total} delivered")
            })
            .collect();
        Some(parts.join(", "))
    }
}
