//! Parameter constraints (`required_parameters`, `allowed_parameters`, `denied_parameters`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use crate::acl::DenyReason;

/// Constraints on the parameters of write requests, keyed by lowercased parameter name.
///
/// A value list that is empty means "any value" (allowed) or "every value" (denied).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParameterRules {
    required: BTreeSet<String>,
    allowed: BTreeMap<String, Vec<Value>>,
    denied: BTreeMap<String, Vec<Value>>,
}

impl ParameterRules {
    pub(crate) fn new(
        required: BTreeSet<String>,
        allowed: BTreeMap<String, Vec<Value>>,
        denied: BTreeMap<String, Vec<Value>>,
    ) -> ParameterRules {
        ParameterRules {
            required,
            allowed,
            denied,
        }
    }

    /// Combines the constraints of one pattern written in several policies.
    pub(crate) fn merge(&mut self, other: &ParameterRules) {
        self.required.extend(other.required.iter().cloned());
        merge_value_lists(&mut self.allowed, &other.allowed);
        merge_value_lists(&mut self.denied, &other.denied);
    }

    /// Checks request parameters against the constraints.
    pub fn check(&self, params: &Map<String, Value>) -> Result<(), DenyReason> {
        let present: BTreeSet<String> = params.keys().map(|k| k.to_lowercase()).collect();
        if !self.required.is_subset(&present) {
            return Err(DenyReason::RequiredParameterMissing);
        }
        params
            .iter()
            .try_for_each(|(key, value)| self.check_one(&key.to_lowercase(), value))
    }

    fn check_one(&self, key: &str, value: &Value) -> Result<(), DenyReason> {
        if self.denied.contains_key("*") {
            return Err(DenyReason::ParameterDenied);
        }
        if let Some(list) = self.denied.get(key)
            && (list.is_empty() || any_element_listed(value, list))
        {
            return Err(DenyReason::ParameterDenied);
        }
        if self.allowed.is_empty() {
            return Ok(());
        }
        match self.allowed.get(key) {
            Some(list) if list.is_empty() || every_element_listed(value, list) => Ok(()),
            Some(_) => Err(DenyReason::ParameterNotAllowed),
            None if self.allowed.contains_key("*") => Ok(()),
            None => Err(DenyReason::ParameterNotAllowed),
        }
    }
}

fn merge_value_lists(into: &mut BTreeMap<String, Vec<Value>>, from: &BTreeMap<String, Vec<Value>>) {
    for (key, values) in from {
        match into.get_mut(key) {
            // An empty list already means "any value": adding values would narrow it.
            Some(existing) if existing.is_empty() => {}
            Some(_) if values.is_empty() => {
                into.insert(key.clone(), Vec::new());
            }
            Some(existing) => existing.extend(values.iter().cloned()),
            None => {
                into.insert(key.clone(), values.clone());
            }
        }
    }
}

/// A denied list hits an array value if any element is listed.
fn any_element_listed(value: &Value, list: &[Value]) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| listed(item, list)),
        scalar => listed(scalar, list),
    }
}

/// An allowed list admits an array value only if every element is listed.
fn every_element_listed(value: &Value, list: &[Value]) -> bool {
    match value {
        Value::Array(items) => items.iter().all(|item| listed(item, list)),
        scalar => listed(scalar, list),
    }
}

fn listed(value: &Value, list: &[Value]) -> bool {
    list.iter().any(|entry| match (entry, value) {
        (Value::String(pattern), Value::String(actual)) => glob_match(pattern, actual),
        _ => entry == value,
    })
}

/// Values support a leading and/or trailing `*`, as in Vault.
fn glob_match(pattern: &str, actual: &str) -> bool {
    let leading = pattern.strip_prefix('*');
    let trailing = pattern.strip_suffix('*');
    match (leading, trailing) {
        (Some(_), Some(_)) if pattern.len() >= 2 => actual.contains(&pattern[1..pattern.len() - 1]),
        (Some(_), Some(_)) => true,
        (Some(suffix), None) => actual.ends_with(suffix),
        (None, Some(prefix)) => actual.starts_with(prefix),
        (None, None) => pattern == actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(required: &[&str], allowed: Value, denied: Value) -> ParameterRules {
        let to_map = |v: Value| -> BTreeMap<String, Vec<Value>> {
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_array().unwrap().clone()))
                .collect()
        };
        ParameterRules::new(
            required.iter().map(|s| s.to_string()).collect(),
            to_map(allowed),
            to_map(denied),
        )
    }

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn required_parameters_must_be_present() {
        let r = rules(&["name", "id"], json!({}), json!({}));
        assert_eq!(r.check(&params(json!({"name": "a", "ID": 1}))), Ok(()));
        assert_eq!(
            r.check(&params(json!({"name": "a"}))),
            Err(DenyReason::RequiredParameterMissing)
        );
    }

    #[test]
    fn allowed_parameters_restrict_keys_and_values() {
        let r = rules(&[], json!({"bar": ["zip", "zap"], "pw": []}), json!({}));
        assert_eq!(r.check(&params(json!({"bar": "zip", "pw": "x"}))), Ok(()));
        assert_eq!(
            r.check(&params(json!({"bar": "nope"}))),
            Err(DenyReason::ParameterNotAllowed)
        );
        assert_eq!(
            r.check(&params(json!({"other": 1}))),
            Err(DenyReason::ParameterNotAllowed)
        );
        let open = rules(&[], json!({"bar": ["foo-*"], "*": []}), json!({}));
        assert_eq!(open.check(&params(json!({"bar": "foo-1", "x": 2}))), Ok(()));
        assert_eq!(
            open.check(&params(json!({"bar": ["foo-1", "baz"]}))),
            Err(DenyReason::ParameterNotAllowed)
        );
    }

    #[test]
    fn denied_parameters_take_precedence() {
        let r = rules(
            &[],
            json!({"*": []}),
            json!({"policies": [], "no_store": [false, "false"], "role": ["*admin*"]}),
        );
        assert_eq!(r.check(&params(json!({"a": 1}))), Ok(()));
        for bad in [
            json!({"policies": "x"}),
            json!({"no_store": false}),
            json!({"role": ["dev", "superadmin1"]}),
        ] {
            assert_eq!(r.check(&params(bad)), Err(DenyReason::ParameterDenied));
        }
        let all = rules(&[], json!({}), json!({"*": []}));
        assert_eq!(all.check(&Map::new()), Ok(()));
        assert_eq!(
            all.check(&params(json!({"a": 1}))),
            Err(DenyReason::ParameterDenied)
        );
    }

    #[test]
    fn merge_keeps_the_wider_list() {
        let mut a = rules(&["x"], json!({"k": ["1"]}), json!({}));
        a.merge(&rules(&["y"], json!({"k": []}), json!({"d": ["v"]})));
        assert_eq!(a, rules(&["x", "y"], json!({"k": []}), json!({"d": ["v"]})));
    }
}
