//! Rule definitions: the built-in set ships as TOML next to this file, and
//! `.tresor-scan.toml` adds rules in the very same format.
use crate::error::ScanError;
use regex::bytes::Regex;
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

const BUILTIN: &[&str] = &[
    include_str!("rules/cloud.toml"),
    include_str!("rules/vcs.toml"),
    include_str!("rules/registries.toml"),
    include_str!("rules/chat.toml"),
    include_str!("rules/payments.toml"),
    include_str!("rules/saas.toml"),
    include_str!("rules/keys.toml"),
    include_str!("rules/generic.toml"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    #[default]
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// Extra validation a regex alone cannot express.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A JWT whose header decodes to JSON naming an algorithm.
    Jwt,
    /// Base64 of `user:password` with a real password (docker config, basic auth).
    Base64Credential,
    /// Values under `data:`/`stringData:` of a Kubernetes Secret manifest.
    KubernetesSecret,
}

/// One rule as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub id: String,
    pub description: String,
    #[serde(default)]
    pub severity: Severity,
    /// Literals (ASCII case-insensitive); the rule only runs where one occurs.
    pub keywords: Vec<String>,
    /// The secret is the `secret` group, else the first group that matched, else the match.
    #[serde(default)]
    pub regex: Option<String>,
    /// Minimum Shannon entropy (bits per byte) of the secret.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// Generic rules get the strict false-positive filters.
    #[serde(default)]
    pub generic: bool,
    /// Matches may span lines: the regex runs on a larger window after the keyword.
    #[serde(default)]
    pub multiline: bool,
    #[serde(default)]
    pub check: Option<Check>,
    /// True-positive examples; `{{alnum:N}}`-style generators are expanded by the tests.
    #[serde(default)]
    pub tp: Vec<String>,
    /// True-negative examples.
    #[serde(default)]
    pub tn: Vec<String>,
}

#[derive(Deserialize)]
struct RuleFile {
    rule: Vec<RuleSpec>,
}

/// A rule ready to run; its regex is compiled on first use so a tiny input
/// (a pre-commit hook) pays only for the rules its keywords select.
#[derive(Debug)]
pub struct Rule {
    pub spec: RuleSpec,
    regex: OnceLock<Option<Regex>>,
}

impl Rule {
    pub fn new(spec: RuleSpec) -> Self {
        Self {
            spec,
            regex: OnceLock::new(),
        }
    }

    /// Compiles now and reports errors: for user rules, which must fail loudly at load.
    pub fn compiled(spec: RuleSpec) -> Result<Self, ScanError> {
        let invalid = |message: String| ScanError::Rule {
            id: spec.id.clone(),
            message,
        };
        if spec.keywords.iter().all(|k| k.is_empty()) {
            return Err(invalid("needs at least one non-empty keyword".into()));
        }
        if spec.regex.is_none() && spec.check != Some(Check::KubernetesSecret) {
            return Err(invalid("needs a regex".into()));
        }
        let regex = match &spec.regex {
            Some(source) => Some(compile(source).map_err(|e| invalid(e.to_string()))?),
            None => None,
        };
        let rule = Self::new(spec);
        // A fresh OnceLock cannot be full, so the value is always stored.
        let _ = rule.regex.set(regex);
        Ok(rule)
    }

    pub fn regex(&self) -> Option<&Regex> {
        self.regex
            .get_or_init(|| self.spec.regex.as_deref().and_then(|r| compile(r).ok()))
            .as_ref()
    }
}

fn compile(source: &str) -> Result<Regex, regex::Error> {
    // Byte-oriented ASCII classes keep the lazy DFA on the fast path.
    regex::bytes::RegexBuilder::new(source)
        .unicode(false)
        .size_limit(32 << 20)
        .build()
}

pub fn parse_rules(text: &str) -> Result<Vec<RuleSpec>, toml::de::Error> {
    toml::from_str::<RuleFile>(text).map(|f| f.rule)
}

/// The built-in rule set, in file order (specific rules before generic ones).
pub fn builtin() -> Vec<RuleSpec> {
    BUILTIN
        .iter()
        .flat_map(|text| parse_rules(text).unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests;
