//! `tresor apply` delivering to a Vault KV v2 mount: a real `tresor server
//! -dev` as the Vault, read back with the Python Vault client hvac (the
//! virtualenv from scripts/setup/python.sh), and its faults: an unreachable
//! Vault, a token without write access, a path someone else owns.

use crate::util;
use crate::util::TestServer;
use crate::util::{EXTRA, assert_all_undelivered, with_extra_secrets};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

const EXAMPLE: &str = include_str!("../../../../examples/mlops-platform-vault/tresor.yaml");

/// A Vault with the example's mount, and a directory holding the spec.
fn setup() -> (TestServer, tempfile::TempDir) {
    let server = TestServer::dev();
    let (status, body) = server.client(&server.root_token).post(
        "sys/mounts/mlops-platform",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    assert!(status < 300, "{body}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tresor.yaml"), EXAMPLE).unwrap();
    (server, dir)
}

fn apply(dir: &Path, addr: &str, token: &str) -> Output {
    util::tresor()
        .args(["apply", "-f"])
        .arg(dir.join("tresor.yaml"))
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", token)
        .env_remove("TRESOR_ADDR")
        .env_remove("TRESOR_TOKEN")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `script` with hvac against the server; its stdout is one JSON value.
fn hvac(server: &TestServer, script: &str) -> Value {
    let python = util::service("TRESOR_TEST_PYTHON");
    let prelude = "import hvac, json, os\nc = hvac.Client(url=os.environ['VAULT_ADDR'], token=os.environ['VAULT_TOKEN'])\nkv = c.secrets.kv.v2\n";
    let out = Command::new(python)
        .args(["-c", &format!("{prelude}{script}")])
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .output()
        .unwrap();
    assert!(out.status.success(), "hvac: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

const READ_ALL: &str = r#"
out = {}
for p in ["mlflow", "postgres", "api"]:
    d = kv.read_secret_version(path=p, mount_point="mlops-platform", raise_on_deleted_version=True)["data"]
    m = kv.read_secret_metadata(path=p, mount_point="mlops-platform")["data"]
    out[p] = {"data": d["data"], "version": d["metadata"]["version"], "custom": m["custom_metadata"]}
print(json.dumps(out))
"#;

#[test]
fn apply_delivers_to_vault_once_and_hvac_reads_it_back() {
    util::need!("TRESOR_TEST_PYTHON");
    let (server, dir) = setup();
    let first = apply(dir.path(), &server.addr, &server.root_token);
    assert!(first.status.success(), "{}", text(&first));
    let all = hvac(&server, READ_ALL);
    let pg = &all["postgres"]["data"];
    let password = pg["password"].as_str().unwrap();
    assert_eq!(password.len(), 44);
    assert_eq!(pg["username"], "postgres");
    assert_eq!(pg["database"], "mlflow");
    assert_eq!(all["mlflow"]["data"]["db-username"], "mlflow_a");
    let mlflow = all["mlflow"]["data"]["db-password"].as_str().unwrap();
    assert_eq!(mlflow.len(), 44);
    assert_ne!(mlflow, password, "MLflow's login is not the superuser's");
    assert_eq!(
        all["api"]["data"]["api-key"].as_str().unwrap().len(),
        64,
        "hex:32"
    );
    for path in ["mlflow", "postgres", "api"] {
        assert_eq!(all[path]["version"], 1);
        assert_eq!(all[path]["custom"]["managed-by"], "tresor");
        assert_eq!(all[path]["custom"]["tresor-platform"], "mlops-platform");
    }
    assert_eq!(all["api"]["custom"]["tresor-secret"], "api-secrets");
    let shown = text(&first);
    assert!(!shown.contains(password), "a value was printed");
    assert!(
        shown.contains("vault: postgres-admin -> mlops-platform/postgres at"),
        "{shown}"
    );

    let second = apply(dir.path(), &server.addr, &server.root_token);
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains("mlops-platform/api at") && !text(&second).contains("created"),
        "{}",
        text(&second)
    );
    let again = hvac(&server, READ_ALL);
    for path in ["mlflow", "postgres", "api"] {
        assert_eq!(again[path]["version"], 1, "a second apply wrote {path}");
    }

    // A changed literal: a new version of that path only, written with cas.
    let spec = EXAMPLE.replace(
        "db-username: {ref: postgres-secrets/postgres-user}",
        "db-username: {value: mlflow-app}",
    );
    std::fs::write(dir.path().join("tresor.yaml"), spec).unwrap();
    let third = apply(dir.path(), &server.addr, &server.root_token);
    assert!(third.status.success(), "{}", text(&third));
    assert!(
        text(&third).contains("vault: mlflow-secrets -> mlops-platform/mlflow at"),
        "{}",
        text(&third)
    );
    let changed = hvac(&server, READ_ALL);
    assert_eq!(changed["mlflow"]["version"], 2);
    assert_eq!(changed["mlflow"]["data"]["db-username"], "mlflow-app");
    assert_eq!(changed["postgres"]["version"], 1);
}

#[test]
fn a_path_owned_by_someone_else_is_not_overwritten() {
    util::need!("TRESOR_TEST_PYTHON");
    let (server, dir) = setup();
    hvac(
        &server,
        r#"kv.create_or_update_secret(path="api", secret={"api-key": "theirs"}, mount_point="mlops-platform")
print("null")"#,
    );
    let out = apply(dir.path(), &server.addr, &server.root_token);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("mlops-platform/api exists and is not tresor's"),
        "{shown}"
    );
    assert!(shown.contains("vault: 2 of 3 delivered"), "{shown}");
    assert!(
        shown.contains("vault: mlflow-secrets -> mlops-platform/mlflow at")
            && shown.contains(": created"),
        "the other paths are delivered and said so: {shown}"
    );
    let theirs = hvac(
        &server,
        r#"print(json.dumps(kv.read_secret_version(path="api", mount_point="mlops-platform", raise_on_deleted_version=True)["data"]))"#,
    );
    assert_eq!(theirs["data"]["api-key"], "theirs");
    assert_eq!(theirs["metadata"]["version"], 1);

    // Once the owner gives it up, a re-run completes.
    hvac(
        &server,
        r#"kv.delete_metadata_and_all_versions(path="api", mount_point="mlops-platform")
print("null")"#,
    );
    let rerun = apply(dir.path(), &server.addr, &server.root_token);
    assert!(rerun.status.success(), "{}", text(&rerun));
    let all = hvac(&server, READ_ALL);
    assert_eq!(all["api"]["custom"]["managed-by"], "tresor");
    assert_eq!(
        all["mlflow"]["version"], 1,
        "delivered paths are left alone"
    );
}

#[test]
fn an_unreachable_vault_is_named_and_a_rerun_completes() {
    util::need!("TRESOR_TEST_PYTHON");
    let (server, dir) = setup();
    let spec = with_extra_secrets(EXAMPLE, |i| format!("{{vault: {{path: extra/{i:02}}}}}"));
    std::fs::write(dir.path().join("tresor.yaml"), spec).unwrap();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let out = apply(dir.path(), &closed, &server.root_token);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!("cannot reach Vault at {closed}")),
        "{shown}"
    );
    assert_all_undelivered(&shown, "vault", 3 + EXTRA);
    assert!(
        // The store also holds postgres-secrets, which goes nowhere else.
        shown.contains(&format!("Applied: {} created", 4 + EXTRA)),
        "the store is written: {shown}"
    );

    let rerun = apply(dir.path(), &server.addr, &server.root_token);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert!(text(&rerun).contains("No changes"), "{}", text(&rerun));
    let all = hvac(&server, READ_ALL);
    assert_eq!(all["postgres"]["version"], 1);
}

#[test]
fn a_token_without_write_access_is_denied_clearly() {
    util::need!("TRESOR_TEST_PYTHON");
    let (server, dir) = setup();
    let api = server.client(&server.root_token);
    let (status, body) = api.post(
        "sys/policies/acl/reader",
        json!({"policy": "path \"mlops-platform/*\" { capabilities = [\"read\", \"list\"] }"}),
    );
    assert!(status < 300, "{body}");
    let (status, body) = api.post(
        "auth/token/create",
        json!({"policies": ["reader"], "ttl": "1h"}),
    );
    assert!(status < 300, "{body}");
    let reader = body["auth"]["client_token"].as_str().unwrap().to_owned();

    let out = apply(dir.path(), &server.addr, &reader);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!(
            "Vault at {} denied access to mlops-platform/",
            server.addr
        )),
        "{shown}"
    );
    assert!(shown.contains("mlops-platform/data/"), "{shown}");
    assert!(!shown.contains(&reader), "the token was printed");

    let rerun = apply(dir.path(), &server.addr, &server.root_token);
    assert!(rerun.status.success(), "{}", text(&rerun));
    let all = hvac(&server, READ_ALL);
    assert_eq!(all["api"]["version"], 1);
}

#[test]
fn import_from_vault_then_apply_adopts_the_path() {
    util::need!("TRESOR_TEST_PYTHON");
    let (server, dir) = setup();
    hvac(
        &server,
        r#"kv.create_or_update_secret(path="legacy/reporting", secret={"db-user": "svc-reporting", "db-password": "Xk2-from-before-tresor-9Qw-7tY-2bV"}, mount_point="mlops-platform")
print("null")"#,
    );
    let file = dir.path().join("imported.yaml");
    let out = util::tresor()
        .args(["import", "--from", "vault", "mlops-platform/legacy", "-f"])
        .arg(&file)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        !shown.contains("Xk2-from") && !shown.contains("svc-reporting"),
        "a value was printed: {shown}"
    );
    let proposal = String::from_utf8(out.stdout).unwrap();
    assert!(
        proposal.contains("  legacy-reporting:")
            && proposal.contains("vault: {mount: mlops-platform, path: legacy/reporting}"),
        "{proposal}"
    );
    std::fs::write(
        &file,
        format!("version: 1\nname: mlops-platform\n{proposal}"),
    )
    .unwrap();
    let applied = util::tresor()
        .args(["apply", "-f"])
        .arg(&file)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .output()
        .unwrap();
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(text(&applied).contains("adopted"), "{}", text(&applied));
    let back = hvac(
        &server,
        r#"d = kv.read_secret_version(path="legacy/reporting", mount_point="mlops-platform", raise_on_deleted_version=True)["data"]
m = kv.read_secret_metadata(path="legacy/reporting", mount_point="mlops-platform")["data"]
print(json.dumps({"data": d["data"], "version": d["metadata"]["version"], "custom": m["custom_metadata"]}))"#,
    );
    assert_eq!(back["version"], 1, "adopting wrote no new version");
    assert_eq!(back["data"]["db-user"], "svc-reporting");
    assert_eq!(back["custom"]["managed-by"], "tresor");
}
