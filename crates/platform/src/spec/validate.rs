//! Validation of the raw document into a [`Spec`]: every problem is
//! collected with its place, and reported all at once.

use super::model::{
    KeyRef, KubernetesSpec, SPEC_VERSION, SecretSpec, Source, Spec, StoreSpec, Targets,
};
use super::names::{is_dns_label, is_dns_subdomain, is_label_value, parse_consumer};
use super::raw::{Defaults, RawSecret, RawSpec, RawStore};
use crate::strength;
use serde_saphyr::{Location, Spanned};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

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
pub(super) struct Validator {
    pub(super) problems: Vec<Problem>,
}

impl Validator {
    pub(super) fn at(&mut self, location: Location, message: impl Into<String>) {
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
