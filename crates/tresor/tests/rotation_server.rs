//! `tresor server` with `[rotation]`: due rotations run on a schedule
//! against the server's own store, each written to the audit log.

mod rotation_support;
mod support;

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::TestServer;

#[test]
fn the_server_rotates_what_falls_due_and_audits_it() {
    let repo = rotation_support::Repo::new(
        "version: 1
store: {path: store, key_file: unseal.key}
secrets:
  api-secrets:
    rotation: {every: 3s}
    keys:
      api-key: {generate: hex:32}
  static:
    keys:
      token: {generate: hex:32}
",
    );
    let dir = &repo.dir();
    repo.ok(&["apply", "-f", "tresor.yaml"]);
    let root = repo.ok(&[
        "--store",
        "store",
        "--key-file",
        "unseal.key",
        "operator",
        "generate-root",
        "-format=json",
    ]);
    let root: Value = serde_json::from_str(&root).unwrap();
    let config = support::config(
        dir,
        &format!(
            "\n[seal]\nkey_file = \"{}\"\n\n[rotation]\nspec = \"{}\"\ncheck_interval = \"1s\"\n",
            dir.join("unseal.key").display(),
            dir.join("tresor.yaml").display()
        ),
    );
    let server = TestServer::with_config(&config);
    let api = server.client(root["root_token"].as_str().unwrap());
    let audit = dir.join("audit.log");
    let (status, body) = api.post(
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit.display().to_string()}}),
    );
    assert_eq!(status, 204, "{body}");
    let read = |path: &str| api.get(&format!("secret/data/{path}")).1["data"].clone();
    let first = read("api-secrets");
    let static_before = read("static");

    // Due 3 seconds after apply; checked every second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = read("api-secrets");
    while now["metadata"]["version"].as_u64() < Some(3) {
        assert!(
            Instant::now() < deadline,
            "no two rotations within 30 s: {now}\n{}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(250));
        now = read("api-secrets");
    }
    assert_ne!(now["data"]["api-key"], first["data"]["api-key"]);
    // A secret without a policy is left alone.
    assert_eq!(read("static"), static_before);

    let log = std::fs::read_to_string(&audit).unwrap();
    let rotations: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"secret/rotation/api-secrets\""))
        .collect();
    assert!(rotations.len() >= 2, "{log}");
    assert!(
        rotations[0].contains("rotation-scheduler"),
        "{}",
        rotations[0]
    );
    for value in [&first["data"]["api-key"], &now["data"]["api-key"]] {
        assert!(
            !log.contains(value.as_str().unwrap()),
            "a value is in the audit log"
        );
    }
    let server_log = server.log.lock().unwrap().clone();
    assert!(server_log.contains("rotation: rotated"), "{server_log}");
    assert!(
        server_log.contains("not delivered, the spec names no cluster"),
        "{server_log}"
    );
}
