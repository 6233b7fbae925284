//! Rotation that really rotates: a secret's `rotation:` policy from
//! tresor.yaml, a resumable four-step state machine (create, set, test,
//! finish) whose progress lives in the store, and the rotators `generate`
//! (fresh values from the keys' generators) and `postgres` (a role's
//! password changed in the database, tested by a fresh login, then
//! promoted). See docs/rotation.md.
#![forbid(unsafe_code)]

mod deliver;
mod machine;
mod postgres;
pub mod record;
mod rotator;
mod status;

pub use deliver::deliver;
pub use machine::{Engine, FAULT_HOOK, Rotated};
pub use rotator::Rotator;
pub use status::{Row, short_duration, status};
pub use tresor_delivery::{Kubernetes, Report};

use tresor_kv::SecretMap;
use tresor_platform::{PlatformError, SecretSpec, Source, Spec};
use zeroize::Zeroizing;

/// Why a rotation did not complete. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(transparent)]
    Store(#[from] PlatformError),
    #[error("the spec declares no secret `{0}`")]
    Unknown(String),
    #[error(
        "secret `{0}` has no `rotation` policy; add `rotation: {{every: 90d}}` to it in the spec"
    )]
    NoPolicy(String),
    #[error(
        "secret `{secret}` is not rotated: the `generate` rotator would give `{key}` a fresh value in the store only, but `{referrer}` refers to it, so it is a credential checked somewhere else (a database, a service) that would refuse the new value. Declare the rotator that changes it where it is checked (a `postgres` section in its `rotation`, see docs/rotation.md), or `rotation: {{rotator: generate}}` if only the store checks it"
    )]
    SharedCredential {
        secret: String,
        key: String,
        referrer: String,
    },
    #[error("secret `{0}` (or one of its keys) is not in the store yet; run `tresor apply` first")]
    Missing(String),
    #[error("secret `{secret}` is being rotated by {holder}; run again once it is done")]
    Busy { secret: String, holder: String },
    #[error(
        "the rotation of `{0}` was taken over by another process (this one's lease ran out); that process finishes it"
    )]
    LeaseLost(String),
    #[error(
        "rotation of `{secret}` stopped at step `{step}`, before promotion: {reason}. The store's current values were not changed; fix the cause and run the rotation again, it resumes at this step"
    )]
    Step {
        secret: String,
        step: &'static str,
        reason: String,
    },
    #[error(
        "could not retire the replaced login of `{secret}`: {reason}; the next run tries again"
    )]
    Retire { secret: String, reason: String },
    #[error(
        "the rotation record at `{0}` is not readable; delete it with `tresor kv metadata delete` only if no rotation is under way"
    )]
    Corrupt(String),
    #[error(transparent)]
    Delivery(tresor_delivery::DeliveryError),
}

impl RotateError {
    /// Whether the input was at fault rather than the store or a database.
    pub fn is_usage(&self) -> bool {
        match self {
            RotateError::Store(e) => e.is_usage(),
            RotateError::Unknown(_)
            | RotateError::NoPolicy(_)
            | RotateError::Missing(_)
            | RotateError::SharedCredential { .. } => true,
            _ => false,
        }
    }
}

/// Why `secret` may not be rotated as its policy stands: the default
/// `generate` rotator on a generated key another secret refers to (a
/// shared credential, checked where the store cannot change it), unless
/// the spec names the rotator.
pub fn refusal(spec: &Spec, secret: &SecretSpec) -> Option<RotateError> {
    let rotation = secret.rotation.as_ref()?;
    if rotation.postgres.is_some() || rotation.rotator_named {
        return None;
    }
    for key in &secret.keys {
        if !matches!(key.source, Source::Generate(_)) {
            continue;
        }
        for other in spec.secrets.iter().filter(|o| o.name != secret.name) {
            for k in &other.keys {
                if origin(spec, &other.name, &k.name)
                    == Some((secret.name.clone(), key.name.clone()))
                {
                    return Some(RotateError::SharedCredential {
                        secret: secret.name.clone(),
                        key: key.name.clone(),
                        referrer: format!("{}/{}", other.name, k.name),
                    });
                }
            }
        }
    }
    None
}

/// A string value of `data`, copied into memory that is wiped.
pub(crate) fn value(data: &SecretMap, key: &str) -> Option<Zeroizing<String>> {
    data.get(key)?
        .as_str()
        .map(|s| Zeroizing::new(s.to_owned()))
}

/// The secrets whose keys refer (directly or through a chain) to one of
/// `secret`'s keys in `pending`: for each, its key and the rotated key.
pub(crate) fn references<'a>(
    spec: &'a Spec,
    secret: &SecretSpec,
    pending: &SecretMap,
) -> Vec<(&'a SecretSpec, Vec<(String, String)>)> {
    let mut out = Vec::new();
    for other in &spec.secrets {
        let keys: Vec<(String, String)> = other
            .keys
            .iter()
            .filter_map(|k| {
                let (s, key) = origin(spec, &other.name, &k.name)?;
                (s == secret.name && pending.get(&key).is_some() && other.name != secret.name)
                    .then(|| (k.name.clone(), key))
            })
            .collect();
        if !keys.is_empty() {
            out.push((other, keys));
        }
    }
    out
}

/// The secrets with a key referring (directly or through a chain) to one
/// of `secret`'s keys: they follow its rotations.
pub(crate) fn dependents<'a>(spec: &'a Spec, secret: &str) -> Vec<&'a SecretSpec> {
    spec.secrets
        .iter()
        .filter(|other| other.name != secret)
        .filter(|other| {
            other
                .keys
                .iter()
                .any(|k| origin(spec, &other.name, &k.name).is_some_and(|(s, _)| s == secret))
        })
        .collect()
}

/// Where a referring key's value comes from: the end of its `ref` chain
/// (`None` when the key is no reference).
fn origin(spec: &Spec, secret: &str, key: &str) -> Option<(String, String)> {
    let mut at = (secret.to_owned(), key.to_owned());
    let mut hops = 0;
    loop {
        let s = spec.secrets.iter().find(|s| s.name == at.0)?;
        match &s.key(&at.1)?.source {
            Source::Ref(r) => {
                at = (r.secret.clone(), r.key.clone());
                hops += 1;
            }
            _ => return (hops > 0).then_some(at),
        }
    }
}
