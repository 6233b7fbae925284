//! `.tresor-scan.toml`: custom rules plus path, value and rule allowlists.
use crate::error::ScanError;
use crate::rules::RuleSpec;
use globset::{Glob, GlobSet, GlobSetBuilder};
use regex::bytes::Regex;
use serde::Deserialize;
use std::path::Path;

pub const FILE_NAME: &str = ".tresor-scan.toml";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    allowlist: AllowlistFile,
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllowlistFile {
    /// Globs of paths never scanned (`tests/fixtures/**`).
    #[serde(default)]
    paths: Vec<String>,
    /// Regexes: a secret matching one is not a finding.
    #[serde(default)]
    values: Vec<String>,
    /// Ids of built-in rules to switch off.
    #[serde(default)]
    rules: Vec<String>,
}

/// The effective configuration.
#[derive(Debug)]
pub struct Config {
    pub paths: GlobSet,
    pub values: Vec<Regex>,
    pub disabled_rules: Vec<String>,
    pub rules: Vec<RuleSpec>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            paths: GlobSet::empty(),
            values: Vec::new(),
            disabled_rules: Vec::new(),
            rules: Vec::new(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ScanError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ScanError::Config {
            path: path.to_path_buf(),
            message,
        })
    }

    fn parse(text: &str) -> Result<Self, String> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut globs = GlobSetBuilder::new();
        for pattern in &file.allowlist.paths {
            let glob =
                Glob::new(pattern).map_err(|e| format!("allowlist path {pattern:?}: {e}"))?;
            globs.add(glob);
        }
        let values = file
            .allowlist
            .values
            .iter()
            .map(|v| Regex::new(v).map_err(|e| format!("allowlist value {v:?}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            paths: globs.build().map_err(|e| e.to_string())?,
            values,
            disabled_rules: file.allowlist.rules,
            rules: file.rule,
        })
    }

    pub fn path_allowed(&self, path: &str) -> bool {
        self.paths.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_parses() {
        let config = Config::parse(
            r#"
[allowlist]
paths = ["tests/fixtures/**", "*.snap"]
values = ["^AKIA0000"]
rules = ["jwt"]

[[rule]]
id = "corp-token"
description = "Internal corp token"
severity = "critical"
keywords = ["corp_"]
regex = '''corp_[a-z0-9]{32}'''
"#,
        )
        .unwrap();
        assert!(config.path_allowed("tests/fixtures/a/b.json"));
        assert!(!config.path_allowed("src/main.rs"));
        assert_eq!(config.disabled_rules, vec!["jwt"]);
        assert_eq!(config.rules[0].id, "corp-token");
    }

    #[test]
    fn malformed_config_is_an_error_not_a_panic() {
        for bad in [
            "[allowlist\n",
            "[allowlist]\npaths = [\"[\"]",
            "[allowlist]\nvalues = [\"(\"]",
            "unknown = 1",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
    }
}
