//! Validation of `targets:`, with the defaults from the spec's top-level
//! `aws:` and `vault:`. Nothing here holds a credential: those come from
//! the environment (or, for Vault, from a key declared in the spec).

use super::model::{AwsTarget, KeyRef, SecretSpec, Source, Targets, VaultAuth, VaultTarget};
use super::raw::{Defaults, RawAws, RawAwsDefaults, RawTargets, RawVault, RawVaultDefaults};
use super::validate::{Problem, Validator};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

impl Validator {
    /// The targets of `secret`, with the defaults filled in.
    pub(super) fn targets(
        &mut self,
        secret: &SecretSpec,
        raw: Option<Spanned<RawTargets>>,
        defaults: &Defaults,
    ) -> Targets {
        let Some(raw) = raw else {
            return Targets::default();
        };
        let raw = raw.value;
        let aws = raw.aws.map(|a| self.aws(secret, a, &defaults.aws));
        let vault = raw.vault.map(|v| self.vault(secret, v, &defaults.vault));
        Targets {
            kubernetes: raw.kubernetes.unwrap_or(true),
            aws,
            vault,
        }
    }

    fn aws(
        &mut self,
        secret: &SecretSpec,
        raw: Spanned<RawAws>,
        defaults: &RawAwsDefaults,
    ) -> AwsTarget {
        let at = raw.referenced;
        let raw = raw.value;
        let what = format!("secret `{}`: aws", secret.name);
        if raw.name.is_empty()
            || raw.name.len() > 512
            || !raw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
        {
            self.at(at, format!("{what} `name: {}` is not a valid Secrets Manager name: use 1 to 512 letters, digits and /_+=.@-", raw.name));
        }
        let region = raw.region.or_else(|| defaults.region.clone());
        if let Some(r) = &region
            && !is_region(r)
        {
            self.at(
                at,
                format!("{what} `region: {r}` is not an AWS region such as `eu-west-1`"),
            );
        }
        let json = match raw.json {
            Some(json) => {
                if json.is_empty() {
                    self.at(at, format!("{what} `json` is empty: map each JSON field to a key, or leave `json` out to use the keys' names"));
                }
                for key in json.values() {
                    if secret.key(key).is_none() {
                        self.at(
                            at,
                            format!(
                                "{what} `json` names key `{key}`, but secret `{}` has no such key",
                                secret.name
                            ),
                        );
                    }
                }
                json
            }
            None => secret
                .keys
                .iter()
                .map(|k| (k.name.clone(), k.name.clone()))
                .collect(),
        };
        AwsTarget {
            name: raw.name,
            region,
            kms_key: raw.kms_key.or_else(|| defaults.kms_key.clone()),
            json,
        }
    }

    fn vault(
        &mut self,
        secret: &SecretSpec,
        raw: Spanned<RawVault>,
        defaults: &RawVaultDefaults,
    ) -> VaultTarget {
        let at = raw.referenced;
        let raw = raw.value;
        let what = format!("secret `{}`: vault", secret.name);
        let address = raw.address.or_else(|| defaults.address.clone());
        if let Some(a) = &address
            && !(a.starts_with("http://") || a.starts_with("https://"))
        {
            self.at(
                at,
                format!("{what} `address: {a}` must start with http:// or https://"),
            );
        }
        let mount = raw
            .mount
            .or_else(|| defaults.mount.clone())
            .unwrap_or_else(|| {
                self.at(at, format!("{what} needs a `mount` (here or in the top-level `vault:`), for example `mount: secret`"));
                String::new()
            });
        let mount = mount.trim_matches('/').to_owned();
        let path = raw
            .path
            .unwrap_or_else(|| secret.name.clone())
            .trim_matches('/')
            .to_owned();
        if path.is_empty()
            || path
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            self.at(
                at,
                format!("{what} `path` must be a KV path such as `mlflow` or `team/mlflow`"),
            );
        }
        let auth = match raw.auth.or_else(|| defaults.auth.clone()) {
            None => VaultAuth::Environment,
            Some(auth) => match auth.value.token_ref.split_once('/') {
                Some((s, k)) if !s.is_empty() && !k.is_empty() && !k.contains('/') => {
                    VaultAuth::Token(KeyRef {
                        secret: s.into(),
                        key: k.into(),
                    })
                }
                _ => {
                    self.at(auth.referenced, format!("{what} `auth.token_ref` must name a key as `secret/key`, for example `vault-token/token`"));
                    VaultAuth::Environment
                }
            },
        };
        VaultTarget {
            address,
            mount,
            path,
            auth,
        }
    }

    /// Two secrets never share an AWS secret or a Vault path, and a token
    /// reference names a declared key.
    pub(super) fn target_clashes(&mut self, secrets: &[SecretSpec]) {
        let mut aws: BTreeMap<(Option<&str>, &str), &str> = BTreeMap::new();
        let mut vault: BTreeMap<(Option<&str>, &str, &str), &str> = BTreeMap::new();
        for s in secrets {
            let clash = |other: &str, place: String| Problem {
                line: s.line,
                column: 1,
                message: format!(
                    "secrets `{other}` and `{}` both deliver to {place}; give one another target",
                    s.name
                ),
            };
            let mut found = Vec::new();
            if let Some(a) = &s.targets.aws
                && let Some(other) = aws.insert((a.region.as_deref(), &a.name), &s.name)
            {
                found.push(clash(other, format!("AWS secret `{}`", a.name)));
            }
            if let Some(v) = &s.targets.vault {
                if let Some(other) =
                    vault.insert((v.address.as_deref(), &v.mount, &v.path), &s.name)
                {
                    found.push(clash(other, format!("Vault `{}/{}`", v.mount, v.path)));
                }
                if let VaultAuth::Token(r) = &v.auth {
                    let problem = match literal_at_end(secrets, r) {
                        None => Some(format!(
                            "vault `auth.token_ref: {r}` names no key declared in this spec"
                        )),
                        Some(true) => Some(format!(
                            "vault `auth.token_ref: {r}` names a key whose value is written in this file; a token must never be committed: declare it `generate` and import the real token (`tresor kv patch`), or use VAULT_TOKEN"
                        )),
                        Some(false) => None,
                    };
                    if let Some(problem) = problem {
                        found.push(Problem {
                            line: s.line,
                            column: 1,
                            message: format!("secret `{}`: {problem}", s.name),
                        });
                    }
                }
            }
            self.problems.extend(found);
        }
    }
}

/// Whether the key `r` names (through its `ref` chain) holds a literal
/// value; `None` when it names no declared key.
fn literal_at_end(secrets: &[SecretSpec], r: &KeyRef) -> Option<bool> {
    let mut at = r.clone();
    // A chain longer than the spec's keys is a cycle, reported elsewhere.
    for _ in 0..=secrets.iter().map(|s| s.keys.len()).sum::<usize>() {
        let key = secrets.iter().find(|s| s.name == at.secret)?.key(&at.key)?;
        match &key.source {
            Source::Ref(next) => at = next.clone(),
            Source::Literal(_) => return Some(true),
            Source::Generate(_) => return Some(false),
        }
    }
    Some(false)
}

fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn problems(text: &str) -> Vec<String> {
        match crate::parse(text, Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(p) => p.into_iter().map(|p| p.message).collect(),
        }
    }

    const HEAD: &str = "version: 1\naws: {region: eu-west-1}\nvault: {mount: kv, address: 'https://vault:8200'}\nsecrets:\n";

    #[test]
    fn defaults_fill_in_and_shapes_default_to_the_keys() {
        let text = format!(
            "{HEAD}  db:\n    keys: {{user: {{value: app}}, password: {{generate: base64:32}}}}\n    targets:\n      kubernetes: false\n      aws: {{name: team/db}}\n      vault: {{}}\n"
        );
        let spec = crate::parse(&text, Path::new(".")).unwrap();
        let t = &spec.secrets[0].targets;
        assert!(!t.kubernetes);
        let aws = t.aws.as_ref().unwrap();
        assert_eq!(aws.region.as_deref(), Some("eu-west-1"));
        assert_eq!(
            aws.json.iter().collect::<Vec<_>>(),
            [
                (&"password".to_owned(), &"password".to_owned()),
                (&"user".to_owned(), &"user".to_owned())
            ]
        );
        let vault = t.vault.as_ref().unwrap();
        assert_eq!((vault.mount.as_str(), vault.path.as_str()), ("kv", "db"));
        assert_eq!(vault.address.as_deref(), Some("https://vault:8200"));
        assert_eq!(vault.auth, VaultAuth::Environment);
    }

    #[test]
    fn bad_targets_are_reported() {
        let text = format!(
            "{HEAD}  a:\n    keys: {{k: {{generate: base64:32}}}}\n    targets:\n      aws: {{name: 'bad name!', region: mars, json: {{x: nope}}}}\n      vault: {{path: '../x', auth: {{token_ref: nope/nope}}}}\n  b:\n    keys: {{k: {{generate: base64:32}}}}\n    targets: {{vault: {{path: a}}}}\n"
        );
        let found = problems(&text);
        let has = |s: &str| found.iter().any(|p| p.contains(s));
        assert!(has("not a valid Secrets Manager name"), "{found:?}");
        assert!(has("`region: mars` is not an AWS region"), "{found:?}");
        assert!(has("`json` names key `nope`"), "{found:?}");
        assert!(has("`path` must be a KV path"), "{found:?}");
        assert!(has("names no key declared in this spec"), "{found:?}");
        let clash = format!(
            "{HEAD}  a:\n    keys: {{k: {{generate: base64:32}}}}\n    targets: {{aws: {{name: x}}, vault: {{path: p}}}}\n  b:\n    keys: {{k: {{generate: base64:32}}}}\n    targets: {{aws: {{name: x}}, vault: {{path: p}}}}\n"
        );
        let found = problems(&clash);
        assert!(
            found
                .iter()
                .any(|p| p.contains("both deliver to AWS secret `x`"))
                && found
                    .iter()
                    .any(|p| p.contains("both deliver to Vault `kv/p`")),
            "{found:?}"
        );
    }

    #[test]
    fn a_vault_token_is_never_a_literal_of_the_spec() {
        let spec = |token: &str| {
            format!(
                "{HEAD}  vault-token:\n    targets: {{kubernetes: false}}\n    keys: {{token: {token}, alias: {{ref: vault-token/token}}}}\n  db:\n    keys: {{k: {{generate: base64:32}}}}\n    targets: {{vault: {{auth: {{token_ref: vault-token/alias}}}}}}\n"
            )
        };
        let literal = problems(&spec(
            "{value: hvs.CAESIJ1zcXwKq2wPkQ5d8c3xT, allow_weak: test}",
        ));
        assert!(
            literal
                .iter()
                .any(|p| p.contains("`auth.token_ref: vault-token/alias` names a key whose value is written in this file")),
            "{literal:?}"
        );
        assert_eq!(
            problems(&spec("{generate: base64:32}")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_vault_target_needs_a_mount() {
        let text = "version: 1\nsecrets:\n  a:\n    keys: {k: {generate: base64:32}}\n    targets: {vault: {path: a}}\n";
        assert!(
            problems(text).iter().any(|p| p.contains("needs a `mount`")),
            "{:?}",
            problems(text)
        );
    }
}
