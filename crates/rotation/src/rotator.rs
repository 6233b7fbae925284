//! Rotators: what "create", "set" and "test" mean for one kind of secret.
//! Their errors are reasons for a person, and never hold a value.

use crate::postgres::Postgres;
use crate::{RotateError, value};
use tresor_kv::SecretMap;
use tresor_platform::{SecretSpec, SecretStore, Source, Spec};

/// One kind of rotation. Every method must be safe to call again with the
/// same arguments: a rotation resumed after a crash repeats its last step.
pub trait Rotator {
    /// Fresh values for the keys this rotation changes.
    fn create(&self, current: &SecretMap) -> Result<SecretMap, String>;
    /// Puts the pending values where they are checked.
    fn set(&self, current: &SecretMap, pending: &SecretMap) -> Result<(), String>;
    /// Proves the pending values work.
    fn test(&self, current: &SecretMap, pending: &SecretMap) -> Result<(), String>;
    /// The login that stops being current when `pending` is promoted and
    /// must stop working after a grace period, with that period.
    fn retiring(
        &self,
        _current: &SecretMap,
        _pending: &SecretMap,
    ) -> Option<(String, std::time::Duration)> {
        None
    }
    /// Stops `role` from logging in.
    fn retire(&self, _role: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The rotator the spec asks for. The postgres rotator reads its admin
/// credential, itself a declared secret, from the store.
pub fn for_secret(
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

/// Fresh values from the keys' generators (API keys and the like): the
/// store is where they are checked, so setting them is promoting them.
pub struct Generate {
    keys: Vec<(String, tresor_platform::Generator)>,
}

impl Generate {
    pub fn new(secret: &SecretSpec) -> Self {
        let keys = secret
            .keys
            .iter()
            .filter_map(|k| match &k.source {
                Source::Generate(g) => Some((k.name.clone(), g.clone())),
                _ => None,
            })
            .collect();
        Self { keys }
    }
}

impl Rotator for Generate {
    fn create(&self, _current: &SecretMap) -> Result<SecretMap, String> {
        let mut pending = SecretMap::new();
        for (key, generator) in &self.keys {
            let fresh = generator.generate();
            pending.insert(key.clone(), serde_json::Value::String(fresh.to_string()));
        }
        Ok(pending)
    }

    fn set(&self, _current: &SecretMap, _pending: &SecretMap) -> Result<(), String> {
        Ok(())
    }

    fn test(&self, current: &SecretMap, pending: &SecretMap) -> Result<(), String> {
        for (key, _) in &self.keys {
            match (pending.get(key), current.get(key)) {
                (None, _) => return Err(format!("the pending version has no key `{key}`")),
                (Some(new), Some(old)) if new == old => {
                    return Err(format!(
                        "the pending value of `{key}` equals the current one"
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}
