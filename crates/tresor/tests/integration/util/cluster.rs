//! A real Kubernetes API server for tests: etcd and kube-apiserver (built
//! by scripts/setup/kube.sh) on free loopback ports, with a CA and serving
//! certificate made by openssl and two token users: `admin` (system:masters)
//! and `alice` (no rights at all). Both processes are killed on drop, also
//! when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The namespace and the example platform's three consumers (a Deployment
/// each for MLflow and the inference API, PostgreSQL's StatefulSet). Not
/// every test binary including this module starts workloads.
pub const WORKLOADS: &str = "apiVersion: v1
kind: Namespace
metadata: {name: mlops}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: mlflow-server, namespace: mlops}
spec:
  selector: {matchLabels: {app: mlflow}}
  template:
    metadata: {labels: {app: mlflow}}
    spec: {serviceAccountName: mlflow-server, containers: [{name: mlflow, image: mlflow}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: inference-api, namespace: mlops}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {serviceAccountName: inference-api, containers: [{name: api, image: api}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres, namespace: mlops}
spec:
  serviceName: postgres
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec: {serviceAccountName: postgres, containers: [{name: pg, image: postgres}]}
";

pub struct Cluster {
    dir: tempfile::TempDir,
    etcd: Child,
    apiserver: Child,
    /// How the API server was started, to start it again.
    apiserver_args: Vec<std::ffi::OsString>,
    pub kubeconfig: PathBuf,
    /// etcd's client URL, for reading what the API server stored.
    pub etcd_url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in [&mut self.apiserver, &mut self.etcd] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn binary(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if Path::new(&path).is_file() => path.into(),
        _ => panic!(
            "{var} is not set to a binary: the Kubernetes tests need a real kube-apiserver and etcd. \
             Run them with `scripts/test`, or `eval \"$(scripts/setup/kube.sh)\"` first (it builds \
             kube-apiserver once per machine from Debian's source package)."
        ),
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A cluster whose API server gets these flags too.
    pub fn start_with(extra_apiserver_args: &[&str]) -> Self {
        let apiserver_bin = binary("TRESOR_TEST_KUBE_APISERVER");
        let etcd_bin = binary("TRESOR_TEST_ETCD");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=tresor-test-ca",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(d.join("ext.cnf"), "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n").unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        openssl(d, &["genrsa", "-out", "sa.key", "2048"]);
        openssl(d, &["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
        std::fs::write(
            d.join("tokens.csv"),
            "admin-token,admin,1,\"system:masters\"\nalice-token,alice,2\n",
        )
        .unwrap();

        let (client, peer, secure) = (super::free_port(), super::free_port(), super::free_port());
        let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
        let etcd = Command::new(etcd_bin)
            .args(["--name", "tresor-test", "--data-dir"])
            .arg(d.join("etcd"))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args([
                "--advertise-client-urls",
                &format!("http://127.0.0.1:{client}"),
            ])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{peer}"),
            ])
            .args([
                "--initial-cluster",
                &format!("tresor-test=http://127.0.0.1:{peer}"),
            ])
            .stdout(Stdio::null())
            .stderr(log("etcd.log"))
            .spawn()
            .expect("etcd starts");
        let mut apiserver = Command::new(&apiserver_bin);
        apiserver
            .args(["--etcd-servers", &format!("http://127.0.0.1:{client}")])
            .args([
                "--bind-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
            ])
            .args(["--secure-port", &secure.to_string()])
            .args(["--endpoint-reconciler-type", "none"])
            .arg("--tls-cert-file")
            .arg(d.join("server.crt"))
            .arg("--tls-private-key-file")
            .arg(d.join("server.key"))
            .arg("--token-auth-file")
            .arg(d.join("tokens.csv"))
            .args([
                "--service-account-issuer",
                "https://kubernetes.default.svc.cluster.local",
            ])
            .arg("--service-account-key-file")
            .arg(d.join("sa.pub"))
            .arg("--service-account-signing-key-file")
            .arg(d.join("sa.key"))
            .args(["--authorization-mode", "RBAC"])
            .args(["--service-cluster-ip-range", "10.96.0.0/24"])
            .args(["--disable-admission-plugins", "ServiceAccount"])
            .args(extra_apiserver_args);
        let apiserver_args: Vec<std::ffi::OsString> =
            apiserver.get_args().map(ToOwned::to_owned).collect();
        let apiserver = apiserver
            .stdout(Stdio::null())
            .stderr(log("apiserver.log"))
            .spawn()
            .expect("kube-apiserver starts");

        let ca = d.join("ca.crt");
        let kubeconfig = d.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:{secure}\n    certificate-authority: {ca}\ncontexts:\n- name: admin\n  context: {{cluster: test, user: admin}}\n- name: alice\n  context: {{cluster: test, user: alice}}\ncurrent-context: admin\nusers:\n- name: admin\n  user: {{token: admin-token}}\n- name: alice\n  user: {{token: alice-token}}\n",
                ca = ca.display()
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            dir,
            etcd,
            apiserver,
            apiserver_args,
            kubeconfig,
            etcd_url: format!("http://127.0.0.1:{client}"),
        };
        cluster.wait_ready();
        cluster
    }

    /// Stops the API server and starts it again with the same flags (and
    /// so with empty caches), waiting until it is ready.
    pub fn restart_apiserver(&mut self) {
        let _ = self.apiserver.kill();
        let _ = self.apiserver.wait();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.path().join("apiserver.log"))
            .unwrap();
        self.apiserver = Command::new(binary("TRESOR_TEST_KUBE_APISERVER"))
            .args(&self.apiserver_args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("kube-apiserver starts again");
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let out = self.kubectl(&["get", "--raw", "/readyz"]);
            if out.status.success() {
                return;
            }
            if let Ok(Some(status)) = self.apiserver.try_wait() {
                panic!(
                    "kube-apiserver exited ({status}):\n{}",
                    self.log("apiserver.log")
                );
            }
            if Instant::now() >= deadline {
                let checks = self.kubectl(&["get", "--raw", "/readyz?verbose"]);
                panic!(
                    "kube-apiserver not ready after 90 s:\n{}\n{}{}",
                    self.log("apiserver.log"),
                    String::from_utf8_lossy(&checks.stdout),
                    String::from_utf8_lossy(&checks.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        text.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// kubectl against this cluster (as admin unless `--context alice` is given).
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .expect("kubectl runs")
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// When a workload (`deployment/NAME`) was last restarted as `kubectl
    /// rollout restart` does; empty if never.
    pub fn restarted_at(&self, namespace: &str, workload: &str) -> String {
        self.kubectl_ok(&[
            "get",
            workload,
            "-n",
            namespace,
            "-o",
            "jsonpath={.spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt}",
        ])
    }

    /// Feeds a manifest to `kubectl apply -f -`.
    pub fn kubectl_apply(&self, manifest: &str) {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.kubeconfig)
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(manifest.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
