//! The four-step rotation of one secret, as AWS Secrets Manager runs it:
//! create the pending values, set them where they are checked, test them,
//! finish by promoting them to `current`. The step reached is persisted in
//! the secret's rotation record (check-and-set) before the next one starts,
//! and each step may run again, so a rotation stopped at any point (a
//! fault, a crash, SIGKILL) is completed by the next run, and until it is
//! promoted consumers keep the `current` values.

use crate::postgres::Postgres;
use crate::record::{self, Record, Retire, State, Step};
use crate::rotator::{Generate, Rotator};
use crate::{Report, RotateError, dependents, references, value};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::SystemTime;
use tresor_kv::SecretMap;
use tresor_platform::{GENERATED_PREFIX, SecretSpec, SecretStore, Source, Spec};

/// Test hook: the name of a step (`create`, `set`, `test`, `promote`,
/// `finish`) after which the process stops, right after persisting it, and
/// waits to be killed. Read here only; documented in docs/rotation.md.
pub const FAULT_HOOK: &str = "TRESOR_FAULT_PAUSE_AFTER_STEP";

/// What one rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub secret: String,
    /// The secret's KV version now labelled `current`.
    pub version: u64,
    /// Where a resumed rotation picked up (`None`: it started afresh).
    pub resumed_after: Option<&'static str>,
    /// Every secret whose values changed: this one and those referring to it.
    pub changed: Vec<String>,
}

/// Rotates the secrets of one spec in one store.
pub struct Engine<'a> {
    spec: &'a Spec,
    store: &'a dyn SecretStore,
    nonce: String,
}

impl<'a> Engine<'a> {
    pub fn new(spec: &'a Spec, store: &'a dyn SecretStore) -> Self {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
        let nonce = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Self { spec, store, nonce }
    }

    pub fn spec(&self) -> &Spec {
        self.spec
    }

    pub fn store(&self) -> &dyn SecretStore {
        self.store
    }

    /// The declared secret called `name`.
    pub fn secret(&self, name: &str) -> Result<&'a SecretSpec, RotateError> {
        self.spec
            .secrets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| RotateError::Unknown(name.to_owned()))
    }

    /// Runs (or resumes) the rotation of `secret` to the end.
    pub fn rotate(&self, secret: &SecretSpec, now: SystemTime) -> Result<Rotated, RotateError> {
        let rotator = for_secret(self.spec, secret, self.store)?;
        let rec = self.acquire(secret, now)?;
        self.run(secret, rotator.as_ref(), rec, now)
    }

    /// [`Engine::rotate`], but only if the secret is still due (overdue or
    /// unfinished) once its lease is held: a scheduler that saw it due may
    /// have been overtaken by another server that rotated it meanwhile.
    /// `Ok(None)`: nothing left to do.
    pub fn rotate_if_due(
        &self,
        secret: &SecretSpec,
        now: SystemTime,
    ) -> Result<Option<Rotated>, RotateError> {
        let rotator = for_secret(self.spec, secret, self.store)?;
        let mut rec = self.acquire(secret, now)?;
        if !crate::status::row(self.spec, secret, Some(self.store), now)?.due() {
            rec.state.lease = None;
            // Best effort: if it fails, the lease simply expires.
            let _ = rec.save(self.store, &secret.path);
            return Ok(None);
        }
        self.run(secret, rotator.as_ref(), rec, now).map(Some)
    }

    fn run(
        &self,
        secret: &SecretSpec,
        rotator: &dyn Rotator,
        mut rec: Record,
        now: SystemTime,
    ) -> Result<Rotated, RotateError> {
        let resumed_after = rec.state.step.map(Step::name);
        match self.steps(secret, rotator, &mut rec, now) {
            Ok(rotated) => Ok(Rotated {
                resumed_after,
                ..rotated
            }),
            Err(error) => {
                rec.state.lease = None;
                rec.state.last_error = Some(error.to_string());
                // Best effort: if it fails, the lease simply expires.
                let _ = rec.save(self.store, &secret.path);
                Err(error)
            }
        }
    }

    /// Takes the secret's lease with check-and-set: one rotation per secret
    /// at a time, across processes and servers sharing the store.
    fn acquire(&self, secret: &SecretSpec, now: SystemTime) -> Result<Record, RotateError> {
        for _ in 0..8 {
            let mut rec = record::load(self.store, &secret.path)?;
            if let Some(lease) = &rec.state.lease
                && lease.nonce != self.nonce
                && record::is_held(lease, now)
            {
                return Err(RotateError::Busy {
                    secret: secret.name.clone(),
                    holder: lease.describe(),
                });
            }
            rec.state.lease = Some(record::holder(now, &self.nonce));
            if rec.save(self.store, &secret.path)? {
                return Ok(rec);
            }
        }
        Err(RotateError::Busy {
            secret: secret.name.clone(),
            holder: "other writers of its rotation record".into(),
        })
    }

    /// Persists the record; losing the check-and-set means another process
    /// took the lease over (ours expired), and it finishes the rotation.
    fn persist(&self, secret: &SecretSpec, rec: &mut Record) -> Result<(), RotateError> {
        if rec.save(self.store, &secret.path)? {
            Ok(())
        } else {
            Err(RotateError::LeaseLost(secret.name.clone()))
        }
    }

    fn steps(
        &self,
        secret: &SecretSpec,
        rotator: &dyn Rotator,
        rec: &mut Record,
        now: SystemTime,
    ) -> Result<Rotated, RotateError> {
        let stored = self.store.read(&secret.path)?;
        let current = stored
            .data
            .ok_or_else(|| RotateError::Missing(secret.name.clone()))?;
        let failed = |step: Step, reason: String| RotateError::Step {
            secret: secret.name.clone(),
            step: step.name(),
            reason,
        };
        if rec.state.step.is_none() {
            rec.pending = rotator
                .create(&current)
                .map_err(|why| failed(Step::Create, why))?;
            rec.state.step = Some(Step::Create);
            rec.state.base = stored.version;
            rec.state.started = Some(record::stamp(now));
            rec.state.last_error = None;
            if rec.state.current == 0 {
                rec.state.current = stored.version;
            }
            self.persist(secret, rec)?;
            pause_after("create", secret);
        }
        if rec.state.step == Some(Step::Create) {
            rotator
                .set(&current, &rec.pending)
                .map_err(|why| failed(Step::Set, why))?;
            // Setting a retired role's password brought it back into use:
            // it must not be retired under its new consumers.
            let back = |r: &Retire| rec.pending.iter().any(|(_, v)| v.as_str() == Some(&r.role));
            if rec.state.retire.as_ref().is_some_and(back) {
                rec.state.retire = None;
            }
            rec.state.step = Some(Step::Set);
            self.persist(secret, rec)?;
            pause_after("set", secret);
        }
        if rec.state.step == Some(Step::Set) {
            rotator
                .test(&current, &rec.pending)
                .map_err(|why| failed(Step::Test, why))?;
            rec.state.step = Some(Step::Test);
            self.persist(secret, rec)?;
            pause_after("test", secret);
        }
        self.finish(secret, rotator, rec, &current, now)
    }

    /// Promotes the pending values: a new version of the secret, then of
    /// every secret referring to its rotated keys, then the record. Each
    /// write is skipped when it already happened (a resumed rotation).
    fn finish(
        &self,
        secret: &SecretSpec,
        rotator: &dyn Rotator,
        rec: &mut Record,
        current: &SecretMap,
        now: SystemTime,
    ) -> Result<Rotated, RotateError> {
        let updates = Updates(
            rec.pending
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        let version = promote(self.store, secret, &updates.0)?;
        pause_after("promote", secret);
        let mut changed = vec![secret.name.clone()];
        for (other, keys) in references(self.spec, secret, &rec.pending) {
            let values = Updates(
                keys.iter()
                    .filter_map(|(key, source)| {
                        Some((key.clone(), rec.pending.get(source)?.clone()))
                    })
                    .collect(),
            );
            promote(self.store, other, &values.0)?;
            changed.push(other.name.clone());
        }
        self.record_generated(secret, &rec.pending, now)?;
        let retiring = rotator.retiring(current, &rec.pending);
        let state = &mut rec.state;
        state.previous = Some(state.base);
        state.current = version;
        state.step = None;
        state.last_rotated = Some(record::stamp(now));
        state.started = None;
        state.undelivered = crate::deliver::needed(self.spec, &changed);
        state.lease = None;
        state.last_error = None;
        if let Some((role, grace)) = retiring {
            state.retire = Some(Retire {
                role,
                after: record::stamp(now + grace),
            });
        }
        rec.pending = SecretMap::new();
        self.persist(secret, rec)?;
        pause_after("finish", secret);
        Ok(Rotated {
            secret: secret.name.clone(),
            version,
            resumed_after: None,
            changed,
        })
    }

    /// Moves the generation time of the rotated generated keys, so that
    /// `tresor apply` counts their age from the rotation.
    fn record_generated(
        &self,
        secret: &SecretSpec,
        pending: &SecretMap,
        now: SystemTime,
    ) -> Result<(), RotateError> {
        let mut custom = BTreeMap::new();
        for key in &secret.keys {
            if let Source::Generate(g) = &key.source
                && pending.get(&key.name).is_some()
            {
                custom.insert(
                    format!("{GENERATED_PREFIX}{}", key.name),
                    Some(format!("{g} at {}", record::stamp(now))),
                );
            }
        }
        if !custom.is_empty() {
            self.store.merge_custom_metadata(&secret.path, &custom)?;
        }
        Ok(())
    }

    /// Retires the login role an `alternating-users` rotation replaced, once
    /// its grace period is over. Returns the role retired.
    pub fn retire_due(
        &self,
        secret: &SecretSpec,
        now: SystemTime,
    ) -> Result<Option<String>, RotateError> {
        let rec = record::load(self.store, &secret.path)?;
        let Some(retire) = rec.state.retire.clone() else {
            return Ok(None);
        };
        if record::parse(&retire.after).is_some_and(|after| after > now) {
            return Ok(None);
        }
        let rotator = for_secret(self.spec, secret, self.store)?;
        let mut rec = self.acquire(secret, now)?;
        if rec.state.retire.as_ref() != Some(&retire) || rec.state.step.is_some() {
            rec.state.lease = None;
            self.persist(secret, &mut rec)?;
            return Ok(None);
        }
        let outcome = rotator.retire(&retire.role);
        rec.state.lease = None;
        match outcome {
            Ok(()) => {
                rec.state.retire = None;
                self.persist(secret, &mut rec)?;
                Ok(Some(retire.role))
            }
            Err(reason) => {
                rec.state.last_error = Some(reason.clone());
                self.persist(secret, &mut rec)?;
                Err(RotateError::Retire {
                    secret: secret.name.clone(),
                    reason,
                })
            }
        }
    }

    /// Delivers `changed` (what this run rotated) and every secret promoted
    /// earlier but never delivered (a crash, an unreachable target), with
    /// the secrets following it; then clears the "undelivered" mark of each
    /// rotated secret that every place now holds, its followers included.
    pub fn deliver(&self, changed: &[String]) -> Result<Report, RotateError> {
        let mut names = changed.to_vec();
        let mut marked = Vec::new();
        for secret in self.spec.secrets.iter().filter(|s| s.rotation.is_some()) {
            let state = record::load(self.store, &secret.path)?.state;
            if !state.undelivered {
                continue;
            }
            let group: Vec<String> = std::iter::once(secret)
                .chain(dependents(self.spec, &secret.name))
                .map(|s| s.name.clone())
                .collect();
            for name in &group {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            marked.push((secret, group, state.current));
        }
        let delivery = crate::deliver(self.spec, self.store, &names)?;
        for (secret, group, version) in marked {
            if group.iter().all(|name| delivery.complete(name)) {
                self.delivered(secret, version)?;
            }
        }
        Ok(delivery)
    }

    /// Clears the "promoted but not delivered" mark once delivery worked,
    /// unless a later rotation promoted another version meanwhile (what was
    /// delivered may predate it; the next run delivers again).
    fn delivered(&self, secret: &SecretSpec, version: u64) -> Result<(), RotateError> {
        for _ in 0..8 {
            let mut rec = record::load(self.store, &secret.path)?;
            if !rec.state.undelivered || rec.state.current != version {
                return Ok(());
            }
            rec.state.undelivered = false;
            if rec.save(self.store, &secret.path)? {
                return Ok(());
            }
        }
        Err(RotateError::LeaseLost(secret.name.clone()))
    }

    /// The secret's rotation state as stored.
    pub fn state(&self, secret: &SecretSpec) -> Result<State, RotateError> {
        Ok(record::load(self.store, &secret.path)?.state)
    }
}

/// The rotator the spec asks for. The postgres rotator reads its admin
/// credential, itself a declared secret, from the store.
fn for_secret(
    spec: &Spec,
    secret: &SecretSpec,
    store: &dyn SecretStore,
) -> Result<Box<dyn Rotator>, RotateError> {
    let rotation = secret
        .rotation
        .as_ref()
        .ok_or_else(|| RotateError::NoPolicy(secret.name.clone()))?;
    if let Some(refused) = crate::refusal(spec, secret) {
        return Err(refused);
    }
    match &rotation.postgres {
        None => Ok(Box::new(Generate::new(secret))),
        Some(pg) => {
            let admin = spec
                .secrets
                .iter()
                .find(|s| s.name == pg.admin.secret)
                .expect("validated: the admin secret is declared");
            let data = store
                .read(&admin.path)?
                .data
                .ok_or_else(|| RotateError::Missing(admin.name.clone()))?;
            let user = value(&data, &pg.admin.username_key)
                .ok_or_else(|| RotateError::Missing(admin.name.clone()))?;
            let password = value(&data, &pg.admin.password_key)
                .ok_or_else(|| RotateError::Missing(admin.name.clone()))?;
            let Some(Source::Generate(generator)) = secret.key(&pg.password_key).map(|k| &k.source)
            else {
                unreachable!("validated: the password key is generated")
            };
            Ok(Box::new(Postgres::new(
                pg.clone(),
                user,
                password,
                generator.clone(),
            )))
        }
    }
}

/// Values about to be written; wiped when dropped.
struct Updates(Vec<(String, Value)>);

impl Drop for Updates {
    fn drop(&mut self) {
        for (_, v) in &mut self.0 {
            tresor_kv::wipe_json(v);
        }
    }
}

/// Writes `updates` into the secret as a new version (check-and-set against
/// the version read), unless it already holds them. Returns the version
/// that holds them.
fn promote(
    store: &dyn SecretStore,
    secret: &SecretSpec,
    updates: &[(String, Value)],
) -> Result<u64, RotateError> {
    for _ in 0..8 {
        let stored = store.read(&secret.path)?;
        let data = stored
            .data
            .ok_or_else(|| RotateError::Missing(secret.name.clone()))?;
        if updates.iter().all(|(k, v)| data.get(k) == Some(v)) {
            return Ok(stored.version);
        }
        let mut next = data.clone();
        for (k, v) in updates {
            next.insert(k.clone(), v.clone());
        }
        if store.write(&secret.path, &next, stored.version)? {
            return Ok(stored.version + 1);
        }
    }
    Err(RotateError::LeaseLost(secret.name.clone()))
}

/// Test hook: stop right after a step was persisted, until killed.
fn pause_after(step: &str, secret: &SecretSpec) {
    if std::env::var(FAULT_HOOK).is_ok_and(|s| s == step) {
        eprintln!(
            "tresor: fault hook {FAULT_HOOK}: paused after step `{step}` of `{}`",
            secret.name
        );
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
