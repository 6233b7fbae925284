//! Turns HCL or JSON policy text into path rules, keeping source positions for errors.
//!
//! JSON policies go through `serde_json` first (precise syntax errors) and are then walked as
//! an HCL expression, since HCL's object syntax accepts JSON: one walker, spans for both.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use hcl::edit::expr::{Expression, ObjectKey};
use hcl::edit::structure::{Body, Structure};
use hcl::edit::{Span, parser};
use serde_json::Value;

use crate::capability::{Capability, CapabilitySet};
use crate::error::{Location, PolicyError};
use crate::params::ParameterRules;
use crate::pattern::PathPattern;

/// A string from the policy text with its byte range.
type SpannedStr<'a> = (&'a str, Option<Range<usize>>);

const RULE_KEYS: &str = "capabilities, required_parameters, allowed_parameters, denied_parameters, min_wrapping_ttl, max_wrapping_ttl";

/// One `path "<pattern>" { ... }` rule of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct PathRule {
    pattern: PathPattern,
    capabilities: CapabilitySet,
    parameters: ParameterRules,
    wrapping: WrappingBounds,
    at: Location,
}

/// `min_wrapping_ttl` and `max_wrapping_ttl` of a rule: a request on the
/// path must (or may only) be answered wrapped, with a TTL in the bounds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WrappingBounds {
    pub min: Option<std::time::Duration>,
    pub max: Option<std::time::Duration>,
}

impl WrappingBounds {
    /// The bounds of one pattern written in several policies: the most
    /// permissive of each, as Vault merges them.
    pub(crate) fn merge(&mut self, other: WrappingBounds) {
        self.min = match (self.min, other.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, other.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// Whether a request wrapped with `ttl` (or not wrapped) keeps the bounds.
    pub fn admits(self, ttl: Option<std::time::Duration>) -> bool {
        let above_min = match (self.min, ttl) {
            (Some(min), Some(ttl)) => ttl >= min,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let below_max = match (self.max, ttl) {
            (Some(max), Some(ttl)) => ttl <= max,
            _ => true,
        };
        above_min && below_max
    }
}

impl PathRule {
    pub fn pattern(&self) -> &PathPattern {
        &self.pattern
    }

    pub fn capabilities(&self) -> CapabilitySet {
        self.capabilities
    }

    pub fn parameters(&self) -> &ParameterRules {
        &self.parameters
    }

    pub fn wrapping(&self) -> WrappingBounds {
        self.wrapping
    }

    /// Where the rule starts in the policy text.
    pub fn location(&self) -> Location {
        self.at
    }
}

/// Parses policy text, HCL or JSON (detected by a leading `{`).
pub(crate) fn parse_rules(text: &str) -> Result<Vec<PathRule>, PolicyError> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Err(PolicyError::Empty);
    }
    let walker = Walker { text };
    let rules = if trimmed.starts_with('{') {
        walker.json(text)?
    } else {
        walker.hcl(text)?
    };
    if rules.is_empty() {
        return Err(PolicyError::NoRules);
    }
    Ok(rules)
}

/// A `key = value` pair of a rule, from an HCL attribute or a JSON object member.
struct Field<'a> {
    key: &'a str,
    at: Option<Range<usize>>,
    value: &'a Expression,
}

struct Walker<'t> {
    text: &'t str,
}

impl Walker<'_> {
    fn at(&self, span: Option<Range<usize>>) -> Location {
        Location::from_offset(self.text, span.map_or(0, |s| s.start))
    }

    fn hcl(&self, text: &str) -> Result<Vec<PathRule>, PolicyError> {
        let body = parser::parse_body(text).map_err(|e| PolicyError::HclSyntax {
            at: Location {
                line: e.location().line(),
                column: e.location().column(),
            },
            message: e.message().to_owned(),
        })?;
        let mut rules = Vec::new();
        for structure in body.iter() {
            match structure {
                Structure::Block(block) if block.ident.value().as_str() == "path" => {
                    let at = block.span();
                    let [label] = block.labels.as_slice() else {
                        return Err(self.wrong_type(
                            "path",
                            at,
                            "followed by exactly one quoted pattern",
                        ));
                    };
                    let fields = self.body_fields(&block.body)?;
                    rules.push(self.rule(label.as_str(), at, &fields)?);
                }
                // Vault accepts (and ignores) a top-level name; the API path names the policy.
                Structure::Attribute(attr) if attr.key.value().as_str() == "name" => {}
                other => {
                    return Err(self.unexpected(
                        structure_key(other),
                        other.span(),
                        "a policy",
                        "path blocks",
                    ));
                }
            }
        }
        Ok(rules)
    }

    fn body_fields<'a>(&self, body: &'a Body) -> Result<Vec<Field<'a>>, PolicyError> {
        body.iter()
            .map(|structure| match structure {
                Structure::Attribute(attr) => Ok(Field {
                    key: attr.key.value().as_str(),
                    at: attr.span(),
                    value: &attr.value,
                }),
                Structure::Block(block) => Err(self.wrong_type(
                    block.ident.value().as_str(),
                    block.span(),
                    "written as an attribute: `key = value`",
                )),
            })
            .collect()
    }

    fn json(&self, text: &str) -> Result<Vec<PathRule>, PolicyError> {
        serde_json::from_str::<Value>(text).map_err(|e| PolicyError::JsonSyntax {
            at: Location {
                line: e.line(),
                column: e.column(),
            },
            message: e.to_string(),
        })?;
        let root = parser::parse_expr(text).map_err(|e| PolicyError::JsonSyntax {
            at: Location {
                line: e.location().line(),
                column: e.location().column(),
            },
            message: format!("unsupported construct: {}", e.message()),
        })?;
        let mut rules = Vec::new();
        for field in self.object_fields("policy", &root)? {
            match field.key {
                "path" => self.json_paths(&field, &mut rules)?,
                "name" => {}
                other => return Err(self.unexpected(other, field.at, "a policy", "\"path\"")),
            }
        }
        Ok(rules)
    }

    /// `"path"` holds an object of patterns, or (HCL 1 style) an array of such objects.
    fn json_paths(&self, field: &Field<'_>, rules: &mut Vec<PathRule>) -> Result<(), PolicyError> {
        let objects: Vec<&Expression> = match field.value {
            Expression::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for object in objects {
            for path in self.object_fields("path", object)? {
                let fields = self.object_fields(path.key, path.value)?;
                rules.push(self.rule(path.key, path.at, &fields)?);
            }
        }
        Ok(())
    }

    fn object_fields<'a>(
        &self,
        key: &str,
        expr: &'a Expression,
    ) -> Result<Vec<Field<'a>>, PolicyError> {
        let Expression::Object(object) = expr else {
            return Err(self.wrong_type(key, expr.span(), "an object"));
        };
        object
            .iter()
            .map(|(k, v)| {
                Ok(Field {
                    key: self.object_key(k)?,
                    at: k.span(),
                    value: v.expr(),
                })
            })
            .collect()
    }

    fn object_key<'a>(&self, key: &'a ObjectKey) -> Result<&'a str, PolicyError> {
        match key {
            ObjectKey::Ident(ident) => Ok(ident.value().as_str()),
            ObjectKey::Expression(Expression::String(s)) => Ok(s.value().as_str()),
            ObjectKey::Expression(other) => {
                Err(self.wrong_type("key", other.span(), "a plain string"))
            }
        }
    }

    fn rule(
        &self,
        raw_pattern: &str,
        span: Option<Range<usize>>,
        fields: &[Field<'_>],
    ) -> Result<PathRule, PolicyError> {
        let at = self.at(span);
        let pattern =
            PathPattern::parse(raw_pattern).map_err(|reason| PolicyError::InvalidPattern {
                at,
                pattern: raw_pattern.to_owned(),
                reason,
            })?;
        let mut capabilities = CapabilitySet::EMPTY;
        let mut required = BTreeSet::new();
        let mut allowed = BTreeMap::new();
        let mut denied = BTreeMap::new();
        let mut wrapping = WrappingBounds::default();
        for field in fields {
            match field.key {
                "capabilities" => capabilities = self.capabilities(field)?,
                "required_parameters" => {
                    required = self
                        .strings(field)?
                        .into_iter()
                        .map(|(s, _)| s.to_lowercase())
                        .collect();
                }
                "allowed_parameters" => allowed = self.value_lists(field)?,
                "denied_parameters" => denied = self.value_lists(field)?,
                "min_wrapping_ttl" => wrapping.min = Some(self.duration(field)?),
                "max_wrapping_ttl" => wrapping.max = Some(self.duration(field)?),
                "policy" => {
                    return Err(self.unsupported(
                        field,
                        "the legacy `policy = \"...\"` form; write `capabilities = [...]`",
                    ));
                }
                other => {
                    return Err(self.unexpected(
                        other,
                        field.at.clone(),
                        "a path block",
                        RULE_KEYS,
                    ));
                }
            }
        }
        if capabilities.is_empty() {
            return Err(PolicyError::NoCapabilities {
                at,
                pattern: raw_pattern.to_owned(),
            });
        }
        if let (Some(min), Some(max)) = (wrapping.min, wrapping.max)
            && min > max
        {
            return Err(PolicyError::WrongType {
                at,
                key: "min_wrapping_ttl".into(),
                expected: "a duration no longer than max_wrapping_ttl",
            });
        }
        Ok(PathRule {
            pattern,
            capabilities,
            parameters: ParameterRules::new(required, allowed, denied),
            wrapping,
            at,
        })
    }

    /// A duration as Vault writes them in policies: `"90s"`, `"1h"`, or a
    /// number of seconds.
    fn duration(&self, field: &Field<'_>) -> Result<std::time::Duration, PolicyError> {
        let text = match field.value {
            Expression::String(s) => s.value().as_str().to_owned(),
            Expression::Number(n) => n.value().to_string(),
            other => {
                return Err(self.wrong_type(field.key, other.span(), "a duration, like \"1h\""));
            }
        };
        tresor_request::parse_duration(&text)
            .map_err(|_| self.wrong_type(field.key, field.value.span(), "a duration, like \"1h\""))
    }

    fn capabilities(&self, field: &Field<'_>) -> Result<CapabilitySet, PolicyError> {
        self.strings(field)?
            .into_iter()
            .map(|(name, span)| {
                Capability::from_name(name).ok_or_else(|| PolicyError::UnknownCapability {
                    at: self.at(span),
                    name: name.to_owned(),
                })
            })
            .collect()
    }

    fn strings<'a>(&self, field: &Field<'a>) -> Result<Vec<SpannedStr<'a>>, PolicyError> {
        let Expression::Array(items) = field.value else {
            return Err(self.wrong_type(
                field.key,
                field.value.span(),
                "a list of strings, like [\"read\"]",
            ));
        };
        items
            .iter()
            .map(|item| match item {
                Expression::String(s) => Ok((s.value().as_str(), s.span())),
                other => Err(self.wrong_type(
                    field.key,
                    other.span(),
                    "a list of strings, like [\"read\"]",
                )),
            })
            .collect()
    }

    fn value_lists(&self, field: &Field<'_>) -> Result<BTreeMap<String, Vec<Value>>, PolicyError> {
        let mut lists = BTreeMap::new();
        for entry in self.object_fields(field.key, field.value)? {
            let Expression::Array(items) = entry.value else {
                return Err(self.wrong_type(
                    entry.key,
                    entry.value.span(),
                    "a list of values ([] means any value)",
                ));
            };
            let values = items
                .iter()
                .map(|item| self.scalar(entry.key, item))
                .collect::<Result<Vec<_>, _>>()?;
            if entry.key == "*" && !values.is_empty() {
                return Err(self.wrong_type("*", entry.at, "an empty list: `\"*\" = []`"));
            }
            lists.insert(entry.key.to_lowercase(), values);
        }
        Ok(lists)
    }

    fn scalar(&self, key: &str, expr: &Expression) -> Result<Value, PolicyError> {
        match expr {
            Expression::Null(_) => Ok(Value::Null),
            Expression::Bool(b) => Ok(Value::Bool(*b.value())),
            Expression::String(s) => Ok(Value::String(s.value().clone())),
            Expression::Number(n) => serde_json::from_str(&n.value().to_string()).map_err(|_| {
                self.wrong_type(key, expr.span(), "a list of strings, numbers or booleans")
            }),
            other => {
                Err(self.wrong_type(key, other.span(), "a list of strings, numbers or booleans"))
            }
        }
    }

    fn wrong_type(
        &self,
        key: &str,
        span: Option<Range<usize>>,
        expected: &'static str,
    ) -> PolicyError {
        PolicyError::WrongType {
            at: self.at(span),
            key: key.to_owned(),
            expected,
        }
    }

    fn unexpected(
        &self,
        key: &str,
        span: Option<Range<usize>>,
        context: &'static str,
        allowed: &'static str,
    ) -> PolicyError {
        PolicyError::UnexpectedKey {
            at: self.at(span),
            key: key.to_owned(),
            context,
            allowed,
        }
    }

    fn unsupported(&self, field: &Field<'_>, hint: &'static str) -> PolicyError {
        PolicyError::Unsupported {
            at: self.at(field.at.clone()),
            key: field.key.to_owned(),
            hint,
        }
    }
}

fn structure_key(structure: &Structure) -> &str {
    match structure {
        Structure::Attribute(attr) => attr.key.value().as_str(),
        Structure::Block(block) => block.ident.value().as_str(),
    }
}
