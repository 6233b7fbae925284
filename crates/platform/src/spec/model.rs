//! The validated spec: what the rest of tresor reads. Every value here
//! passed validation; secret values are never in `Debug` output.

use crate::generate::Generator;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// The only spec version this tresor reads.
pub const SPEC_VERSION: u32 = 1;

/// A validated platform spec.
#[derive(Debug)]
pub struct Spec {
    /// The platform's name: labels what tresor delivers, so that pruning
    /// touches only this platform's objects.
    pub name: String,
    pub store: StoreSpec,
    pub kubernetes: KubernetesSpec,
    /// Ordered by name.
    pub secrets: Vec<SecretSpec>,
}

/// Where the secrets are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// An embedded store in a directory, auto-unsealed by a key file.
    Embedded {
        path: PathBuf,
        /// `None`: the one recorded in the store, or a new one under
        /// ~/.config/tresor/keys/ when the store is created.
        key_file: Option<PathBuf>,
        mount: String,
    },
    /// A `tresor server` at this address.
    Server { address: String },
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesSpec {
    /// The kubeconfig context to deliver to; none: apply only stores.
    pub context: Option<String>,
    /// The namespace of secrets that name none.
    pub namespace: Option<String>,
}

#[derive(Debug)]
pub struct SecretSpec {
    /// The Kubernetes Secret's name, also its name in the spec.
    pub name: String,
    pub namespace: Option<String>,
    /// Its path in the store's KV mount.
    pub path: String,
    pub keys: Vec<KeySpec>,
    pub consumers: Vec<Consumer>,
    pub rotation: Option<Rotation>,
    /// Where it is delivered besides the store.
    pub targets: Targets,
    pub line: u32,
}

impl SecretSpec {
    pub fn key(&self, name: &str) -> Option<&KeySpec> {
        self.keys.iter().find(|k| k.name == name)
    }
}

#[derive(Debug)]
pub struct KeySpec {
    pub name: String,
    pub source: Source,
    /// Why a weak value is acceptable here, when it is.
    pub allow_weak: Option<String>,
    pub line: u32,
}

/// Where a key's value comes from.
pub enum Source {
    Literal(Zeroizing<String>),
    Generate(Generator),
    Ref(KeyRef),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Source {
    /// How the plan table shows the source: never the value.
    pub fn describe(&self) -> String {
        match self {
            Source::Literal(_) => "literal".into(),
            Source::Generate(g) => format!("generate {g}"),
            Source::Ref(r) => format!("ref {r}"),
        }
    }
}

/// A reference to another key of the spec: `secret/key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyRef {
    pub secret: String,
    pub key: String,
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.secret, self.key)
    }
}

/// A workload that reads a secret.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Consumer {
    pub kind: ConsumerKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsumerKind {
    Deployment,
    StatefulSet,
    DaemonSet,
}

impl ConsumerKind {
    /// The lowercase singular name kubectl uses (`deployment/x`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Deployment => "deployment",
            Self::StatefulSet => "statefulset",
            Self::DaemonSet => "daemonset",
        }
    }

    /// The Kubernetes kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::DaemonSet => "DaemonSet",
        }
    }

    /// The resource in apps/v1 URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Deployment => "deployments",
            Self::StatefulSet => "statefulsets",
            Self::DaemonSet => "daemonsets",
        }
    }
}

impl fmt::Display for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.name(), self.name)
    }
}

/// When a secret falls due for rotation, and how `tresor rotate` rotates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub every: Duration,
    /// `None`: the `generate` rotator (fresh values from the keys' generators).
    pub postgres: Option<PostgresRotation>,
    /// The spec names the rotator (`rotator: generate`, or a `postgres`
    /// section) rather than leaving it to the default.
    pub rotator_named: bool,
}

/// The rotation period when `rotation:` names none.
pub const DEFAULT_ROTATION_EVERY: Duration = Duration::from_secs(90 * 24 * 3600);

/// The `postgres` rotator: changes a role's password in PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresRotation {
    pub host: String,
    pub port: u16,
    pub database: String,
    /// The declared secret holding the admin login, and its two keys.
    pub admin: KeyPair,
    /// This secret's key holding the login role's name.
    pub role_key: String,
    /// This secret's key holding the password (a generated key).
    pub password_key: String,
    pub strategy: Strategy,
}

/// A secret and two of its keys: a login's user name and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub secret: String,
    pub username_key: String,
    pub password_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// One role whose password changes in place.
    SingleUser,
    /// Two login roles, members of one NOLOGIN owner role; each rotation
    /// changes the one not in use, and the retired one stops logging in
    /// after `grace`.
    AlternatingUsers {
        owner: String,
        roles: [String; 2],
        grace: Duration,
    },
}

/// Where rotation keeps its own records in the store's KV mount: no
/// declared secret may live under it.
pub const ROTATION_RECORD_PREFIX: &str = "_tresor/";

/// The targets of one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets {
    /// Delivered as a Kubernetes Secret (the default).
    pub kubernetes: bool,
    pub aws: Option<AwsTarget>,
    pub vault: Option<VaultTarget>,
}

impl Default for Targets {
    fn default() -> Self {
        Self {
            kubernetes: true,
            aws: None,
            vault: None,
        }
    }
}

/// A secret in AWS Secrets Manager whose secret string is a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsTarget {
    pub name: String,
    /// `None`: the default provider chain's region (`AWS_REGION`, profile).
    pub region: Option<String>,
    pub kms_key: Option<String>,
    /// The JSON object's fields and the key each one holds, by field.
    pub json: BTreeMap<String, String>,
}

/// A path in a Vault KV version 2 mount, holding the secret's keys as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultTarget {
    /// `None`: `VAULT_ADDR`.
    pub address: Option<String>,
    pub mount: String,
    pub path: String,
    pub auth: VaultAuth,
}

/// Where the token for a Vault target comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultAuth {
    /// `VAULT_TOKEN`, else `~/.vault-token`.
    Environment,
    /// The value of a key declared in this spec (kept in the store).
    Token(KeyRef),
}
