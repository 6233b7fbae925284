//! `tresor apply` against a `tresor server` named by `store.address`.

use crate::util;

fn apply(dir: &std::path::Path, token: &str) -> std::process::Output {
    util::tresor()
        .args(["apply", "-f"])
        .arg(dir.join("tresor.yaml"))
        .env_remove("VAULT_ADDR")
        .env_remove("TRESOR_ADDR")
        .env("TRESOR_TOKEN", token)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("HOME", dir)
        .output()
        .unwrap()
}

#[test]
fn apply_stores_in_a_server_and_is_idempotent() {
    let server = util::TestServer::dev();
    let tmp = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/mlops-platform/tresor.yaml"
    ))
    .unwrap()
    .replacen(
        "version: 1\n",
        &format!("version: 1\nstore:\n  address: {}\n", server.addr),
        1,
    );
    std::fs::write(tmp.path().join("tresor.yaml"), spec).unwrap();

    let first = apply(tmp.path(), &server.root_token);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        !tmp.path().join(".tresor").exists(),
        "no embedded store is created"
    );
    let api = server.client(&server.root_token);
    let pg = api.get("secret/data/postgres-secrets").1["data"]["data"]["postgres-password"].clone();
    let mlflow = api.get("secret/data/mlflow-secrets").1["data"]["data"]["db-password"].clone();
    assert!(pg.as_str().is_some_and(|p| p.len() == 44));
    assert_eq!(pg, mlflow, "the shared password is one value");
    let out = String::from_utf8_lossy(&first.stdout).into_owned()
        + &String::from_utf8_lossy(&first.stderr);
    assert!(!out.contains(pg.as_str().unwrap()), "a value was printed");

    let second = apply(tmp.path(), &server.root_token);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("No changes"),
        "{}",
        String::from_utf8_lossy(&second.stdout)
    );
    assert_eq!(
        api.get("secret/metadata/postgres-secrets").1["data"]["current_version"],
        1
    );

    let denied = apply(tmp.path(), "tvs.not-a-token");
    assert_eq!(
        denied.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(!String::from_utf8_lossy(&denied.stderr).contains("tvs.not-a-token"));
    let no_token = util::tresor()
        .args(["apply", "-f"])
        .arg(tmp.path().join("tresor.yaml"))
        .env_remove("TRESOR_TOKEN")
        .env_remove("VAULT_TOKEN")
        .env("HOME", tmp.path())
        .env("XDG_CONFIG_HOME", tmp.path().join("config"))
        .output()
        .unwrap();
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("tresor login"));
}
