//! `tresor.yaml`: parsing and validation. Every problem is reported with
//! its line and column, all at once, before anything is opened or written.
//!
//! The raw document ([`raw`]) is validated ([`validate`], with the keys,
//! rotations and targets each in their own module) into the model
//! ([`model`]) that the rest of tresor reads.

mod keys;
mod model;
mod names;
mod raw;
mod rotation;
mod targets;
mod validate;

pub use model::{
    AwsTarget, Consumer, ConsumerKind, DEFAULT_ROTATION_EVERY, KeyPair, KeyRef, KeySpec,
    KubernetesSpec, PostgresRotation, ROTATION_RECORD_PREFIX, Rotation, SPEC_VERSION, SecretSpec,
    Source, Spec, StoreSpec, Strategy, Targets, VaultAuth, VaultTarget,
};
pub use names::check_key_name;
pub use validate::{Problem, SpecError, load, parse};
