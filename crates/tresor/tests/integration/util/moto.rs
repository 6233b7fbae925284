//! A local AWS Secrets Manager for the delivery tests: moto's server from
//! the virtualenv of scripts/setup/aws.sh, on a free loopback port, killed
//! on drop; and the AWS CLI from the same virtualenv pointed at it.

use serde_json::Value;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const REGION: &str = "eu-west-1";

/// More secrets than a target has pushes in flight, so that some are
/// still waiting when an endpoint proves unreachable.
pub const EXTRA: usize = 40;

/// `spec` (whose `secrets:` section comes last) with [`EXTRA`] more
/// secrets `extra-NN`, each delivered to `target(NN)` (a flow mapping).
pub fn with_extra_secrets(spec: &str, target: impl Fn(usize) -> String) -> String {
    let mut out = spec.to_owned();
    for i in 0..EXTRA {
        out.push_str(&format!(
            "  extra-{i:02}:\n    keys: {{k: {{generate: hex:16}}}}\n    targets: {}\n",
            target(i)
        ));
    }
    out
}

/// Checks a report of pushes to an unreachable `kind` endpoint: every one
/// failed or was not tried, and some were not tried at all.
pub fn assert_all_undelivered(shown: &str, kind: &str, total: usize) {
    let lines: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with(&format!("{kind}: ")))
        .collect();
    assert_eq!(lines.len(), total, "one line per push:\n{shown}");
    assert!(
        lines.iter().all(|l| l.contains(": FAILED: cannot reach")
            || l.ends_with("NOT TRIED: its endpoint is unreachable")),
        "{shown}"
    );
    assert!(
        lines.iter().any(|l| l.contains("NOT TRIED")),
        "the pushes waiting behind the first failures are not tried:\n{shown}"
    );
    assert!(
        shown.contains(&format!("{kind}: 0 of {total} delivered")),
        "{shown}"
    );
}

fn tool(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `eval \"$(scripts/setup/aws.sh)\"` first, or ./scripts/test")
    })
}

pub struct Moto {
    child: Child,
    pub url: String,
    /// The access key the helpers sign with: anything until IAM is
    /// enforced, then an administrator's.
    keys: std::sync::Mutex<Keys>,
}

/// An access key id and its secret.
#[derive(Clone)]
pub struct Keys {
    pub id: String,
    pub secret: String,
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
            keys: std::sync::Mutex::new(Keys {
                id: "testing".into(),
                secret: "testing".into(),
            }),
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
        let keys = self.keys.lock().unwrap().clone();
        self.env_as(&keys)
    }

    /// [`Moto::env`] signing with `keys`.
    pub fn env_as(&self, keys: &Keys) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", keys.id.clone()),
            ("AWS_SECRET_ACCESS_KEY", keys.secret.clone()),
            ("AWS_REGION", REGION.into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// An IAM user with the inline policy `policy` (a JSON document), and
    /// an access key of it.
    pub fn iam_user(&self, name: &str, policy: &str) -> Keys {
        self.iam(&["create-user", "--user-name", name]);
        self.iam_policy(name, policy);
        let key = self.iam(&["create-access-key", "--user-name", name]);
        Keys {
            id: key["AccessKey"]["AccessKeyId"].as_str().unwrap().into(),
            secret: key["AccessKey"]["SecretAccessKey"].as_str().unwrap().into(),
        }
    }

    /// Replaces the inline policy of user `name`.
    pub fn iam_policy(&self, name: &str, policy: &str) {
        self.iam(&[
            "put-user-policy",
            "--user-name",
            name,
            "--policy-name",
            "tresor-test",
            "--policy-document",
            policy,
        ]);
    }

    /// From now on, moto checks every request's signature and IAM policies
    /// (its `/moto-api/reset-auth` sets INITIAL_NO_AUTH_ACTION_COUNT to 0);
    /// the helpers sign with `admin`.
    pub fn enforce_iam(&self, admin: &Keys) {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        write!(
            stream,
            "POST /moto-api/reset-auth HTTP/1.0\r\nHost: {address}\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n0"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.contains(" 200 "), "moto reset-auth: {answer}");
        *self.keys.lock().unwrap() = admin.clone();
    }

    /// `aws iam ARGS` that must succeed; its JSON answer.
    pub fn iam(&self, args: &[&str]) -> Value {
        self.run_ok("iam", args)
    }

    fn run(&self, service: &str, args: &[&str]) -> Output {
        Command::new(tool("TRESOR_TEST_AWS_CLI"))
            .arg(service)
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

    /// A new key of moto's KMS; its id.
    pub fn kms_key(&self) -> String {
        let made = self.run_ok("kms", &["create-key"]);
        made["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    }

    /// `aws secretsmanager ARGS` that must succeed; its JSON answer.
    pub fn cli_ok(&self, args: &[&str]) -> Value {
        self.run_ok("secretsmanager", args)
    }

    fn run_ok(&self, service: &str, args: &[&str]) -> Value {
        let out = self.run(service, args);
        assert!(
            out.status.success(),
            "aws {service} {args:?}: {}",
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
