//! The rotation dashboard: per secret, its keys (names only), version,
//! age, last rotation, next due date, and where it is delivered.

use crate::RotateError;
use crate::record::{self, Step};
use std::time::{Duration, SystemTime};
use tresor_platform::{GENERATED_PREFIX, SecretSpec, SecretStore, Spec};

/// One secret's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub secret: String,
    pub namespace: Option<String>,
    pub keys: Vec<String>,
    /// The KV version labelled `current` (0: not in the store).
    pub version: u64,
    /// The KV version labelled `previous`, after a first rotation.
    pub previous: Option<u64>,
    /// `generate`, `postgres single-user`, `postgres alternating-users`;
    /// `None`: no rotation policy.
    pub rotator: Option<String>,
    pub every: Option<Duration>,
    /// When tresor last rotated it.
    pub last_rotated: Option<SystemTime>,
    /// When its values were made: the last rotation, else their generation.
    pub since: Option<SystemTime>,
    pub next_due: Option<SystemTime>,
    pub overdue: bool,
    /// The step an unfinished rotation reached.
    pub in_progress: Option<&'static str>,
    pub last_error: Option<String>,
    /// Promoted, not yet delivered.
    pub undelivered: bool,
    /// Why its policy does not let it be rotated (what to declare).
    pub refused: Option<String>,
    /// Where it goes: `kubernetes <context>: <ns>/<name>` and its consumers,
    /// `aws: <name>`, `vault: <mount>/<path>`.
    pub delivered_to: Vec<String>,
}

impl Row {
    /// Whether `tresor rotate --due` picks it: overdue or left unfinished,
    /// and its policy lets it be rotated.
    pub fn due(&self) -> bool {
        (self.overdue || self.in_progress.is_some()) && self.refused.is_none()
    }

    pub fn age(&self, now: SystemTime) -> Option<Duration> {
        self.since
            .map(|t| now.duration_since(t).unwrap_or(Duration::ZERO))
    }
}

/// The dashboard's rows, in the spec's order.
pub fn status(
    spec: &Spec,
    store: Option<&dyn SecretStore>,
    now: SystemTime,
) -> Result<Vec<Row>, RotateError> {
    spec.secrets
        .iter()
        .map(|secret| row(spec, secret, store, now))
        .collect()
}

pub(crate) fn row(
    spec: &Spec,
    secret: &SecretSpec,
    store: Option<&dyn SecretStore>,
    now: SystemTime,
) -> Result<Row, RotateError> {
    let (version, custom, state) = match store {
        Some(store) => {
            let stored = store.read(&secret.path)?;
            let exists = stored.data.is_some();
            let state = record::load(store, &secret.path)?.state;
            (
                if exists { stored.version } else { 0 },
                stored.custom,
                state,
            )
        }
        None => Default::default(),
    };
    let generated = secret
        .keys
        .iter()
        .filter_map(|k| custom.get(&format!("{GENERATED_PREFIX}{}", k.name)))
        .filter_map(|r| record::parse(r.split_once(" at ")?.1))
        .min();
    let last_rotated = state.last_rotated.as_deref().and_then(record::parse);
    let since = last_rotated.or(generated);
    let rotation = secret.rotation.as_ref();
    // A value of unknown age (set by hand) is due now.
    let next_due = rotation.map(|r| since.map_or(now, |t| t + r.every));
    let rotator = rotation.map(|r| match &r.postgres {
        None => "generate".to_owned(),
        Some(pg) => match pg.strategy {
            tresor_platform::Strategy::SingleUser => "postgres single-user".into(),
            tresor_platform::Strategy::AlternatingUsers { .. } => {
                "postgres alternating-users".into()
            }
        },
    });
    let mut delivered_to = Vec::new();
    if let Some(context) = &spec.kubernetes.context
        && secret.targets.kubernetes
    {
        let ns = secret.namespace.as_deref().unwrap_or("default");
        delivered_to.push(format!("kubernetes {context}: {ns}/{}", secret.name));
        delivered_to.extend(secret.consumers.iter().map(ToString::to_string));
    }
    if let Some(aws) = &secret.targets.aws {
        delivered_to.push(format!("aws: {}", aws.name));
    }
    if let Some(vault) = &secret.targets.vault {
        delivered_to.push(format!("vault: {}/{}", vault.mount, vault.path));
    }
    Ok(Row {
        secret: secret.name.clone(),
        namespace: secret.namespace.clone(),
        keys: secret.keys.iter().map(|k| k.name.clone()).collect(),
        version,
        previous: state.previous,
        rotator,
        every: rotation.map(|r| r.every),
        last_rotated,
        since,
        next_due,
        overdue: version > 0 && next_due.is_some_and(|due| due <= now),
        in_progress: state.step.map(Step::name),
        last_error: state.last_error,
        undelivered: state.undelivered,
        refused: crate::refusal(spec, secret).map(|e| e.to_string()),
        delivered_to,
    })
}

/// A duration as a person reads an age: `91d`, `3d 4h`, `5h 12m`, `40s`.
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes) = (s / 86400, s % 86400 / 3600, s % 3600 / 60);
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::short_duration;
    use std::time::Duration;

    #[test]
    fn ages_read_like_a_person_writes_them() {
        assert_eq!(short_duration(Duration::from_secs(40)), "40s");
        assert_eq!(
            short_duration(Duration::from_secs(3600 * 5 + 720)),
            "5h 12m"
        );
        assert_eq!(short_duration(Duration::from_secs(86400 * 91)), "91d");
        assert_eq!(
            short_duration(Duration::from_secs(86400 * 3 + 3600 * 4)),
            "3d 4h"
        );
    }
}
