//! End-to-end tests of `tresor apply` and `tresor generate` with the real
//! binary, on the embedded store (no cluster needed).

use crate::util;
use assert_cmd::Command;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const EXAMPLE: &str = include_str!("../../../../examples/mlops-platform/tresor.yaml");

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(env.repo()).unwrap();
        env
    }

    fn repo(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn spec(&self, text: &str) -> PathBuf {
        let path = self.repo().join("tresor.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn cmd(&self) -> Command {
        let mut cmd = util::tresor_assert();
        cmd.current_dir(self.repo())
            .env("HOME", self.tmp.path().join("home"))
            .env("XDG_CONFIG_HOME", self.tmp.path().join("config"));
        cmd
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn ok(&self, args: &[&str]) -> (String, String) {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?} failed:\n{out}\n{err}");
        (out, err)
    }

    fn get(&self, path: &str, field: &str) -> String {
        let store = self.repo().join(".tresor");
        let (out, _) = self.ok(&[
            "--store",
            store.to_str().unwrap(),
            "kv",
            "get",
            &format!("-field={field}"),
            path,
        ]);
        out.trim_end().to_owned()
    }

    fn keys_dir(&self) -> PathBuf {
        self.tmp.path().join("config/tresor/keys")
    }

    fn nothing_written(&self) {
        assert!(!self.repo().join(".tresor").exists(), "a store was created");
        assert!(!self.keys_dir().exists(), "a key file was created");
    }
}

fn rows(table: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn apply_the_example_then_nothing_changes() {
    let env = Env::new();
    env.spec(EXAMPLE);
    let started = std::time::Instant::now();
    let (out, err) = env.ok(&["apply", "-f", "tresor.yaml"]);
    let first_apply = started.elapsed();
    let rows = rows(&out);
    assert_eq!(rows[0], "SECRET KEY SOURCE ACTION");
    for row in [
        "mlops/postgres-secrets postgres-password generate base64:32 create",
        "mlops/mlflow-secrets db-password ref postgres-secrets/postgres-password create",
        "mlops/api-secrets api-key generate hex:32 create",
        "mlops/mlflow-secrets db-username ref postgres-secrets/postgres-user create",
        "mlops/postgres-admin password generate base64:32 create",
    ] {
        assert!(rows.contains(&row.to_owned()), "{row} missing in\n{out}");
    }
    assert!(
        out.contains("Applied: 4 created, 0 updated, 0 unchanged."),
        "{out}"
    );
    assert!(
        !err.contains("Warning"),
        "the example declares its rotators: {err}"
    );
    assert!(out.contains("tresor k8s render -f tresor.yaml"), "{out}");
    assert!(err.contains("Back the key file up"), "{err}");

    // The key file lives outside the repository, readable by its owner only.
    let key = std::fs::read_dir(env.keys_dir())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert_eq!(key.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    assert!(!key.starts_with(env.repo()));

    let pg = env.get("secret/postgres-secrets", "postgres-password");
    let mlflow = env.get("secret/mlflow-secrets", "db-password");
    let api = env.get("secret/api-secrets", "api-key");
    assert_eq!(
        pg, mlflow,
        "MLflow logs into Postgres with one shared password"
    );
    assert_eq!(pg.len(), 44, "openssl rand -base64 32");
    assert_eq!(api.len(), 64, "openssl rand -hex 32");
    assert_eq!(
        env.get("secret/postgres-secrets", "postgres-user"),
        "mlflow_a"
    );
    assert!(!out.contains(&pg) && !err.contains(&pg) && !out.contains(&api));

    let store_file = env
        .repo()
        .join(".tresor")
        .join(tresor_storage::STORE_FILE_NAME);
    let before = std::fs::read(&store_file).ok();
    let (out, _) = env.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(
        out.contains("No changes: 4 secrets are up to date."),
        "{out}"
    );
    assert!(rows_all(&out, "unchanged"), "{out}");
    assert_eq!(
        std::fs::read(&store_file).ok(),
        before,
        "a no-op apply leaves the store untouched"
    );
    assert_eq!(env.get("secret/postgres-secrets", "postgres-password"), pg);
    eprintln!("first apply of the example took {first_apply:?}");
}

fn rows_all(out: &str, action: &str) -> bool {
    rows(out)
        .iter()
        .skip(1)
        .take_while(|r| r.starts_with("mlops/"))
        .all(|r| r.ends_with(action))
}

#[test]
fn dry_run_writes_nothing_and_shows_the_plan() {
    let env = Env::new();
    env.spec(EXAMPLE);
    let (out, _) = env.ok(&["apply", "-f", "tresor.yaml", "--dry-run"]);
    assert!(
        out.contains("4 to create, 0 to update, 0 unchanged."),
        "{out}"
    );
    assert!(out.contains("Dry run: nothing was written."), "{out}");
    env.nothing_written();

    env.ok(&["apply", "-f", "tresor.yaml"]);
    let pg = env.get("secret/postgres-secrets", "postgres-password");
    env.spec(&EXAMPLE.replace(
        "postgres-db: {value: mlflow}",
        "postgres-db: {value: mlflow_prod}",
    ));
    let (out, _) = env.ok(&["apply", "-f", "tresor.yaml", "--dry-run"]);
    assert!(
        rows(&out).contains(&"mlops/postgres-secrets postgres-db literal update".to_owned()),
        "{out}"
    );
    assert_eq!(
        env.get("secret/postgres-secrets", "postgres-db"),
        "mlflow",
        "dry run wrote"
    );
    let (out, _) = env.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(
        out.contains("Applied: 0 created, 1 updated, 3 unchanged."),
        "{out}"
    );
    assert_eq!(
        env.get("secret/postgres-secrets", "postgres-db"),
        "mlflow_prod"
    );
    assert_eq!(env.get("secret/postgres-secrets", "postgres-password"), pg);
}

fn refused(spec: &str, expect: &[&str]) {
    let env = Env::new();
    env.spec(spec);
    let (code, out, err) = env.run(&["apply", "-f", "tresor.yaml"]);
    assert_eq!(code, 2, "{out}\n{err}");
    for e in expect {
        assert!(err.contains(e), "`{e}` not in:\n{err}");
    }
    assert!(err.contains("nothing was written"), "{err}");
    env.nothing_written();
}

#[test]
fn bad_specs_are_refused_with_their_place_and_nothing_is_written() {
    refused(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k: {generate: hex:32\n",
        &["tresor.yaml:5:"],
    );
    refused(
        "version: 1\nsecrets:\n  a:\n    keyz:\n      k: {generate: hex:32}\n",
        &["tresor.yaml:4:5: unknown field `keyz`"],
    );
    refused(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k: {ref: b/nope}\n  b:\n    keys:\n      x: {generate: hex:32}\n",
        &["tresor.yaml:5:", "secret `b` has no key `nope`"],
    );
    refused(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k: {ref: b/x}\n  b:\n    keys:\n      x: {ref: a/k}\n",
        &["references form a cycle: a/k -> b/x -> a/k"],
    );
    refused(
        "version: 1\nsecrets:\n  a:\n    keys:\n      'db password': {generate: hex:32}\n",
        &["tresor.yaml:5:", "not a valid Kubernetes key name"],
    );
    refused(
        "version: 1\nsecrets:\n  a:\n    keys:\n      db-password: {value: Summer2024!}\n",
        &["tresor.yaml:5:", "weak literal", "allow_weak"],
    );
}

#[test]
fn a_weak_literal_is_never_echoed() {
    let env = Env::new();
    env.spec("version: 1\nsecrets:\n  a:\n    keys:\n      db-password: {value: Summer2024!}\n");
    let (_, out, err) = env.run(&["apply", "-f", "tresor.yaml"]);
    assert!(
        !out.contains("Summer2024") && !err.contains("Summer2024"),
        "{err}"
    );
    env.spec("version: 1\nsecrets:\n  a:\n    keys:\n      db-password: {value: Summer2024!, allow_weak: \"legacy device\"}\n");
    let (out, err) = env.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(!out.contains("Summer2024") && !err.contains("Summer2024"));
}

#[test]
fn a_missing_spec_says_how_to_pass_one() {
    let env = Env::new();
    let (code, _, err) = env.run(&["apply"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("tresor.yaml") && err.contains("-f FILE"),
        "{err}"
    );
}

#[test]
fn generate_prints_strong_values() {
    let env = Env::new();
    let (out, _) = env.ok(&["generate", "base64:32"]);
    let value = out.trim_end();
    // 32 bytes: 43 base64 characters and one `=` of padding, as openssl prints them.
    assert_eq!(value.len(), 44);
    assert!(value.ends_with('=') && !value.ends_with("=="));
    assert!(
        value[..43]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    );
    let (out, _) = env.ok(&["generate", "hex:32"]);
    assert_eq!(out.trim_end().len(), 64);
    let (out, _) = env.ok(&[
        "generate",
        "password:40",
        "--no-ambiguous",
        "--symbols",
        "-_",
    ]);
    let pw = out.trim_end();
    assert_eq!(pw.chars().count(), 40);
    assert!(!pw.contains(['0', 'O', '1', 'l', 'I']));
    let (out, _) = env.ok(&["generate", "uuid"]);
    assert_eq!(out.trim_end().len(), 36);
    let (_, err) = env.ok(&["generate", "hex:8"]);
    assert!(err.contains("below the minimum"), "{err}");
    let (code, _, err) = env.run(&["generate", "rot13:4"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown generator"), "{err}");
    assert!(Path::new(&env.repo()).read_dir().unwrap().next().is_none());
}
