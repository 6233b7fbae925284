//! `tresor server` with `[rotation]`: due rotations run on a schedule
//! against the server's own store, each written to the audit log.

use crate::util;
use crate::util::TestServer;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Applies the repository's spec to its embedded store (`store`, key file
/// `unseal.key`), then serves that store with the rotation scheduler
/// checking every second. The server and a root token.
fn applied_then_served(repo: &util::Repo) -> (TestServer, String) {
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
    let config = util::config(
        dir,
        &format!(
            "\n[seal]\nkey_file = \"{}\"\n\n[rotation]\nspec = \"{}\"\ncheck_interval = \"1s\"\n\n[audit]\napi_device_dir = \"{}\"\n",
            dir.join("unseal.key").display(),
            dir.join("tresor.yaml").display(),
            dir.display()
        ),
    );
    let server = TestServer::with_config(&config);
    (server, root["root_token"].as_str().unwrap().to_owned())
}

#[test]
fn the_server_rotates_what_falls_due_and_audits_it() {
    let repo = util::Repo::new(
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
    let (server, root) = applied_then_served(&repo);
    let api = server.client(&root);
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

/// The scheduler pushes what it rotates to the secret's Vault target (a
/// `tresor server -dev` here, its token a declared key), as `tresor
/// apply` would: the Vault ends holding the store's current values.
#[test]
fn the_scheduler_pushes_rotations_to_a_vault_target() {
    let vault = TestServer::dev();
    let admin = vault.client(&vault.root_token);
    let (status, body) = admin.post(
        "sys/mounts/apps",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    assert!(status < 300, "{body}");
    let repo = util::Repo::new(&format!(
        "version: 1
store: {{path: store, key_file: unseal.key}}
vault: {{mount: apps, address: \"{addr}\", auth: {{token_ref: vault-token/token}}}}
secrets:
  vault-token:
    keys:
      token: {{generate: base64:32}}
  api-secrets:
    rotation: {{every: 2s}}
    keys:
      api-key: {{generate: hex:32}}
    targets:
      vault: {{path: api}}
",
        addr = vault.addr,
    ));
    // The token is imported, never written in the spec: apply adopts it.
    let store = ["--store", "store", "--key-file", "unseal.key"];
    repo.ok(&[&store[..2], &["operator", "init", "-key-file=unseal.key"]].concat());
    let token = format!("token={}", vault.root_token);
    repo.ok(&[&store[..], &["kv", "put", "secret/vault-token", &token]].concat());
    let (server, root) = applied_then_served(&repo);
    let api = server.client(&root);
    let stored = || api.get("secret/data/api-secrets").1["data"].clone();
    let pushed = || admin.get("apps/data/api").1["data"].clone();
    assert_eq!(pushed()["data"], stored()["data"], "apply pushed it");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (now, there) = (stored(), pushed());
        if now["metadata"]["version"].as_u64() >= Some(3) && there["data"] == now["data"] {
            assert!(there["metadata"]["version"].as_u64() >= Some(3), "{there}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Vault does not follow the rotations: store {now}, Vault {there}\n{}",
            server.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = server.log.lock().unwrap().clone();
    assert!(log.contains("vault: api-secrets -> apps/api at"), "{log}");
    assert!(log.contains("updated"), "{log}");
}

/// Two servers on one PostgreSQL database, both running the scheduler on
/// the same spec: each due rotation happens once (the lease is a
/// check-and-set record in the shared store), never twice.
#[test]
fn two_servers_on_one_database_rotate_each_due_secret_once() {
    util::need!("TRESOR_PG_BIN");
    let cluster = tresor_testpg::Cluster::start().unwrap();
    cluster.create_database("tresor").unwrap();
    let repo = util::Repo::new("version: 1\nsecrets: {}\n");
    let dir = repo.dir();
    let url_file = dir.join("pg-url");
    std::fs::write(&url_file, cluster.url("tresor")).unwrap();
    let servers: Vec<TestServer> = (0..2)
        .map(|n| {
            let path = dir.join(format!("server{n}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\n[storage]\nkind = \"postgres\"\nurl_file = \"{}\"\n\n[rotation]\nspec = \"{}\"\ncheck_interval = \"1s\"\n",
                    url_file.display(),
                    dir.join("tresor.yaml").display()
                ),
            )
            .unwrap();
            TestServer::with_config(&path)
        })
        .collect();
    let anon = util::Api::new(&servers[0].addr, "");
    let (_, init) = anon.call(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    let key = init["keys_base64"][0].as_str().unwrap();
    for server in &servers {
        let (status, _) =
            util::Api::new(&server.addr, "").call("PUT", "sys/unseal", Some(&json!({"key": key})));
        assert_eq!(status, 200);
    }
    let root = init["root_token"].as_str().unwrap();
    std::fs::write(
        dir.join("tresor.yaml"),
        format!(
            "version: 1
store: {{address: \"{}\"}}
secrets:
  api-secrets:
    rotation: {{every: 2s}}
    keys:
      api-key: {{generate: hex:32}}
",
            servers[0].addr
        ),
    )
    .unwrap();
    let apply = repo
        .command(&["apply", "-f", "tresor.yaml"])
        .env("TRESOR_TOKEN", root)
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(9));
    let api = servers[1].client(root);
    let meta = api.get("secret/metadata/api-secrets").1;
    let rotations = meta["data"]["current_version"].as_u64().unwrap() - 1;
    let elapsed = started.elapsed().as_secs();
    let per_server: Vec<(usize, usize)> = servers
        .iter()
        .map(|s| {
            let log = s.log.lock().unwrap();
            (
                log.matches("rotation: rotated").count(),
                log.matches("rotation: skipped").count(),
            )
        })
        .collect();
    let logged: usize = per_server.iter().map(|(r, _)| r).sum();
    eprintln!(
        "{rotations} rotations in {elapsed} s by two schedulers (every 2s); (rotated, skipped as busy) per server: {per_server:?}"
    );
    assert!(rotations >= 2, "{meta}");
    // Once per period at most (plus the one under way): never twice each.
    assert!(
        rotations <= elapsed / 2 + 1,
        "{rotations} rotations in {elapsed} s"
    );
    assert_eq!(logged as u64, rotations);
    let record = api.get("secret/data/_tresor/rotation/api-secrets").1;
    let state: Value = record["data"]["data"]["state"].clone();
    assert_eq!(
        state["current"].as_u64(),
        meta["data"]["current_version"].as_u64(),
        "{state}"
    );
}
