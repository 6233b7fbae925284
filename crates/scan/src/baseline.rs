//! A baseline records known findings by fingerprint, so moving code or
//! editing nearby lines never makes them reappear.
use crate::error::ScanError;
use crate::finding::Finding;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Baseline {
    version: u32,
    /// Fingerprint → where it was seen when recorded (for people reading the file).
    findings: BTreeMap<String, BaselineEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct BaselineEntry {
    rule_id: String,
    path: String,
}

impl Baseline {
    pub fn from_findings(findings: &[Finding]) -> Self {
        let findings = findings
            .iter()
            .map(|f| {
                let entry = BaselineEntry {
                    rule_id: f.rule_id.clone(),
                    path: f.path.clone(),
                };
                (f.fingerprint.clone(), entry)
            })
            .collect();
        Self {
            version: 1,
            findings,
        }
    }

    pub fn load(path: &Path) -> Result<Self, ScanError> {
        let text = std::fs::read(path).map_err(|source| ScanError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| ScanError::Baseline {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<(), ScanError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| ScanError::Baseline {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| ScanError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Drops known findings; returns how many were dropped.
    pub fn suppress(&self, findings: &mut Vec<Finding>) -> usize {
        let before = findings.len();
        findings.retain(|f| !self.findings.contains_key(&f.fingerprint));
        before - findings.len()
    }
}
