//! Rotators: what "create", "set" and "test" mean for one kind of secret,
//! and the `generate` rotator (the `postgres` one has its own module).
//! Their errors are reasons for a person, and never hold a value.

use tresor_kv::SecretMap;
use tresor_platform::{SecretSpec, Source};

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
