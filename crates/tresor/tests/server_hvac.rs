//! The server's conformance suite: the real Python Vault client, hvac,
//! against a real `tresor server` (tests/hvac/*.py).

mod support;

use std::process::Command;

#[test]
fn hvac_conformance_suite() {
    let python = std::env::var("TRESOR_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "TRESOR_TEST_PYTHON is not set: run ./scripts/test, which builds a virtualenv with hvac"
        )
    });
    let audit = tempfile::tempdir().unwrap();
    let dir = format!("-dev-audit-dir={}", audit.path().display());
    let server = support::TestServer::dev_with(&[&dir]);
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hvac");
    let out = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", suite])
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .env("TRESOR_TEST_AUDIT_DIR", audit.path())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "hvac suite failed:\n{report}");
    eprintln!("{}", report.lines().last().unwrap_or_default());
}
