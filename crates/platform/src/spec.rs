//! `tresor.yaml`: parsing and validation. Every problem is reported with
//! its line and column, all at once, before anything is opened or written.

use crate::generate::{Class, Generator, Password};
use crate::strength;
use crate::targets::{Defaults, RawAwsDefaults, RawTargets, RawVaultDefaults, Targets};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
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

/// One problem in a spec, at a place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// Why a spec cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read {}: {source}; pass the spec with -f FILE", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid platform spec (nothing was written):\n{}", file.display(), list(file, problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

fn list(file: &Path, problems: &[Problem]) -> String {
    let name = file.display();
    problems
        .iter()
        .map(|p| format!("  {name}:{}:{}: {}", p.line, p.column, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

impl SpecError {
    pub fn problems(&self) -> &[Problem] {
        match self {
            SpecError::Invalid { problems, .. } => problems,
            SpecError::Read { .. } => &[],
        }
    }
}

// The raw document, exactly as written.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    version: Spanned<u32>,
    name: Option<Spanned<String>>,
    store: Option<Spanned<RawStore>>,
    kubernetes: Option<Spanned<RawKubernetes>>,
    aws: Option<RawAwsDefaults>,
    vault: Option<RawVaultDefaults>,
    secrets: Spanned<BTreeMap<String, Spanned<RawSecret>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
    key_file: Option<String>,
    mount: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    context: Option<String>,
    namespace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    namespace: Option<Spanned<String>>,
    path: Option<Spanned<String>>,
    keys: BTreeMap<String, Spanned<RawKey>>,
    #[serde(default)]
    consumers: Vec<Spanned<String>>,
    rotation: Option<Spanned<RawRotation>>,
    targets: Option<Spanned<RawTargets>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotation {
    every: Option<String>,
    rotator: Option<String>,
    postgres: Option<Spanned<RawPostgres>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPostgres {
    host: Option<String>,
    port: Option<u16>,
    database: String,
    admin: RawAdmin,
    role_key: Option<String>,
    password_key: Option<String>,
    strategy: Option<String>,
    owner: Option<String>,
    roles: Option<Vec<String>>,
    grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    secret: String,
    username_key: Option<String>,
    password_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    value: Option<String>,
    generate: Option<Spanned<RawGenerate>>,
    #[serde(rename = "ref")]
    reference: Option<Spanned<String>>,
    allow_weak: Option<String>,
}

/// `generate: base64:32`, or `generate: {password: {...}}`.
enum RawGenerate {
    Short(String),
    Password(RawPassword),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPassword {
    length: Option<usize>,
    classes: Option<Vec<String>>,
    symbols: Option<String>,
    no_ambiguous: Option<bool>,
}

impl<'de> Deserialize<'de> for RawGenerate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct GenerateVisitor;
        impl<'de> Visitor<'de> for GenerateVisitor {
            type Value = RawGenerate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a generator such as base64:32, or a mapping {password: {length: 40}}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawGenerate, E> {
                Ok(RawGenerate::Short(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawGenerate, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(
                        "an empty generator; write base64:32 or {password: {length: 40}}",
                    ));
                };
                if kind != "password" {
                    return Err(de::Error::unknown_field(&kind, &["password"]));
                }
                let options: Option<RawPassword> = map.next_value()?;
                if map.next_key::<String>()?.is_some() {
                    return Err(de::Error::custom(
                        "a generator mapping holds only `password`",
                    ));
                }
                Ok(RawGenerate::Password(options.unwrap_or(RawPassword {
                    length: None,
                    classes: None,
                    symbols: None,
                    no_ambiguous: None,
                })))
            }
        }
        deserializer.deserialize_any(GenerateVisitor)
    }
}

/// Reads and validates the spec at `file`.
pub fn load(file: &Path) -> Result<Spec, SpecError> {
    let text = std::fs::read_to_string(file).map_err(|source| SpecError::Read {
        path: file.into(),
        source,
    })?;
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    parse(&text, dir).map_err(|problems| SpecError::Invalid {
        file: file.into(),
        problems,
    })
}

/// Parses and validates a spec; relative paths in it are taken from `dir`.
pub fn parse(text: &str, dir: &Path) -> Result<Spec, Vec<Problem>> {
    let raw: RawSpec = serde_saphyr::from_str(text).map_err(|e| vec![yaml_problem(&e)])?;
    let mut v = Validator::default();
    let spec = v.spec(raw, dir);
    if v.problems.is_empty() {
        Ok(spec)
    } else {
        v.problems.sort_by_key(|p| (p.line, p.column));
        Err(v.problems)
    }
}

/// A YAML or shape error as one problem. The rendered source snippet is
/// left out and quoted scalars are blanked: the line could hold a value.
fn yaml_problem(error: &serde_saphyr::Error) -> Problem {
    let location = error.location();
    let options = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
    let text = error.without_snippet().render_with_options(options);
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    // The renderer prefixes its own "line L column C: ": the caller prints the place itself.
    let message = match text.split_once(": ") {
        Some((head, rest)) if head.starts_with("line ") => rest,
        _ => text,
    };
    Problem {
        line: location.map_or(0, |l| l.line() as u32),
        column: location.map_or(0, |l| l.column() as u32),
        message: blank_quoted(message),
    }
}

fn blank_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if inside {
                out.push_str("…\"");
            } else {
                out.push('"');
            }
            inside = !inside;
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[derive(Default)]
pub(crate) struct Validator {
    pub(crate) problems: Vec<Problem>,
}

impl Validator {
    pub(crate) fn at(&mut self, location: Location, message: impl Into<String>) {
        self.problems.push(Problem {
            line: location.line() as u32,
            column: location.column() as u32,
            message: message.into(),
        });
    }

    fn spec(&mut self, raw: RawSpec, dir: &Path) -> Spec {
        if raw.version.value != SPEC_VERSION {
            self.at(
                raw.version.referenced,
                format!(
                    "version {} is not supported; this tresor reads version {SPEC_VERSION}",
                    raw.version.value
                ),
            );
        }
        let name = match raw.name {
            Some(name) => {
                if !is_label_value(&name.value) {
                    self.at(
                        name.referenced,
                        "the platform name must be 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit",
                    );
                }
                name.value
            }
            None => "tresor".into(),
        };
        let store = self.store(raw.store, dir);
        let kubernetes = match raw.kubernetes {
            Some(k) => {
                if let Some(ns) = &k.value.namespace {
                    self.namespace(ns);
                }
                KubernetesSpec {
                    context: k.value.context,
                    namespace: k.value.namespace.map(|n| n.value),
                }
            }
            None => KubernetesSpec::default(),
        };
        if raw.secrets.value.is_empty() {
            self.at(
                raw.secrets.referenced,
                "`secrets` is empty: declare at least one secret",
            );
        }
        let context = user_inputs(&name, &raw.secrets.value);
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        let defaults = Defaults {
            aws: raw.aws.unwrap_or_default(),
            vault: raw.vault.unwrap_or_default(),
        };
        let mut secrets = Vec::new();
        for (secret_name, mut secret) in raw.secrets.value {
            let targets = secret.value.targets.take();
            let mut parsed = self.secret(secret_name, secret, &kubernetes, &context);
            parsed.targets = self.targets(&parsed, targets, &defaults);
            secrets.push(parsed);
        }
        self.paths(&secrets);
        self.target_clashes(&secrets);
        self.references(&secrets);
        self.rotations(&secrets);
        Spec {
            name,
            store,
            kubernetes,
            secrets,
        }
    }

    fn store(&mut self, raw: Option<Spanned<RawStore>>, dir: &Path) -> StoreSpec {
        let Some(raw) = raw else {
            return StoreSpec::Embedded {
                path: dir.join(".tresor"),
                key_file: None,
                mount: "secret".into(),
            };
        };
        let at = raw.referenced;
        let store = raw.value;
        if let Some(address) = store.address {
            if store.path.is_some() || store.key_file.is_some() {
                self.at(at, "`store` names either an `address` or an embedded `path` (with `key_file`), not both");
            }
            return StoreSpec::Server { address };
        }
        let mount = store.mount.unwrap_or_else(|| "secret".into());
        if mount.trim_matches('/').is_empty() {
            self.at(at, "`store.mount` is empty; the default is `secret`");
        }
        StoreSpec::Embedded {
            path: resolve(dir, store.path.as_deref().unwrap_or(".tresor")),
            key_file: store.key_file.as_deref().map(|k| resolve(dir, k)),
            mount,
        }
    }

    fn namespace(&mut self, ns: &Spanned<String>) {
        if !is_dns_label(&ns.value) {
            self.at(
                ns.referenced,
                format!(
                    "namespace `{}` is not valid in Kubernetes: use at most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit",
                    ns.value
                ),
            );
        }
    }

    fn secret(
        &mut self,
        name: String,
        raw: Spanned<RawSecret>,
        kubernetes: &KubernetesSpec,
        context: &[&str],
    ) -> SecretSpec {
        let at = raw.referenced;
        let raw = raw.value;
        if !is_dns_subdomain(&name) {
            self.at(
                at,
                format!(
                    "secret name `{name}` is not valid in Kubernetes: use at most 253 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit"
                ),
            );
        }
        if let Some(ns) = &raw.namespace {
            self.namespace(ns);
        }
        let path = match raw.path {
            Some(path) => {
                let p = path.value.trim_matches('/').to_owned();
                if p.is_empty() || p.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
                    self.at(
                        path.referenced,
                        format!(
                            "secret `{name}`: `path` must be a store path such as `mlops/{name}`"
                        ),
                    );
                }
                p
            }
            None => name.clone(),
        };
        if raw.keys.is_empty() {
            self.at(at, format!("secret `{name}` has no keys"));
        }
        let mut keys = Vec::new();
        for (key_name, key) in raw.keys {
            keys.push(self.key(&name, key_name, key, context));
        }
        let mut consumers = Vec::new();
        for consumer in raw.consumers {
            match parse_consumer(&consumer.value) {
                Ok(c) if consumers.contains(&c) => self.at(
                    consumer.referenced,
                    format!("consumer `{c}` is listed twice"),
                ),
                Ok(c) => consumers.push(c),
                Err(message) => self.at(consumer.referenced, message),
            }
        }
        let rotation = raw.rotation.and_then(|r| self.rotation(r));
        SecretSpec {
            name,
            namespace: raw
                .namespace
                .map(|n| n.value)
                .or_else(|| kubernetes.namespace.clone()),
            path,
            keys,
            consumers,
            rotation,
            targets: Targets::default(),
            line: at.line() as u32,
        }
    }

    fn rotation(&mut self, raw: Spanned<RawRotation>) -> Option<Rotation> {
        let at = raw.referenced;
        let raw = raw.value;
        let every = match raw.every {
            None => DEFAULT_ROTATION_EVERY,
            Some(text) => match humantime::parse_duration(&text) {
                Ok(every) if !every.is_zero() => every,
                _ => {
                    self.at(
                        at,
                        format!("rotation `every: {text}` is not a duration; write for example `90d` or `12h`"),
                    );
                    return None;
                }
            },
        };
        match (raw.rotator.as_deref(), &raw.postgres) {
            (None | Some("postgres"), Some(_)) | (None | Some("generate"), None) => {}
            (Some("generate"), Some(_)) => {
                self.at(at, "rotation `rotator: generate` and a `postgres` section contradict each other: keep the one that changes the value where it is checked");
                return None;
            }
            (Some("postgres"), None) => {
                self.at(at, "rotation `rotator: postgres` needs a `postgres` section saying which database and role (see docs/rotation.md)");
                return None;
            }
            (Some(other), _) => {
                self.at(
                    at,
                    format!("rotation `rotator: {other}` is unknown; use `generate` or `postgres`"),
                );
                return None;
            }
        }
        let rotator_named = raw.rotator.is_some() || raw.postgres.is_some();
        let postgres = match raw.postgres {
            Some(p) => Some(self.postgres(p)?),
            None => None,
        };
        Some(Rotation {
            every,
            postgres,
            rotator_named,
        })
    }

    fn postgres(&mut self, raw: Spanned<RawPostgres>) -> Option<PostgresRotation> {
        let at = raw.referenced;
        let raw = raw.value;
        let grace = match raw.grace.as_deref().map(humantime::parse_duration) {
            None => Duration::from_secs(3600),
            Some(Ok(grace)) => grace,
            Some(Err(_)) => {
                self.at(
                    at,
                    "rotation `postgres.grace` is not a duration; write for example `1h`",
                );
                return None;
            }
        };
        let strategy = match raw.strategy.as_deref().unwrap_or("single-user") {
            "single-user" => Strategy::SingleUser,
            "alternating-users" => {
                let Some(owner) = raw.owner else {
                    self.at(at, "strategy `alternating-users` needs `owner`: the NOLOGIN role both login roles are members of (roles default to `<owner>_a` and `<owner>_b`)");
                    return None;
                };
                let roles = match raw.roles {
                    Some(roles) => match <[String; 2]>::try_from(roles) {
                        Ok(roles) if roles[0] != roles[1] => roles,
                        _ => {
                            self.at(at, "rotation `postgres.roles` names two different login roles, for example `[mlflow_a, mlflow_b]`");
                            return None;
                        }
                    },
                    None => [format!("{owner}_a"), format!("{owner}_b")],
                };
                Strategy::AlternatingUsers {
                    owner,
                    roles,
                    grace,
                }
            }
            other => {
                self.at(at, format!("rotation strategy `{other}` is unknown; use `single-user` or `alternating-users`"));
                return None;
            }
        };
        Some(PostgresRotation {
            host: raw.host.unwrap_or_else(|| "127.0.0.1".into()),
            port: raw.port.unwrap_or(5432),
            database: raw.database,
            admin: KeyPair {
                secret: raw.admin.secret,
                username_key: raw.admin.username_key.unwrap_or_else(|| "username".into()),
                password_key: raw.admin.password_key.unwrap_or_else(|| "password".into()),
            },
            role_key: raw.role_key.unwrap_or_else(|| "username".into()),
            password_key: raw.password_key.unwrap_or_else(|| "password".into()),
            strategy,
        })
    }

    /// Each rotation names keys that exist and that it can rotate, and no
    /// secret lives where rotation keeps its records.
    fn rotations(&mut self, secrets: &[SecretSpec]) {
        for s in secrets {
            let mut problem = |message: String| {
                self.problems.push(Problem {
                    line: s.line,
                    column: 1,
                    message: format!("secret `{}`: {message}", s.name),
                })
            };
            if s.path.starts_with(ROTATION_RECORD_PREFIX) {
                problem(format!(
                    "paths under `{ROTATION_RECORD_PREFIX}` hold tresor's rotation records; choose another `path`"
                ));
            }
            let Some(rotation) = &s.rotation else {
                continue;
            };
            let Some(pg) = &rotation.postgres else {
                if !s
                    .keys
                    .iter()
                    .any(|k| matches!(k.source, Source::Generate(_)))
                {
                    problem(
                        "`rotation` needs a generated key to rotate (or a `postgres` rotator)"
                            .into(),
                    );
                }
                continue;
            };
            match s.key(&pg.password_key).map(|k| &k.source) {
                Some(Source::Generate(_)) => {}
                Some(_) => problem(format!(
                    "the rotated password key `{}` must be generated (`generate: base64:32`)",
                    pg.password_key
                )),
                None => problem(format!(
                    "rotation `postgres.password_key` names `{}`, which is not a key of this secret",
                    pg.password_key
                )),
            }
            match (s.key(&pg.role_key).map(|k| &k.source), &pg.strategy) {
                (None, _) => problem(format!(
                    "rotation `postgres.role_key` names `{}`, which is not a key of this secret",
                    pg.role_key
                )),
                (Some(Source::Literal(v)), Strategy::AlternatingUsers { roles, .. })
                    if !roles.contains(&**v) =>
                {
                    problem(format!(
                        "with `alternating-users`, `{}` starts as one of the login roles `{}` or `{}`",
                        pg.role_key, roles[0], roles[1]
                    ))
                }
                (Some(Source::Literal(_)), _) => {}
                (Some(_), _) => problem(format!(
                    "the role key `{}` must hold the role name as a `value`",
                    pg.role_key
                )),
            }
            match secrets.iter().find(|a| a.name == pg.admin.secret) {
                None => problem(format!(
                    "rotation `postgres.admin.secret` names `{}`, which the spec does not declare",
                    pg.admin.secret
                )),
                Some(a) => {
                    for key in [&pg.admin.username_key, &pg.admin.password_key] {
                        if a.key(key).is_none() {
                            problem(format!("the admin secret `{}` has no key `{key}`", a.name));
                        }
                    }
                }
            }
        }
    }

    fn key(
        &mut self,
        secret: &str,
        name: String,
        raw: Spanned<RawKey>,
        context: &[&str],
    ) -> KeySpec {
        let at = raw.referenced;
        let raw = raw.value;
        let what = format!("`{secret}/{name}`");
        if let Err(why) = check_key_name(&name) {
            self.at(at, format!("key {what}: {why}"));
        }
        let allow_weak = match raw.allow_weak {
            Some(reason) if reason.trim().is_empty() => {
                self.at(at, format!("key {what}: `allow_weak` needs a reason, for example `allow_weak: \"the vendor's appliance accepts 8 characters at most\"`"));
                None
            }
            other => other,
        };
        let given = [
            raw.value.is_some(),
            raw.generate.is_some(),
            raw.reference.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            self.at(
                at,
                format!("key {what} needs exactly one of `value`, `generate` or `ref`"),
            );
        }
        let source = if let Some(value) = raw.value {
            let value = Zeroizing::new(value);
            if strength::looks_secret(&name) && allow_weak.is_none() {
                let mut words = context.to_vec();
                words.extend([secret, name.as_str()]);
                if let Some(why) = strength::weakness(&value, &words) {
                    self.at(at, format!("key {what} holds a weak literal ({why}); generate it instead (`generate: base64:32`), or keep it with `allow_weak: <reason>`"));
                }
            }
            Source::Literal(value)
        } else if let Some(generate) = raw.generate {
            let generator = match generate.value {
                RawGenerate::Short(text) => Generator::parse(&text),
                RawGenerate::Password(p) => password(p),
            };
            match generator {
                Ok(g) => {
                    let exempt = g == Generator::Uuid && !strength::looks_secret(&name);
                    if let Some(why) = g.weakness().filter(|_| !exempt && allow_weak.is_none()) {
                        self.at(generate.referenced, format!("key {what}: {why}; ask for more, or keep it with `allow_weak: <reason>`"));
                    }
                    Source::Generate(g)
                }
                Err(e) => {
                    self.at(generate.referenced, format!("key {what}: {e}"));
                    Source::Generate(Generator::Base64(32))
                }
            }
        } else if let Some(reference) = raw.reference {
            match reference.value.split_once('/') {
                Some((s, k)) if !s.is_empty() && !k.is_empty() && !k.contains('/') => {
                    Source::Ref(KeyRef {
                        secret: s.into(),
                        key: k.into(),
                    })
                }
                _ => {
                    self.at(reference.referenced, format!("key {what}: `ref` must name another key as `secret/key`, for example `postgres-secrets/postgres-password`"));
                    Source::Generate(Generator::Base64(32))
                }
            }
        } else {
            Source::Generate(Generator::Base64(32))
        };
        KeySpec {
            name,
            source,
            allow_weak,
            line: at.line() as u32,
        }
    }

    fn paths(&mut self, secrets: &[SecretSpec]) {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for s in secrets {
            if let Some(other) = seen.insert(&s.path, &s.name) {
                self.problems.push(Problem {
                    line: s.line,
                    column: 1,
                    message: format!(
                        "secrets `{other}` and `{}` share the store path `{}`; give one a different `path`",
                        s.name, s.path
                    ),
                });
            }
        }
    }

    /// Every reference names an existing key, and following them never
    /// comes back to where it started.
    fn references(&mut self, secrets: &[SecretSpec]) {
        let find = |r: &KeyRef| {
            secrets
                .iter()
                .find(|s| s.name == r.secret)
                .and_then(|s| s.key(&r.key))
        };
        let mut cycles = BTreeSet::new();
        for secret in secrets {
            for key in &secret.keys {
                let Source::Ref(target) = &key.source else {
                    continue;
                };
                if find(target).is_none() {
                    let problem = if secrets.iter().any(|s| s.name == target.secret) {
                        format!(
                            "key `{}/{}` refers to `{target}`, but secret `{}` has no key `{}`",
                            secret.name, key.name, target.secret, target.key
                        )
                    } else {
                        format!(
                            "key `{}/{}` refers to `{target}`, but the spec declares no secret `{}`",
                            secret.name, key.name, target.secret
                        )
                    };
                    self.problems.push(Problem {
                        line: key.line,
                        column: 1,
                        message: problem,
                    });
                    continue;
                }
                let start = KeyRef {
                    secret: secret.name.clone(),
                    key: key.name.clone(),
                };
                let mut chain = vec![start.clone()];
                let mut next = target.clone();
                while let Some(k) = find(&next) {
                    if chain.contains(&next) {
                        chain.push(next.clone());
                        if next == start {
                            let mut members: Vec<KeyRef> = chain.clone();
                            members.sort();
                            members.dedup();
                            if cycles.insert(members) {
                                let path: Vec<String> =
                                    chain.iter().map(ToString::to_string).collect();
                                self.problems.push(Problem {
                                    line: key.line,
                                    column: 1,
                                    message: format!("references form a cycle: {}; one of these keys must have a `value` or `generate`", path.join(" -> ")),
                                });
                            }
                        }
                        break;
                    }
                    chain.push(next.clone());
                    match &k.source {
                        Source::Ref(r) => next = r.clone(),
                        _ => break,
                    }
                }
            }
        }
    }
}

fn password(raw: RawPassword) -> Result<Generator, crate::generate::GeneratorError> {
    let defaults = Password::default();
    let classes = match raw.classes {
        Some(names) => names
            .iter()
            .map(|n| {
                Class::parse(n).ok_or_else(|| crate::generate::GeneratorError::BadClass(n.clone()))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => defaults.classes,
    };
    let generator = Generator::Password(Password {
        length: raw.length.unwrap_or(defaults.length),
        classes,
        symbols: raw.symbols.unwrap_or(defaults.symbols),
        no_ambiguous: raw.no_ambiguous.unwrap_or(false),
    });
    generator.check()?;
    Ok(generator)
}

/// Words an attacker tries first: names and the non-secret literals of the spec.
fn user_inputs(platform: &str, secrets: &BTreeMap<String, Spanned<RawSecret>>) -> Vec<String> {
    let mut words = vec![platform.to_owned()];
    for (name, secret) in secrets {
        words.push(name.clone());
        for (key, raw) in &secret.value.keys {
            if let Some(v) = &raw.value.value
                && !strength::looks_secret(key)
            {
                words.push(v.clone());
            }
        }
    }
    words
}

fn resolve(dir: &Path, path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    dir.join(path)
}

fn parse_consumer(text: &str) -> Result<Consumer, String> {
    let (kind, name) = text.split_once('/').ok_or_else(|| {
        format!("consumer `{text}` must be KIND/NAME, for example `deployment/mlflow-server`")
    })?;
    let kind = match kind {
        "deployment" | "deployments" | "deploy" => ConsumerKind::Deployment,
        "statefulset" | "statefulsets" | "sts" => ConsumerKind::StatefulSet,
        "daemonset" | "daemonsets" | "ds" => ConsumerKind::DaemonSet,
        _ => {
            return Err(format!(
                "consumer `{text}`: tresor restarts deployments, statefulsets and daemonsets; `{kind}` is none of them"
            ));
        }
    };
    if !is_dns_subdomain(name) {
        return Err(format!(
            "consumer `{text}`: `{name}` is not a valid Kubernetes name"
        ));
    }
    Ok(Consumer {
        kind,
        name: name.into(),
    })
}

/// Kubernetes' rule for Secret keys (`IsConfigMapKey`).
pub fn check_key_name(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 253 {
        return Err("Kubernetes accepts key names of 1 to 253 characters".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "`{key}` is not a valid Kubernetes key name: use only letters, digits, `-`, `_` and `.`"
        ));
    }
    if key == "." || key == ".." || key.starts_with("..") {
        return Err(format!(
            "`{key}` is not a valid Kubernetes key name: it may not be `.` or start with `..`"
        ));
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_label_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}
