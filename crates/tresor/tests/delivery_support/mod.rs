//! A local AWS Secrets Manager for the delivery tests: moto's server from
//! the virtualenv of scripts/setup/aws.sh, on a free loopback port, killed
//! on drop; and the AWS CLI from the same virtualenv pointed at it.

#![allow(dead_code)]

use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "eu-west-1";

fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `eval \"$(scripts/setup/aws.sh)\"` first, or ./scripts/test")
    })
}

pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra environment (`INITIAL_NO_AUTH_ACTION_COUNT` turns on its IAM checks).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(tool("TRESOR_TEST_MOTO"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// The variables that point the AWS SDK (and CLI) at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// `aws secretsmanager ARGS` against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(tool("TRESOR_TEST_AWS_CLI"))
            .arg("secretsmanager")
            .args(args)
            .args([
                "--endpoint-url",
                &self.url,
                "--region",
                REGION,
                "--output",
                "json",
            ])
            .envs(self.env())
            .output()
            .unwrap()
    }

    /// `aws secretsmanager ARGS` that must succeed; its JSON answer.
    pub fn cli_ok(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "aws secretsmanager {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The `AWSCURRENT` (or another stage's) secret string, as JSON.
    pub fn value(&self, name: &str, stage: &str) -> Value {
        let out = self.cli_ok(&[
            "get-secret-value",
            "--secret-id",
            name,
            "--version-stage",
            stage,
        ]);
        serde_json::from_str(out["SecretString"].as_str().unwrap()).unwrap()
    }

    /// Each version id with its staging labels.
    pub fn stages(&self, name: &str) -> Value {
        self.cli_ok(&["describe-secret", "--secret-id", name])["VersionIdsToStages"].clone()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
