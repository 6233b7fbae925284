//! OpenBao's `bao` (the vault CLI's fork, its agent and a real server,
//! from scripts/setup/bao.sh): the CLI as one token against one server, and
//! `bao server -dev` to compare tresor with.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// `bao` against one server, as one token.
pub struct Bao {
    pub binary: PathBuf,
    pub addr: String,
    pub token: String,
}

impl Bao {
    pub fn as_token(&self, token: &str) -> Bao {
        Bao {
            binary: self.binary.clone(),
            addr: self.addr.clone(),
            token: token.to_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.binary)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .env("BAO_TOKEN", &self.token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bao {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command with `-format=json` (placed after its subcommand
    /// words) that must succeed.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all: Vec<&str> = args.to_vec();
        let at = all
            .iter()
            .position(|a| !is_subcommand(a))
            .unwrap_or(all.len());
        all.insert(at, "-format=json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bao {all:?}: {e}: {text}"))
    }

    /// Runs a command that the server must refuse (exit 2) with `message`.
    pub fn refused(&self, args: &[&str], message: &str) {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "bao {} was not refused: {}{stderr}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(stderr.contains(message), "bao {}: {stderr}", args.join(" "));
    }
}

/// The words of a bao command line before its flags and arguments.
pub fn is_subcommand(word: &str) -> bool {
    matches!(
        word,
        "kv" | "metadata"
            | "token"
            | "policy"
            | "secrets"
            | "auth"
            | "audit"
            | "operator"
            | "lookup"
            | "create"
            | "capabilities"
            | "list"
            | "read"
            | "write"
            | "get"
            | "put"
            | "patch"
            | "delete"
            | "undelete"
            | "destroy"
            | "rollback"
            | "renew"
            | "revoke"
            | "enable"
            | "disable"
            | "tune"
            | "move"
            | "key-status"
            | "status"
            | "unwrap"
            | "enable-versioning"
    )
}

/// `bao server -dev` on a free port: the real OpenBao to compare with.
pub struct OpenBao {
    child: std::process::Child,
    pub addr: String,
    _home: tempfile::TempDir,
}

impl OpenBao {
    pub fn start(binary: &Path) -> OpenBao {
        let port = super::free_port();
        let home = tempfile::tempdir().unwrap();
        let child = Command::new(binary)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let addr = format!("http://127.0.0.1:{port}");
        super::wait_for("OpenBao to start", Duration::from_secs(30), || {
            super::Api::new(&addr, "")
                .raw("GET", "sys/health", Vec::new(), "application/json")
                .is_ok_and(|(status, _)| status == 200)
        });
        OpenBao {
            child,
            addr,
            _home: home,
        }
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
