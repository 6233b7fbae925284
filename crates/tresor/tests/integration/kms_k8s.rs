//! tresor as the KMS provider of a real kube-apiserver (1.20, KMS API
//! v1beta1): the API server is started with the EncryptionConfiguration
//! `tresor k8s render --kms` prints, and `tresor k8s kms-plugin` wraps its
//! data keys with a transit key of an embedded store. What etcd holds is
//! read with etcdctl: the `k8s:enc:kms:v1:tresor:` prefix and a wrapped key,
//! never a value. Then: an etcd snapshot holds no value either; the plugin
//! stopped (or its store unopenable) makes writes fail with a clear error
//! and nothing lost; a rotated transit key wraps new Secrets, Secrets
//! written again move to it, and once old versions are refused every Secret
//! still reads.
#![cfg(feature = "kubernetes")]

use crate::util;
use crate::util::Cluster;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const VALUE: &str = "pw-In-Etcd-Never-9f3KqZ";
const SECOND: &str = "second-Value-Q7z41c9X";

struct Store {
    dir: tempfile::TempDir,
}

impl Store {
    fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("store.key")
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("kms.sock")
    }

    fn tresor(&self, args: &[&str]) -> Output {
        util::tresor()
            .arg("--store")
            .arg(self.path())
            .arg("--key-file")
            .arg(self.key_file())
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env_remove("TRESOR_ADDR")
            .env_remove("VAULT_ADDR")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.tresor(args);
        assert!(out.status.success(), "tresor {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn plugin(&self, health: u16) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("plugin.log"))
            .unwrap();
        let child = util::tresor()
            .arg("--store")
            .arg(self.path())
            .arg("--key-file")
            .arg(self.key_file())
            .args(["k8s", "kms-plugin", "--key", "k8s", "--socket"])
            .arg(self.socket())
            .args(["--healthz", &format!("127.0.0.1:{health}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.socket().exists() {
            assert!(Instant::now() < deadline, "no socket:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("plugin.log")).unwrap_or_default()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stop(mut plugin: Child, socket: &Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &plugin.id().to_string()])
        .status();
    let _ = plugin.wait();
    assert!(
        !socket.exists(),
        "the plugin removes its socket when it stops"
    );
}

fn etcd_value(etcdctl: &Path, cluster: &Cluster, name: &str) -> Vec<u8> {
    let out = Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &cluster.etcd_url,
            "get",
            "--print-value-only",
        ])
        .arg(format!("/registry/secrets/default/{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "etcdctl: {}", text(&out));
    out.stdout
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn secret_value(cluster: &Cluster, name: &str) -> String {
    let b64 = cluster.kubectl_ok(&["get", "secret", name, "-o", "jsonpath={.data.password}"]);
    use std::io::Write;
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b64.as_bytes())
        .unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

fn create(cluster: &Cluster, name: &str, value: &str) -> Output {
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        name,
        &format!("--from-literal=password={value}"),
    ])
}

/// Writes are retried while the API server reconnects to a plugin that
/// came back (gRPC backs off between attempts).
fn create_eventually(cluster: &Cluster, name: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = create(cluster, name, value);
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl create {name}: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn healthz(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn secrets_at_rest_go_through_tresors_kms_plugin() {
    util::need!(
        "TRESOR_TEST_KUBE_APISERVER",
        "TRESOR_TEST_ETCD",
        "TRESOR_TEST_ETCDCTL"
    );
    let etcdctl = util::service("TRESOR_TEST_ETCDCTL");
    let store = Store {
        dir: tempfile::tempdir().unwrap(),
    };
    store.ok(&["operator", "init"]);
    store.ok(&["secrets", "enable", "transit"]);
    store.ok(&["transit", "create", "k8s"]);
    let health = util::free_port();
    let mut plugin = store.plugin(health);
    assert!(
        healthz(health).starts_with("HTTP/1.1 200"),
        "{}",
        healthz(health)
    );

    let rendered = store.dir.path().join("rendered");
    let out = util::tresor()
        .current_dir(store.dir.path())
        .args(["k8s", "render", "--kms", "--kms-socket"])
        .arg(store.socket())
        .arg("-o")
        .arg(&rendered)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let config = rendered.join("encryption-config.yaml");
    let mut cluster =
        Cluster::start_with(&["--encryption-provider-config", config.to_str().unwrap()]);

    // Stored wrapped, read back whole.
    let out = create(&cluster, "db", VALUE);
    assert!(out.status.success(), "{}\n{}", text(&out), store.log());
    let stored = etcd_value(&etcdctl, &cluster, "db");
    assert!(
        stored.starts_with(b"k8s:enc:kms:v1:tresor:"),
        "{}",
        String::from_utf8_lossy(&stored)
    );
    assert!(
        contains(&stored, b"vault:v1:"),
        "the data key is wrapped by version 1"
    );
    assert!(!contains(&stored, VALUE.as_bytes()));
    assert_eq!(secret_value(&cluster, "db"), VALUE);

    // A snapshot of etcd holds no value in any form.
    let snapshot = store.dir.path().join("etcd.snapshot");
    let out = Command::new(&etcdctl)
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &cluster.etcd_url, "snapshot", "save"])
        .arg(&snapshot)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&snapshot).unwrap();
    assert!(bytes.len() > 1000);
    assert!(!contains(&bytes, VALUE.as_bytes()));
    let b64 = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let b64 = {
        use std::io::Write;
        let mut b64 = b64;
        b64.stdin
            .take()
            .unwrap()
            .write_all(VALUE.as_bytes())
            .unwrap();
        b64.wait_with_output().unwrap().stdout
    };
    assert!(!contains(&bytes, &b64));

    // Plugin stopped: writes fail and say why; the cached data key still reads.
    stop(plugin, &store.socket());
    let refused = create(&cluster, "second", SECOND);
    assert!(!refused.status.success());
    let why = text(&refused);
    assert!(
        why.contains("rpc error") || why.contains("deadline") || why.contains("Timeout"),
        "{why}"
    );
    assert!(cluster.kubectl(&["get", "secret", "second"]).status.code() != Some(0));
    assert_eq!(secret_value(&cluster, "db"), VALUE);
    plugin = store.plugin(health);
    create_eventually(&cluster, "second", SECOND);
    assert_eq!(secret_value(&cluster, "second"), SECOND);

    // A store the plugin cannot open (its key file gone): the error says so.
    let hidden = store.dir.path().join("hidden.key");
    std::fs::rename(store.key_file(), &hidden).unwrap();
    let refused = create(&cluster, "third", "x");
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("sealed or unavailable"),
        "{}",
        text(&refused)
    );
    assert!(healthz(health).starts_with("HTTP/1.1 503"));
    std::fs::rename(&hidden, store.key_file()).unwrap();
    create_eventually(&cluster, "third", "x");

    // Rotation: new Secrets are wrapped by version 2; rewriting moves the old ones.
    store.ok(&["transit", "rotate", "k8s"]);
    create_eventually(&cluster, "after", "after-rotation");
    assert!(contains(
        &etcd_value(&etcdctl, &cluster, "after"),
        b"vault:v2:"
    ));
    assert!(contains(
        &etcd_value(&etcdctl, &cluster, "db"),
        b"vault:v1:"
    ));
    // An unchanged object is not written again (the API server skips
    // identical updates): a changed annotation makes every Secret new data.
    cluster.kubectl_ok(&[
        "annotate",
        "secrets",
        "--all",
        "--overwrite",
        "tresor.dev/rewrapped=transit-v2",
    ]);
    for name in ["db", "second", "third"] {
        let stored = etcd_value(&etcdctl, &cluster, name);
        assert!(contains(&stored, b"vault:v2:"), "{name} rewrapped");
    }
    // Version 1 refused, caches dropped: everything still reads.
    store.ok(&["transit", "config", "k8s", "--min-decryption-version", "2"]);
    cluster.restart_apiserver();
    assert_eq!(secret_value(&cluster, "db"), VALUE);
    assert_eq!(secret_value(&cluster, "second"), SECOND);
    assert_eq!(secret_value(&cluster, "after"), "after-rotation");
    stop(plugin, &store.socket());
    assert!(!store.log().contains(VALUE));
}
