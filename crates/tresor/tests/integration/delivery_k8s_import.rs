//! `tresor import --from kubernetes` against a real kube-apiserver: Secrets
//! made with kubectl are read into the store, the proposed tresor.yaml
//! entries keep delivering them where they are (an apply adopts them
//! without a new value), no value is ever printed, and bad input (a name
//! two namespaces share, a binary value, a missing Secret) imports nothing.
#![cfg(feature = "kubernetes")]

use crate::util;
use crate::util::{Cluster, WORKLOADS};
use std::path::{Path, PathBuf};
use std::process::Output;

const PASSWORD: &str = "pw-Before-Tresor-7f3Kq9zX!";
const CONFIG: &str = "{\"url\": \"https://reports.internal\",\n \"token\": \"tok-Q7z-41c9\"}\n";
const API_KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

struct Project {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Project {
    fn new(cluster: &Cluster) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            kubeconfig: cluster.kubeconfig.clone(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("tresor.yaml")
    }

    fn run(&self, args: &[&str]) -> Output {
        util::tresor()
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .unwrap()
    }

    fn import(&self, names: &[&str]) -> Output {
        let file = self.file();
        let mut args = vec![
            "import",
            "--from",
            "kubernetes",
            "-f",
            file.to_str().unwrap(),
        ];
        args.extend(names);
        self.run(&args)
    }

    /// A key's value as the store holds it.
    fn stored(&self, secret: &str, key: &str) -> String {
        let store = self.dir.path().join(".tresor");
        let out = self.run(&[
            "--store",
            store.to_str().unwrap(),
            "kv",
            "get",
            &format!("-field={key}"),
            &format!("secret/{secret}"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap().trim_end().to_owned()
    }

    fn has_store_entry(&self, secret: &str) -> bool {
        let store = self.dir.path().join(".tresor");
        if !store.exists() {
            return false;
        }
        self.run(&[
            "--store",
            store.to_str().unwrap(),
            "kv",
            "get",
            &format!("secret/{secret}"),
        ])
        .status
        .success()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Neither stdout nor stderr holds any of the values.
fn assert_no_value(out: &Output) {
    let shown = text(out);
    for value in [PASSWORD, "tok-Q7z-41c9", "reports.internal", API_KEY] {
        assert!(!shown.contains(value), "`{value}` was printed:\n{shown}");
    }
}

/// A key's decoded value, as the cluster holds it.
fn in_cluster(cluster: &Cluster, ns: &str, name: &str, key: &str) -> String {
    let template = format!("go-template={{{{index .data \"{key}\" | base64decode}}}}");
    cluster.kubectl_ok(&["get", "secret", name, "-n", ns, "-o", &template])
}

/// `kubectl create secret generic NAME -n NS SOURCES...`
fn create_secret(cluster: &Cluster, ns: &str, name: &str, sources: &[&str]) {
    let mut args = vec!["create", "secret", "generic", name, "-n", ns];
    args.extend(sources);
    cluster.kubectl_ok(&args);
}

fn secrets(cluster: &Cluster, dir: &Path) {
    cluster.kubectl_apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: mlops}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: reporting}\n",
    );
    let config = dir.join("config.json");
    std::fs::write(&config, CONFIG).unwrap();
    create_secret(
        cluster,
        "mlops",
        "mlflow-secrets",
        &[
            "--from-literal=db-username=mlflow",
            &format!("--from-literal=db-password={PASSWORD}"),
        ],
    );
    create_secret(
        cluster,
        "reporting",
        "reports",
        &[
            &format!("--from-file=config.json={}", config.display()),
            &format!("--from-literal=api-key={API_KEY}"),
        ],
    );
}

#[test]
fn import_reads_secrets_proposes_entries_and_apply_adopts_them() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = Cluster::start();
    let p = Project::new(&cluster);
    secrets(&cluster, p.dir.path());

    let out = p.import(&["mlops/mlflow-secrets", "reporting/reports"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_no_value(&out);
    let proposal = String::from_utf8(out.stdout.clone()).unwrap();
    for line in [
        "  mlflow-secrets:\n    namespace: mlops\n    keys:\n",
        "      db-password: {generate: 'password:26', allow_weak:",
        "  reports:\n    namespace: reporting\n    keys:\n",
        "      api-key: {generate: 'hex:32'}\n",
        "      config.json: {generate: 'password:62'}  # text, not a random string: a rotation would replace it with one\n",
    ] {
        assert!(proposal.contains(line), "`{line}` missing:\n{proposal}");
    }
    assert!(
        proposal.contains("      db-username: {generate: 'alnum:6', allow_weak:"),
        "a short value is proposed as weak, not hidden: {proposal}"
    );
    assert_eq!(p.stored("mlflow-secrets", "db-password"), PASSWORD);
    assert_eq!(p.stored("mlflow-secrets", "db-username"), "mlflow");
    assert_eq!(p.stored("reports", "api-key"), API_KEY);
    assert_eq!(
        p.stored("reports", "config.json"),
        CONFIG.trim_end(),
        "a multi-line value, kept as it is"
    );

    // The proposal as the spec, each Secret with a consumer: apply keeps every
    // value and takes the Secrets over. `reports` is adopted exactly as it is,
    // so its consumer is not restarted; `mlflow-secrets` was edited in the
    // cluster since the import, so it gets the stored value back and its
    // consumer restarts.
    // mlflow-server (in WORKLOADS) consumes mlflow-secrets; reports-api, reports.
    cluster.kubectl_apply(WORKLOADS);
    cluster.kubectl_apply(
        &WORKLOADS
            .split("---")
            .nth(1)
            .unwrap()
            .replace("mlops", "reporting")
            .replace("mlflow-server", "reports-api"),
    );
    cluster.kubectl_ok(&[
        "patch",
        "secret",
        "mlflow-secrets",
        "-n",
        "mlops",
        "-p",
        "{\"stringData\":{\"db-username\":\"edited\"}}",
    ]);
    let spec = proposal
        .replace(
            "    namespace: mlops\n",
            "    namespace: mlops\n    consumers: [deployment/mlflow-server]\n",
        )
        .replace(
            "    namespace: reporting\n",
            "    namespace: reporting\n    consumers: [deployment/reports-api]\n",
        );
    std::fs::write(
        p.file(),
        format!("version: 1\nname: mlops-platform\nkubernetes:\n  context: admin\n{spec}"),
    )
    .unwrap();
    let file = p.file();
    // The edit made kubectl a field manager of the value: taking it back is
    // a conflict that only --force-conflicts resolves, as with kubectl.
    let applied = p.run(&["apply", "-f", file.to_str().unwrap(), "--force-conflicts"]);
    assert!(applied.status.success(), "{}", text(&applied));
    assert_no_value(&applied);
    assert!(
        text(&applied).contains("No changes") || text(&applied).contains("0 created, 0 updated"),
        "nothing new in the store: {}",
        text(&applied)
    );
    assert_eq!(
        in_cluster(&cluster, "mlops", "mlflow-secrets", "db-password"),
        PASSWORD
    );
    assert_eq!(
        in_cluster(&cluster, "reporting", "reports", "config.json"),
        CONFIG
    );
    assert_eq!(
        in_cluster(&cluster, "mlops", "mlflow-secrets", "db-username"),
        "mlflow"
    );
    assert_eq!(
        cluster.restarted_at("reporting", "deployment/reports-api"),
        ""
    );
    assert_ne!(
        cluster.restarted_at("mlops", "deployment/mlflow-server"),
        ""
    );
    let managed = cluster.kubectl_ok(&[
        "get",
        "secret",
        "reports",
        "-n",
        "reporting",
        "-o",
        "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}",
    ]);
    assert_eq!(managed, "tresor");

    let again = p.import(&["mlops/mlflow-secrets"]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("the spec already declares `mlflow-secrets`"),
        "{}",
        text(&again)
    );
}

#[test]
fn bad_input_imports_nothing() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = Cluster::start();
    let p = Project::new(&cluster);
    secrets(&cluster, p.dir.path());

    // The same name in two namespaces would be one secret in tresor.yaml.
    create_secret(
        &cluster,
        "reporting",
        "mlflow-secrets",
        &["--from-literal=token=other"],
    );
    let out = p.import(&["mlops/mlflow-secrets", "reporting/mlflow-secrets"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`mlflow-secrets` is named twice"),
        "{}",
        text(&out)
    );
    assert_no_value(&out);
    assert!(!p.has_store_entry("mlflow-secrets"), "nothing imported");

    let binary = p.dir.path().join("blob");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x81]).unwrap();
    create_secret(
        &cluster,
        "mlops",
        "keystore",
        &[&format!("--from-file=store.p12={}", binary.display())],
    );
    let out = p.import(&["mlops/mlflow-secrets", "mlops/keystore"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("key `store.p12` of Secret `mlops/keystore` is binary"),
        "{}",
        text(&out)
    );
    assert!(!p.has_store_entry("mlflow-secrets"), "nothing imported");

    let out = p.import(&["mlops/missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("there is no Secret `mlops/missing`"),
        "{}",
        text(&out)
    );

    let out = p.import(&["mlflow-secrets"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("must be NAMESPACE/NAME"),
        "{}",
        text(&out)
    );
}
