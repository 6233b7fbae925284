//! The raw document, exactly as written, before validation.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub(super) version: Spanned<u32>,
    pub(super) name: Option<Spanned<String>>,
    pub(super) store: Option<Spanned<RawStore>>,
    pub(super) kubernetes: Option<Spanned<RawKubernetes>>,
    pub(super) aws: Option<RawAwsDefaults>,
    pub(super) vault: Option<RawVaultDefaults>,
    pub(super) secrets: Spanned<BTreeMap<String, Spanned<RawSecret>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    pub(super) path: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) mount: Option<String>,
    pub(super) address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetes {
    pub(super) context: Option<String>,
    pub(super) namespace: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecret {
    pub(super) namespace: Option<Spanned<String>>,
    pub(super) path: Option<Spanned<String>>,
    pub(super) keys: BTreeMap<String, Spanned<RawKey>>,
    #[serde(default)]
    pub(super) consumers: Vec<Spanned<String>>,
    pub(super) rotation: Option<Spanned<RawRotation>>,
    pub(super) targets: Option<Spanned<RawTargets>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRotation {
    pub(super) every: Option<String>,
    pub(super) rotator: Option<String>,
    pub(super) postgres: Option<Spanned<RawPostgres>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPostgres {
    pub(super) host: Option<String>,
    pub(super) port: Option<u16>,
    pub(super) database: String,
    pub(super) admin: RawAdmin,
    pub(super) role_key: Option<String>,
    pub(super) password_key: Option<String>,
    pub(super) strategy: Option<String>,
    pub(super) owner: Option<String>,
    pub(super) roles: Option<Vec<String>>,
    pub(super) grace: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub(super) secret: String,
    pub(super) username_key: Option<String>,
    pub(super) password_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) value: Option<String>,
    pub(super) generate: Option<Spanned<RawGenerate>>,
    #[serde(rename = "ref")]
    pub(super) reference: Option<Spanned<String>>,
    pub(super) allow_weak: Option<String>,
}

/// `generate: base64:32`, or `generate: {password: {...}}`.
pub(super) enum RawGenerate {
    Short(String),
    Password(RawPassword),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPassword {
    pub(super) length: Option<usize>,
    pub(super) classes: Option<Vec<String>>,
    pub(super) symbols: Option<String>,
    pub(super) no_ambiguous: Option<bool>,
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAwsDefaults {
    pub(super) region: Option<String>,
    pub(super) kms_key: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVaultDefaults {
    pub(super) address: Option<String>,
    pub(super) mount: Option<String>,
    pub(super) auth: Option<Spanned<RawVaultAuth>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTargets {
    pub(super) kubernetes: Option<bool>,
    pub(super) aws: Option<Spanned<RawAws>>,
    pub(super) vault: Option<Spanned<RawVault>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAws {
    pub(super) name: String,
    pub(super) region: Option<String>,
    pub(super) kms_key: Option<String>,
    pub(super) json: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVault {
    pub(super) address: Option<String>,
    pub(super) mount: Option<String>,
    pub(super) path: Option<String>,
    pub(super) auth: Option<Spanned<RawVaultAuth>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawVaultAuth {
    pub(super) token_ref: String,
}

/// The spec's top-level `aws:` and `vault:` sections.
#[derive(Default)]
pub(super) struct Defaults {
    pub(super) aws: RawAwsDefaults,
    pub(super) vault: RawVaultDefaults,
}
