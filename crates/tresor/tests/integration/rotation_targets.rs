//! `tresor rotate` pushing rotated values to AWS Secrets Manager and Vault
//! targets at rotation time, through the path `tresor apply` takes: a
//! local moto_server read back with the AWS CLI (scripts/setup/aws.sh), and
//! a `tresor server -dev` read back with hvac (scripts/setup/python.sh).

use crate::util;
use crate::util::Moto;
use crate::util::Repo;
use crate::util::TestServer;
use serde_json::{Value, json};
use std::process::Command;

const AWS_EXAMPLE: &str = include_str!("../../../../examples/mlops-platform-aws/tresor.yaml");
const VAULT_EXAMPLE: &str = include_str!("../../../../examples/mlops-platform-vault/tresor.yaml");

/// The AWS SDK pointed at `endpoint`, with no configuration from the home directory.
fn aws_env(moto: &Moto, endpoint: &str, repo: &Repo) -> Vec<(&'static str, String)> {
    let mut env = moto.env();
    for (k, v) in &mut env {
        if *k == "AWS_ENDPOINT_URL_SECRETS_MANAGER" {
            *v = endpoint.to_owned();
        }
    }
    let none = repo.tmp.path().join("none").display().to_string();
    env.push(("AWS_CONFIG_FILE", none.clone()));
    env.push(("AWS_SHARED_CREDENTIALS_FILE", none));
    env
}

fn undelivered(repo: &Repo, env: &[(&str, String)], secret: &str) -> Value {
    repo.status_row(env, secret)["undelivered"].clone()
}

/// Applies the spec, then rotates `postgres-secrets`: its password before
/// and after, and what the rotation printed (never a value).
fn apply_then_rotate_postgres(repo: &Repo, env: &[(&str, String)]) -> (String, String, String) {
    repo.ok_env(env, &["apply", "-f", "tresor.yaml"]);
    let before = repo.get("postgres-secrets", "postgres-password");
    let out = repo.ok_env(env, &["rotate", "-f", "tresor.yaml", "postgres-secrets"]);
    let after = repo.get("postgres-secrets", "postgres-password");
    assert_ne!(after, before);
    assert!(
        !out.contains(&after) && !out.contains(&before),
        "a value was printed:\n{out}"
    );
    (before, after, out)
}

#[test]
fn rotate_pushes_to_aws_and_an_unreachable_endpoint_is_delivered_by_the_next_run() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    let repo = Repo::new(&util::generate_rotated(AWS_EXAMPLE));
    let env = aws_env(&moto, &moto.url, &repo);
    let (before, after, out) = apply_then_rotate_postgres(&repo, &env);
    let mlflow = "mlops-platform/mlflow/db-credentials";
    let line = "aws: mlflow-secrets -> mlops-platform/mlflow/db-credentials (eu-west-1): updated";
    assert!(out.contains(line), "{line} missing:\n{out}");
    assert!(!out.contains("api-secrets"), "{out}");
    assert!(!out.contains("postgres-admin"), "{out}");
    assert_eq!(moto.value(mlflow, "AWSCURRENT")["password"], after);
    assert_eq!(moto.value(mlflow, "AWSPREVIOUS")["password"], before);
    assert_eq!(
        moto.stages("mlops-platform/postgres/credentials")
            .as_object()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(undelivered(&repo, &env, "postgres-secrets"), false);

    // The endpoint unreachable: rotated and stored, the push failed, and the
    // rotation stays marked undelivered.
    let api = "mlops-platform/api/key";
    let key_before = moto.value(api, "AWSCURRENT");
    let port = util::free_port();
    let down = aws_env(&moto, &format!("http://127.0.0.1:{port}"), &repo);
    let (code, out, err) = repo.run_env(&down, &["rotate", "-f", "tresor.yaml", "api-secrets"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("api-secrets: rotated; version 2 is current"),
        "{out}"
    );
    assert!(
        out.contains("aws: api-secrets -> mlops-platform/api/key (eu-west-1): FAILED"),
        "{out}"
    );
    assert!(
        err.contains("delivery incomplete (aws: 0 of 1 delivered)"),
        "{err}"
    );
    assert!(err.contains("--due"), "{err}");
    let key = repo.get("api-secrets", "api-key");
    assert!(!out.contains(&key) && !err.contains(&key));
    assert_eq!(moto.value(api, "AWSCURRENT"), key_before);
    assert_eq!(undelivered(&repo, &env, "api-secrets"), true);

    // Reachable again: nothing is due, the undelivered rotation is pushed.
    let out = repo.ok_env(&env, &["rotate", "-f", "tresor.yaml", "--due"]);
    assert!(out.contains("Nothing is due"), "{out}");
    assert!(
        out.contains("aws: api-secrets -> mlops-platform/api/key (eu-west-1): updated"),
        "{out}"
    );
    assert_eq!(moto.value(api, "AWSCURRENT")["api-key"], key);
    assert_eq!(repo.get("api-secrets", "api-key"), key, "not rotated again");
    assert_eq!(undelivered(&repo, &env, "api-secrets"), false);
    let out = repo.ok_env(&env, &["rotate", "-f", "tresor.yaml", "--due"]);
    assert!(!out.contains("aws:"), "delivered twice:\n{out}");
}

/// hvac reads each path's current data and version from the Vault.
fn hvac_read(server: &TestServer, paths: &[&str]) -> Value {
    let python = util::service("TRESOR_TEST_PYTHON");
    let script = "import hvac, json, os, sys
c = hvac.Client(url=os.environ['VAULT_ADDR'], token=os.environ['VAULT_TOKEN'])
out = {}
for p in sys.argv[1:]:
    r = c.secrets.kv.v2.read_secret_version(path=p, mount_point='mlops-platform', raise_on_deleted_version=True)['data']
    out[p] = {'data': r['data'], 'version': r['metadata']['version']}
print(json.dumps(out))
";
    let out = Command::new(python)
        .args(["-c", script])
        .args(paths)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.root_token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hvac: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn rotate_pushes_to_vault_and_hvac_reads_the_new_version() {
    util::need!("TRESOR_TEST_PYTHON");
    let server = TestServer::dev();
    let (status, body) = server.client(&server.root_token).post(
        "sys/mounts/mlops-platform",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    assert!(status < 300, "{body}");
    let repo = Repo::new(&util::generate_rotated(VAULT_EXAMPLE));
    let env = [
        ("VAULT_ADDR", server.addr.clone()),
        ("VAULT_TOKEN", server.root_token.clone()),
    ];
    let (_, after, out) = apply_then_rotate_postgres(&repo, &env);
    assert!(
        out.contains("vault: mlflow-secrets -> mlops-platform/mlflow at"),
        "{out}"
    );
    let read = hvac_read(&server, &["postgres", "mlflow", "api"]);
    assert_eq!(
        read["postgres"]["version"], 1,
        "the superuser's path was written"
    );
    assert_eq!(read["mlflow"]["version"], 2, "{read}");
    assert_eq!(read["mlflow"]["data"]["db-password"], after);
    assert_eq!(read["mlflow"]["data"]["db-username"], "mlflow_a");
    assert_eq!(read["api"]["version"], 1, "an unrotated secret was written");
    assert_eq!(undelivered(&repo, &env, "postgres-secrets"), false);
}
