//! A repository directory with a tresor.yaml, and the real binary run in it
//! with a clean environment (the store's key file stays under the tempdir).
use std::path::PathBuf;
use std::process::Command;

pub struct Repo {
    pub tmp: tempfile::TempDir,
}

impl Repo {
    pub fn new(spec: &str) -> Self {
        let repo = Self {
            tmp: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(repo.dir()).unwrap();
        std::fs::write(repo.dir().join("tresor.yaml"), spec).unwrap();
        repo
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = super::tresor();
        cmd.current_dir(self.dir())
            .env("HOME", self.tmp.path().join("home"))
            .env("XDG_CONFIG_HOME", self.tmp.path().join("config"))
            .args(args);
        cmd
    }

    /// Exit code, stdout, stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_env(&[], args)
    }

    /// [`Repo::run`] with extra environment (a kubeconfig, a Vault, AWS).
    pub fn run_env(&self, env: &[(&str, String)], args: &[&str]) -> (i32, String, String) {
        let out = self
            .command(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_env(&[], args)
    }

    pub fn ok_env(&self, env: &[(&str, String)], args: &[&str]) -> String {
        let (code, out, err) = self.run_env(env, args);
        assert_eq!(code, 0, "{args:?} failed:\n{out}\n{err}");
        out
    }

    /// The row of `secret` in `tresor status -f tresor.yaml --format json`.
    pub fn status_row(&self, env: &[(&str, String)], secret: &str) -> serde_json::Value {
        let out = self.ok_env(env, &["status", "-f", "tresor.yaml", "--format", "json"]);
        let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["secret"] == secret)
            .unwrap_or_else(|| panic!("no row for {secret}: {out}"))
            .clone()
    }

    /// One key of a secret in the embedded store.
    pub fn get(&self, path: &str, field: &str) -> String {
        let field = format!("-field={field}");
        let path = format!("secret/{path}");
        self.ok(&["--store", ".tresor", "kv", "get", &field, &path])
            .trim_end()
            .to_owned()
    }
}

/// A shipped example whose `postgres` rotation of MLflow's login is
/// replaced by the `generate` rotator, named explicitly: for tests of
/// delivery, which need no database.
pub fn generate_rotated(example: &str) -> String {
    let start = example
        .find("    rotation:\n      every: 90d\n      postgres:\n")
        .expect("the example's postgres rotation");
    let end = start + example[start..].find("        owner: mlflow\n").unwrap();
    format!(
        "{}    rotation: {{every: 90d, rotator: generate}}\n{}",
        &example[..start],
        &example[end + "        owner: mlflow\n".len()..]
    )
}
