//! The rendered Secrets are byte-identical to what the installed kubectl
//! prints for the same data (`kubectl create secret generic ...
//! --dry-run=client -o yaml`), edge cases included.

use std::process::Command;
use tresor_kube::render::secret_yaml;

/// kubectl's output for a Secret whose values are given as files (so that
/// any bytes, empty and binary ones too, go through unchanged).
fn kubectl(name: &str, namespace: Option<&str>, data: &[(String, &[u8])]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("kubectl");
    cmd.env("KUBECONFIG", dir.path().join("none")).args([
        "create",
        "secret",
        "generic",
        name,
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    if let Some(ns) = namespace {
        cmd.args(["-n", ns]);
    }
    for (i, (key, value)) in data.iter().enumerate() {
        let file = dir.path().join(format!("v{i}"));
        std::fs::write(&file, value).unwrap();
        cmd.arg(format!("--from-file={key}={}", file.display()));
    }
    let out = cmd
        .output()
        .expect("kubectl is installed on these machines (/usr/bin/kubectl); the render tests compare with it");
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn same(name: &str, namespace: Option<&str>, data: &[(&str, &[u8])]) {
    let data: Vec<(String, &[u8])> = data.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let ours = secret_yaml(name, namespace, &data);
    let theirs = kubectl(name, namespace, &data);
    assert_eq!(*ours, theirs, "differs from kubectl for {name}");
}

#[test]
fn the_issue_s_three_secrets() {
    let pg = b"q9rA0mWJp2dZ1cXv3nYk8LtR5sHbG7eQ4uFzN6oP0iE=";
    same(
        "mlflow-secrets",
        None,
        &[("db-username", b"mlflow"), ("db-password", pg)],
    );
    same(
        "postgres-secrets",
        None,
        &[
            ("postgres-password", pg),
            ("postgres-user", b"mlflow"),
            ("postgres-db", b"mlflow"),
        ],
    );
    same(
        "api-secrets",
        Some("mlops"),
        &[(
            "api-key",
            b"5f0c1d2e3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6",
        )],
    );
}

#[test]
fn empty_binary_and_namespaced_values() {
    same("empty", Some("prod"), &[("a", b""), ("b", b"x")]);
    let binary: Vec<u8> = (0..=255u8).collect();
    same(
        "binary",
        None,
        &[("blob", &binary), ("nul", b"\0\0\0"), ("nl", b"line\n")],
    );
    // Values whose base64 reads as another YAML type: "true", "1234", "+123", "0x12", "null", "1e10".
    for text in [
        "true",
        "1234",
        "+123",
        "0x12",
        "null",
        "1e10",
        "NULL",
        "0b10",
        "2001-12-14",
    ] {
        use base64::Engine;
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(text) {
            same("typed", None, &[("k", &bytes)]);
        }
    }
    let long = "x".repeat(300);
    same("long", None, &[("v", long.as_bytes())]);
}

#[test]
fn key_and_name_edge_cases() {
    // Quoting: keys that would read back as numbers, booleans, null or
    // dates, and keys starting like YAML indicators.
    for key in [
        "123",
        "true",
        "no",
        "y",
        "Off",
        "0x1f",
        "1_0",
        "08",
        "1e5",
        ".5",
        "-",
        "-a",
        "---a",
        "2001-12-14",
        "2001-02-30",
        "0",
        "007",
        "0b101",
        "null",
        "1e999",
    ] {
        same("quoting", None, &[(key, b"v")]);
    }
    // Order: go-yaml's "natural" order (digit runs by value, a non-letter
    // before a letter). For keys that mix digits with other characters it is
    // not transitive, and kubectl's own output then depends on Go's map order;
    // these sets are ordered consistently.
    let keys = [
        "-a",
        "_x",
        "A",
        "a10",
        "a9",
        "a-b",
        "a.b",
        "ab",
        "a0",
        "a00",
        "a01",
        "tls.crt",
        "ca.crt",
        "Z",
        "_",
        ".a",
        "9z",
        "z9",
        "db-password",
        "db-username",
        "DB_HOST",
        "key2",
        "key10",
    ];
    let data: Vec<(&str, &[u8])> = keys.iter().map(|k| (*k, b"v".as_slice())).collect();
    same("order", None, &data);
    let many: Vec<String> = (0..40)
        .map(|i| match i % 4 {
            0 => format!("key-{i}"),
            1 => format!("KEY_{i}"),
            2 => format!("k.{i}.crt"),
            _ => format!("x{}", 40 - i),
        })
        .collect();
    let data: Vec<(&str, &[u8])> = many.iter().map(|k| (k.as_str(), b"v".as_slice())).collect();
    same("many", None, &data);
    // go-yaml writes keys longer than 128 characters as complex keys.
    let long_key = "k".repeat(200);
    same(
        "long-key",
        None,
        &[(long_key.as_str(), b"v"), ("short", b"v")],
    );
    for name in ["123", "no", "2001-12-14", "a.b.c", "1e5"] {
        same(name, Some("default"), &[("k", b"v")]);
    }
    same("ns-edge", Some("123"), &[("k", b"v")]);
}
