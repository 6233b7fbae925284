//! The SARIF output validates against the official SARIF 2.1.0 JSON schema
//! (vendored from the `@microsoft/jest-sarif` npm package, MIT licensed).
use tresor_scan::{Commit, Finding, Severity};

const SCHEMA: &str = include_str!("sarif-2.1.0-rtm.5.json");

fn finding(rule: &str, path: &str, severity: Severity, commit: bool) -> Finding {
    Finding {
        rule_id: rule.into(),
        description: format!("{rule} description"),
        severity,
        path: path.into(),
        line: 3,
        column: 7,
        redacted: "ghp_…".into(),
        fingerprint: "ab".repeat(32),
        commit: commit.then(|| Commit {
            id: "0123456789abcdef0123456789abcdef01234567".into(),
            author: "Dev <dev@corp.invalid>".into(),
            date: "2026-01-02T03:04:05+00:00".into(),
            timestamp: 1_767_323_045,
        }),
    }
}

fn assert_valid(doc: &serde_json::Value) {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn sarif_with_findings_is_valid() {
    let findings = vec![
        finding(
            "github-classic-pat",
            "src/main.rs",
            Severity::Critical,
            false,
        ),
        finding(
            "generic-password",
            "deploy dir/é.yaml",
            Severity::Medium,
            true,
        ),
        finding("stripe-test-secret-key", "<stdin>", Severity::Low, false),
    ];
    let doc = tresor_scan::sarif(&findings);
    assert_valid(&doc);
    assert_eq!(doc["runs"][0]["results"].as_array().unwrap().len(), 3);
    assert_eq!(
        doc["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn empty_sarif_is_valid() {
    assert_valid(&tresor_scan::sarif(&[]));
}

#[test]
fn schema_rejects_a_broken_document() {
    let mut doc = tresor_scan::sarif(&[finding("jwt", "a", Severity::High, false)]);
    doc["runs"][0]["results"][0]["level"] = "catastrophic".into();
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    assert!(!jsonschema::validator_for(&schema).unwrap().is_valid(&doc));
}
