//! `tresor operator migrate`: an embedded store copied into PostgreSQL and
//! back, byte for byte, verified by count and checksum; the copy serves.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use support::{Api, TestServer};
use tresor_testpg::Cluster;

fn tresor(store: &Path, key: &Path, url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tresor"))
        .arg("--store")
        .arg(store)
        .arg("--key-file")
        .arg(key)
        .args(args)
        .env("TRESOR_POSTGRES_URL", url)
        .output()
        .unwrap()
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn embedded_to_postgres_and_back_is_byte_for_byte() {
    let cluster = Cluster::start().expect("start PostgreSQL (scripts/setup/postgres.sh)");
    cluster.create_database("tresor").unwrap();
    let url = cluster.url("tresor");
    let tmp = tempfile::tempdir().unwrap();
    let (store, key) = (tmp.path().join("store"), tmp.path().join("unseal.key"));
    ok(tresor(&store, &key, &url, &["operator", "init"]));
    for n in 0..20 {
        ok(tresor(
            &store,
            &key,
            &url,
            &[
                "kv",
                "put",
                &format!("secret/app{n}"),
                &format!("password=pw-{n}"),
            ],
        ));
    }
    let root: Value = serde_json::from_str(&ok(tresor(
        &store,
        &key,
        &url,
        &["operator", "generate-root", "-format=json"],
    )))
    .unwrap();

    let there: Value = serde_json::from_str(&ok(tresor(
        &store,
        &key,
        &url,
        &[
            "operator",
            "migrate",
            "--from",
            "embedded",
            "--to",
            "postgres",
            "-format=json",
        ],
    )))
    .unwrap();
    assert_eq!(there["from"], "embedded");
    assert_eq!(there["to"], "postgres");
    let keys = there["keys"].as_u64().unwrap();
    assert_eq!(
        cluster
            .psql("tresor", "SELECT count(*) FROM tresor_kv")
            .unwrap()
            .trim(),
        keys.to_string()
    );

    let again = tresor(
        &store,
        &key,
        &url,
        &[
            "operator", "migrate", "--from", "embedded", "--to", "postgres",
        ],
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(
        cluster
            .psql("tresor", "SELECT count(*) FROM tresor_kv")
            .unwrap()
            .trim(),
        keys.to_string(),
        "a refused migration writes nothing"
    );

    let back_store = tmp.path().join("back");
    let back: Value = serde_json::from_str(&ok(tresor(
        &back_store,
        &key,
        &url,
        &[
            "operator",
            "migrate",
            "--from",
            "postgres",
            "--to",
            "embedded",
            "-format=json",
        ],
    )))
    .unwrap();
    assert_eq!(
        (&back["keys"], &back["sha256"]),
        (&there["keys"], &there["sha256"])
    );
    let read = ok(tresor(
        &back_store,
        &key,
        &url,
        &["kv", "get", "-field=password", "secret/app7"],
    ));
    assert_eq!(read.trim(), "pw-7");

    let url_file = tmp.path().join("pg-url");
    std::fs::write(&url_file, &url).unwrap();
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\n[storage]\nkind = \"postgres\"\nurl_file = \"{}\"\n\n[seal]\nkey_file = \"{}\"\n",
            url_file.display(),
            key.display()
        ),
    )
    .unwrap();
    let server = TestServer::with_config(&config);
    let health = Api::new(&server.addr, "").get("sys/health");
    assert_eq!((health.0, &health.1["sealed"]), (200, &json!(false)));
    let api = server.client(root["root_token"].as_str().unwrap());
    let (status, body) = api.get("secret/data/app13");
    assert_eq!(
        (status, &body["data"]["data"]),
        (200, &json!({"password": "pw-13"}))
    );
}
