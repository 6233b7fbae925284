//! Validation of one key: its name, exactly one source, and the strength
//! of what it holds.

use super::model::{KeyRef, KeySpec, Source};
use super::names::check_key_name;
use super::raw::{RawGenerate, RawKey, RawPassword};
use super::validate::Validator;
use crate::generate::{Class, Generator, Password};
use crate::strength;
use serde_saphyr::Spanned;
use zeroize::Zeroizing;

impl Validator {
    pub(super) fn key(
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
