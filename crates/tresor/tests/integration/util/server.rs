//! Starts real `tresor server` processes for end-to-end tests, each on a
//! free loopback port, stopped when dropped (even when a test fails).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Writes a server configuration for a plain-HTTP loopback server on a free
/// port, storing in `dir/store`, with `extra` TOML appended.
pub fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    config_listener(dir, "", extra)
}

/// [`config`] with more `[listener]` settings.
pub fn config_listener(dir: &Path, listener: &str, extra: &str) -> std::path::PathBuf {
    let path = dir.join("tresor.toml");
    let text = format!(
        "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n{listener}\n\n[storage]\npath = \"{}\"\n{extra}",
        dir.join("store").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `tresor --store STORE --key-file KEY`, ready for its arguments: a CLI
/// run against the embedded store, never a server.
pub fn offline(store: &Path, key: &Path) -> Command {
    let mut command = super::tresor();
    command
        .arg("--store")
        .arg(store)
        .arg("--key-file")
        .arg(key)
        .env_remove("TRESOR_ADDR")
        .env_remove("VAULT_ADDR");
    command
}

pub struct TestServer {
    pub child: Child,
    pub addr: String,
    pub root_token: String,
    /// Everything the server wrote to stderr (its log), so far.
    pub log: Arc<Mutex<String>>,
}

impl TestServer {
    /// `tresor server -dev` with a random root token.
    pub fn dev() -> Self {
        Self::dev_with(&[])
    }

    /// `tresor server -dev` with more arguments.
    pub fn dev_with(args: &[&str]) -> Self {
        let token = format!("root-{}", std::process::id());
        let child = super::tresor()
            .args(["server", "-dev", "-listen=127.0.0.1:0"])
            .args(args)
            .env("TRESOR_DEV_ROOT_TOKEN", &token)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tresor starts");
        Self::wait(child, token)
    }

    /// `tresor server --config FILE`; the root token is not known.
    pub fn with_config(config: &Path) -> Self {
        Self::with_config_args(config, &[])
    }

    /// `tresor server --config FILE` with more arguments.
    pub fn with_config_args(config: &Path, args: &[&str]) -> Self {
        Self::from_command(
            super::tresor()
                .args(["server", "--config"])
                .arg(config)
                .args(args),
        )
    }

    /// A server started by `command` (a wrapper around the binary, say).
    pub fn from_command(command: &mut Command) -> Self {
        let child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tresor starts");
        Self::wait(child, String::new())
    }

    fn wait(mut child: Child, root_token: String) -> Self {
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(url) = line.strip_prefix("tresor server listening on ") {
                addr = Some(url.trim().to_string());
                break;
            }
            assert!(Instant::now() < deadline, "the server did not start");
        }
        // Drained, so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
        let Some(addr) = addr else {
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "the server exited before listening: {}",
                log.lock().unwrap()
            );
        };
        Self {
            child,
            addr,
            root_token,
            log,
        }
    }

    /// Sends a signal (by name, as `kill` takes it) to the server.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// A client of this server with `token`.
    pub fn client(&self, token: &str) -> Api {
        Api::new(&self.addr, token)
    }
}

/// A small HTTP client of the Vault API: every call returns the status and
/// the JSON body (`null` when empty).
pub struct Api {
    agent: ureq::Agent,
    pub addr: String,
    pub token: String,
}

impl Api {
    pub fn new(addr: &str, token: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Self::with_agent(agent, addr, token)
    }

    pub fn with_agent(agent: ureq::Agent, addr: &str, token: &str) -> Self {
        Self {
            agent,
            addr: addr.to_string(),
            token: token.to_string(),
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.raw(
            method,
            path,
            body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            "application/json",
        )
        .expect("the server answers")
    }

    pub fn raw(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(u16, serde_json::Value), ureq::Error> {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}/v1/{path}", self.addr))
            .header("Content-Type", content_type);
        if !self.token.is_empty() {
            request = request.header("X-Vault-Token", &self.token);
        }
        let request = request.body(body).unwrap();
        let mut response = self.agent.run(request)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        Ok((status, value))
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call("GET", path, None)
    }

    pub fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call("POST", path, Some(&body))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
