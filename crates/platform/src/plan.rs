//! Plan and apply: compare the spec with the store, decide per key what to
//! create, keep, update or regenerate, and write it.
//!
//! Everything (validation, generation, reference resolution) happens while
//! planning; applying only writes. Each secret is one KV version written
//! with check-and-set, so a failure never leaves a half-written secret, and
//! secrets are written after the secrets they refer to (the others several
//! at a time, so that the store's group commit shares one sync among them).

use crate::PlatformError;
use crate::spec::{SecretSpec, Source, Spec};
use crate::store::SecretStore;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::time::{Duration, SystemTime};
use tresor_kv::SecretMap;
use zeroize::Zeroizing;

/// Custom metadata marking a secret as tresor's.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "tresor");
/// Custom metadata, per generated key: the generator and when it ran
/// (`base64:32 at 2026-11-28T07:29:54Z`). Never a value.
pub const GENERATED_PREFIX: &str = "tresor-generated/";

/// What happens to one secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Unchanged,
}

/// What happens to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// A new key (or a new secret).
    Create,
    Unchanged,
    /// Its literal or referenced value changed.
    Update,
    /// Its generator changed, so a fresh value replaces the old one.
    Regenerate,
    /// In the store but no longer in the spec.
    Remove,
}

impl KeyAction {
    pub fn name(self) -> &'static str {
        match self {
            KeyAction::Create => "create",
            KeyAction::Unchanged => "unchanged",
            KeyAction::Update => "update",
            KeyAction::Regenerate => "regenerate",
            KeyAction::Remove => "remove",
        }
    }
}

#[derive(Debug)]
pub struct KeyPlan {
    pub key: String,
    /// `literal`, `generate base64:32`, `ref secret/key`: never the value.
    pub source: String,
    pub action: KeyAction,
}

#[derive(Debug)]
pub struct SecretPlan {
    pub name: String,
    pub namespace: Option<String>,
    pub path: String,
    pub action: Action,
    pub keys: Vec<KeyPlan>,
    /// A generated key is older than the rotation policy allows.
    pub rotate_due: bool,
    /// The secret's current version (0: none), for check-and-set.
    cas: u64,
    /// Written after every secret of a lower wave: those it refers to.
    wave: usize,
    data: SecretMap,
    metadata: BTreeMap<String, Option<String>>,
}

impl SecretPlan {
    /// The values this secret will hold, once applied.
    pub fn data(&self) -> &SecretMap {
        &self.data
    }

    /// Writes the new version (unless unchanged) and the metadata that
    /// differs; `Ok(false)` when the version is no longer the one planned
    /// against.
    fn write(&self, kv: &dyn SecretStore) -> Result<bool, PlatformError> {
        if self.action != Action::Unchanged {
            return kv.write_with_custom_metadata(&self.path, &self.data, self.cas, &self.metadata);
        }
        if !self.metadata.is_empty() {
            kv.merge_custom_metadata(&self.path, &self.metadata)?;
        }
        Ok(true)
    }
}

/// How many secrets [`Plan::apply`] writes at once: each is one commit on
/// the embedded store (values and metadata together), and every commit
/// waiting when the store syncs shares that fsync.
pub const WRITERS: usize = 64;

/// The whole plan, in write order.
#[derive(Debug)]
pub struct Plan {
    pub secrets: Vec<SecretPlan>,
}

/// The version and data a secret has in the store now.
struct Current {
    version: u64,
    data: Option<SecretMap>,
    custom: BTreeMap<String, String>,
}

/// Compares `spec` with the store (`None`: no store yet, so everything is
/// created) and decides every value, generating what is missing. Four
/// phases: read what the store holds, decide the literal and generated
/// values, resolve the references to them, then plan each secret's write.
pub fn plan(
    spec: &Spec,
    kv: Option<&dyn SecretStore>,
    now: SystemTime,
) -> Result<Plan, PlatformError> {
    let current = read_all(spec, kv)?;
    let mut decided = decide(spec, &current, now);
    resolve_references(spec, &mut decided.values);
    Ok(Plan {
        secrets: plan_writes(spec, current, &decided, now),
    })
}

/// Each key's value and what happens to it, by `(secret, key)`.
#[derive(Default)]
struct Decided<'a> {
    values: BTreeMap<(&'a str, &'a str), Zeroizing<String>>,
    /// Generated keys only: references and literals are compared later.
    actions: BTreeMap<(&'a str, &'a str), KeyAction>,
    /// Generated keys: the generation record to keep in the metadata.
    records: BTreeMap<(&'a str, &'a str), String>,
}

/// Phase 1: every declared secret as the store holds it now.
fn read_all<'a>(
    spec: &'a Spec,
    kv: Option<&dyn SecretStore>,
) -> Result<BTreeMap<&'a str, Current>, PlatformError> {
    let mut current = BTreeMap::new();
    for secret in &spec.secrets {
        let state = match kv {
            Some(kv) => read_current(kv, &secret.path)?,
            None => Current {
                version: 0,
                data: None,
                custom: BTreeMap::new(),
            },
        };
        current.insert(secret.name.as_str(), state);
    }
    Ok(current)
}

/// Phase 2: literals and generated values (a generator that changed
/// generates afresh; a value found without a record is adopted).
fn decide<'a>(spec: &'a Spec, current: &BTreeMap<&str, Current>, now: SystemTime) -> Decided<'a> {
    let mut decided = Decided::default();
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    for secret in &spec.secrets {
        let state = &current[secret.name.as_str()];
        for key in &secret.keys {
            let id = (secret.name.as_str(), key.name.as_str());
            let existing = stored_string(state, &key.name);
            match &key.source {
                Source::Literal(v) => {
                    let value = existing
                        .filter(|stored| rotated_role(secret, &key.name, stored))
                        .unwrap_or_else(|| v.clone());
                    decided.values.insert(id, value);
                }
                Source::Generate(generator) => {
                    let wanted = generator.to_string();
                    let record = state.custom.get(&format!("{GENERATED_PREFIX}{}", key.name));
                    let made_by = record.map(|r| r.split(" at ").next().unwrap_or_default());
                    let (value, action, record) = match existing {
                        // A value with no record was put there by hand: adopt it.
                        Some(v) if made_by.is_none_or(|g| g == wanted) => (
                            v,
                            KeyAction::Unchanged,
                            record
                                .cloned()
                                .unwrap_or_else(|| format!("{wanted} at {stamp}")),
                        ),
                        Some(_) => (
                            generator.generate(),
                            KeyAction::Regenerate,
                            format!("{wanted} at {stamp}"),
                        ),
                        None => (
                            generator.generate(),
                            KeyAction::Create,
                            format!("{wanted} at {stamp}"),
                        ),
                    };
                    decided.values.insert(id, value);
                    decided.actions.insert(id, action);
                    decided.records.insert(id, record);
                }
                Source::Ref(_) => {}
            }
        }
    }
    decided
}

/// Phase 3: each reference takes the value at the end of its chain.
fn resolve_references<'a>(
    spec: &'a Spec,
    values: &mut BTreeMap<(&'a str, &'a str), Zeroizing<String>>,
) {
    for secret in &spec.secrets {
        for key in &secret.keys {
            if let Source::Ref(_) = key.source {
                let value = resolve(spec, values, secret, &key.name);
                values.insert((secret.name.as_str(), key.name.as_str()), value);
            }
        }
    }
}

/// Phase 4: one write per secret, in write order (each after those it
/// refers to), with what changes and the metadata that differs.
fn plan_writes(
    spec: &Spec,
    mut current: BTreeMap<&str, Current>,
    decided: &Decided<'_>,
    now: SystemTime,
) -> Vec<SecretPlan> {
    let mut plans = Vec::new();
    let mut waves: BTreeMap<&str, usize> = BTreeMap::new();
    for secret in order(spec) {
        let state = current.remove(secret.name.as_str()).expect("read above");
        let wave = deps(secret)
            .iter()
            .filter_map(|d| waves.get(d))
            .max()
            .map_or(0, |w| w + 1);
        waves.insert(&secret.name, wave);
        plans.push(plan_write(secret, state, decided, wave, now));
    }
    plans
}

fn plan_write(
    secret: &SecretSpec,
    state: Current,
    decided: &Decided<'_>,
    wave: usize,
    now: SystemTime,
) -> SecretPlan {
    let mut data = SecretMap::new();
    let mut keys = Vec::new();
    let mut metadata = BTreeMap::new();
    for key in &secret.keys {
        let id = (secret.name.as_str(), key.name.as_str());
        let value = &decided.values[&id];
        let existing = stored_string(&state, &key.name);
        let action = match decided.actions.get(&id) {
            Some(action) => *action,
            None => match existing {
                None => KeyAction::Create,
                Some(v) if *v == **value => KeyAction::Unchanged,
                Some(_) => KeyAction::Update,
            },
        };
        data.insert(key.name.clone(), Value::String(value.to_string()));
        keys.push(KeyPlan {
            key: key.name.clone(),
            source: key.source.describe(),
            action,
        });
        if let Some(record) = decided.records.get(&id) {
            metadata.insert(
                format!("{GENERATED_PREFIX}{}", key.name),
                Some(record.clone()),
            );
        }
    }
    if let Some(stored) = &state.data {
        for name in stored.keys().filter(|k| secret.key(k).is_none()) {
            keys.push(KeyPlan {
                key: name.clone(),
                source: "not in the spec".into(),
                action: KeyAction::Remove,
            });
        }
    }
    for old in state.custom.keys() {
        if old.starts_with(GENERATED_PREFIX) && !metadata.contains_key(old) {
            metadata.insert(old.clone(), None);
        }
    }
    metadata.insert(MANAGED_BY.0.into(), Some(MANAGED_BY.1.into()));
    // Only what differs from the stored metadata is written.
    metadata.retain(|k, v| state.custom.get(k) != v.as_ref());
    let action = if state.data.is_none() {
        Action::Create
    } else if keys.iter().any(|k| k.action != KeyAction::Unchanged) {
        Action::Update
    } else {
        Action::Unchanged
    };
    let rotate_due = secret.rotation.as_ref().is_some_and(|r| {
        secret.keys.iter().any(|k| {
            let id = (secret.name.as_str(), k.name.as_str());
            decided.actions.get(&id) == Some(&KeyAction::Unchanged)
                && decided
                    .records
                    .get(&id)
                    .and_then(|r| generated_at(r))
                    .is_some_and(|at| now.duration_since(at).unwrap_or(Duration::ZERO) >= r.every)
        })
    });
    SecretPlan {
        name: secret.name.clone(),
        namespace: secret.namespace.clone(),
        path: secret.path.clone(),
        action,
        keys,
        rotate_due,
        cas: state.version,
        wave,
        data,
        metadata,
    }
}

/// Whether `stored` is the login role an `alternating-users` rotation
/// switched `key` to: the spec's literal names the first role only, and
/// apply must not switch consumers back to it.
fn rotated_role(secret: &SecretSpec, key: &str, stored: &str) -> bool {
    secret
        .rotation
        .as_ref()
        .and_then(|r| r.postgres.as_ref())
        .is_some_and(|pg| match &pg.strategy {
            crate::spec::Strategy::AlternatingUsers { roles, .. } => {
                pg.role_key == key && roles.iter().any(|r| r == stored)
            }
            crate::spec::Strategy::SingleUser => false,
        })
}

fn read_current(kv: &dyn SecretStore, path: &str) -> Result<Current, PlatformError> {
    let stored = kv.read(path)?;
    Ok(Current {
        version: stored.version,
        data: stored.data,
        custom: stored.custom,
    })
}

fn stored_string(state: &Current, key: &str) -> Option<Zeroizing<String>> {
    match state.data.as_ref()?.get(key)? {
        Value::String(s) => Some(Zeroizing::new(s.clone())),
        _ => None,
    }
}

fn generated_at(record: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(record.split_once(" at ")?.1).ok()
}

/// Follows a chain of references to the literal or generated value at its
/// end (validation has ruled out cycles and dangling references).
fn resolve(
    spec: &Spec,
    values: &BTreeMap<(&str, &str), Zeroizing<String>>,
    secret: &SecretSpec,
    key: &str,
) -> Zeroizing<String> {
    let mut at = (secret.name.clone(), key.to_owned());
    loop {
        let s = spec
            .secrets
            .iter()
            .find(|s| s.name == at.0)
            .expect("validated");
        let k = s.key(&at.1).expect("validated");
        match &k.source {
            Source::Ref(r) => at = (r.secret.clone(), r.key.clone()),
            _ => return values[&(s.name.as_str(), k.name.as_str())].clone(),
        }
    }
}

/// The other secrets `s` refers to.
fn deps(s: &SecretSpec) -> BTreeSet<&str> {
    s.keys
        .iter()
        .filter_map(|k| match &k.source {
            Source::Ref(r) if r.secret != s.name => Some(r.secret.as_str()),
            _ => None,
        })
        .collect()
}

/// Secrets after the secrets they refer to, by name otherwise. A crash
/// between two writes then leaves a referring secret unwritten rather than
/// holding a value its source never got.
fn order(spec: &Spec) -> Vec<&SecretSpec> {
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    while out.len() < spec.secrets.len() {
        let ready = spec
            .secrets
            .iter()
            .filter(|s| !done.contains(s.name.as_str()))
            .find(|s| deps(s).iter().all(|d| done.contains(d)))
            // Secrets referring to each other (without a key cycle): any order.
            .or_else(|| {
                spec.secrets
                    .iter()
                    .find(|s| !done.contains(s.name.as_str()))
            })
            .expect("some secret is left");
        done.insert(&ready.name);
        out.push(ready);
    }
    out
}

/// What applying did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.secrets
            .iter()
            .all(|s| s.action == Action::Unchanged && s.metadata.is_empty())
    }

    /// Writes the plan, wave after wave (a secret after those it refers
    /// to), the secrets of a wave [`WRITERS`] at a time. Each secret is one
    /// check-and-set write of the version planned against: if anyone
    /// changed it since, this ends with [`PlatformError::Changed`] before
    /// the next wave, and the secret keeps the other write.
    pub fn apply(&self, kv: &dyn SecretStore) -> Result<Outcome, PlatformError> {
        let mut outcome = Outcome::default();
        let last = self.secrets.iter().map(|s| s.wave).max().unwrap_or(0);
        for wave in 0..=last {
            let secrets: Vec<&SecretPlan> =
                self.secrets.iter().filter(|s| s.wave == wave).collect();
            for (secret, written) in
                secrets
                    .iter()
                    .zip(crate::parallel::map(&secrets, WRITERS, |s| s.write(kv)))
            {
                if !written? {
                    return Err(PlatformError::Changed {
                        secret: secret.name.clone(),
                    });
                }
                match secret.action {
                    Action::Create => outcome.created += 1,
                    Action::Update => outcome.updated += 1,
                    Action::Unchanged => outcome.unchanged += 1,
                }
            }
        }
        Ok(outcome)
    }

    /// The plan as a table: secret, key, source and action. Never a value.
    pub fn table(&self) -> String {
        let mut rows = vec![[
            "SECRET".to_owned(),
            "KEY".into(),
            "SOURCE".into(),
            "ACTION".into(),
        ]];
        for secret in &self.secrets {
            let name = match &secret.namespace {
                Some(ns) => format!("{ns}/{}", secret.name),
                None => secret.name.clone(),
            };
            for key in &secret.keys {
                let mut action = key.action.name().to_owned();
                if secret.rotate_due && key.source.starts_with("generate") {
                    action.push_str(", rotate-due");
                }
                rows.push([name.clone(), key.key.clone(), key.source.clone(), action]);
            }
        }
        let mut widths = [0usize; 4];
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let _ = write!(line, "{cell:<width$}  ", width = widths[i]);
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// One line saying what the plan does (or did, once applied).
    pub fn summary(&self) -> String {
        let count = |a: Action| self.secrets.iter().filter(|s| s.action == a).count();
        let (create, update, same) = (
            count(Action::Create),
            count(Action::Update),
            count(Action::Unchanged),
        );
        let due = self.secrets.iter().filter(|s| s.rotate_due).count();
        let mut text = if create + update == 0 {
            format!(
                "No changes: {same} secret{} up to date.",
                if same == 1 { " is" } else { "s are" }
            )
        } else {
            format!("{create} to create, {update} to update, {same} unchanged.")
        };
        if due > 0 {
            let _ = write!(
                text,
                " {due} secret{} due for rotation.",
                if due == 1 { " is" } else { "s are" }
            );
        }
        text
    }
}
