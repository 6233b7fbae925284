//! The server's conformance suite: the real Python Vault client, hvac,
//! against a real `tresor server` (tests/hvac/*.py).

use crate::util;
use std::process::Command;

#[test]
fn hvac_conformance_suite() {
    util::need!("TRESOR_TEST_PYTHON");
    let python = util::service("TRESOR_TEST_PYTHON");
    let audit = tempfile::tempdir().unwrap();
    let dir = format!("-dev-audit-dir={}", audit.path().display());
    let server = util::TestServer::dev_with(&[&dir]);
    // An uninitialized server on disk, for init, unseal and seal.
    let store = tempfile::tempdir().unwrap();
    let fresh = util::TestServer::with_config(&util::config(store.path(), ""));
    let suite = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hvac");
    let out = Command::new(python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", suite])
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .env("TRESOR_TEST_AUDIT_DIR", audit.path())
        .env("TRESOR_TEST_FRESH_ADDR", &fresh.addr)
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
