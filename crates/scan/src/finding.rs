use crate::rules::Severity;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One reported secret. The secret itself is never kept: only a redacted
/// prefix for people and a fingerprint for baselines.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule_id: String,
    pub description: String,
    pub severity: Severity,
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub redacted: String,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
}

/// Where a secret first entered the history.
#[derive(Debug, Clone, Serialize)]
pub struct Commit {
    pub id: String,
    pub author: String,
    pub date: String,
    #[serde(skip)]
    pub timestamp: i64,
}

/// SHA-256 of rule id and secret: stable across moves, edits and line shifts.
pub fn fingerprint(rule_id: &str, secret: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(rule_id.as_bytes());
    hasher.update([0]);
    hasher.update(secret);
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A short prefix, never more than a quarter of the secret, then `…`.
pub fn redact(secret: &[u8]) -> String {
    let shown = (secret.len() / 4).min(4);
    let prefix = String::from_utf8_lossy(&secret[..shown]);
    format!("{prefix}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_shows_at_most_four_chars() {
        assert_eq!(redact(b"ghp_abcdefghijklmnop"), "ghp_…");
        assert_eq!(redact(b"hunter22"), "hu…");
        assert_eq!(redact(b"abc"), "…");
    }

    #[test]
    fn fingerprint_depends_on_rule_and_secret_only() {
        assert_eq!(fingerprint("a", b"s"), fingerprint("a", b"s"));
        assert_ne!(fingerprint("a", b"s"), fingerprint("b", b"s"));
        assert_eq!(fingerprint("a", b"s").len(), 64);
    }
}
