//! `tresor apply` / `tresor k8s apply` against a real kube-apiserver (with
//! etcd), started per test on loopback. Needs TRESOR_TEST_KUBE_APISERVER and
//! TRESOR_TEST_ETCD, which `scripts/test` sets (scripts/setup/kube.sh).
#![cfg(feature = "kubernetes")]

use crate::util;
use crate::util::{Cluster, WORKLOADS};
use std::path::PathBuf;

const EXAMPLE: &str = include_str!("../../../../examples/mlops-platform/tresor.yaml");

struct Project {
    tmp: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Project {
    fn new(cluster: &Cluster) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("repo")).unwrap();
        Self {
            tmp,
            kubeconfig: cluster.kubeconfig.clone(),
        }
    }

    fn spec(&self, text: &str) {
        std::fs::write(self.tmp.path().join("repo/tresor.yaml"), text).unwrap();
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = util::tresor()
            .current_dir(self.tmp.path().join("repo"))
            .env("HOME", self.tmp.path().join("home"))
            .env("XDG_CONFIG_HOME", self.tmp.path().join("config"))
            .env("KUBECONFIG", &self.kubeconfig)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{args:?}:\n{out}\n{err}");
        out
    }

    fn value(&self, path: &str, field: &str) -> String {
        let store = self.tmp.path().join("repo/.tresor");
        self.ok(&[
            "--store",
            store.to_str().unwrap(),
            "kv",
            "get",
            &format!("-field={field}"),
            path,
        ])
        .trim_end()
        .to_owned()
    }
}

fn with_context(spec: &str, context: &str) -> String {
    spec.replace(
        "kubernetes:\n",
        &format!("kubernetes:\n  context: {context}\n"),
    )
}

fn restarted_at(cluster: &Cluster, workload: &str) -> String {
    cluster.restarted_at("mlops", workload)
}

fn secret_field(cluster: &Cluster, name: &str, path: &str) -> String {
    cluster.kubectl_ok(&[
        "get",
        "secret",
        name,
        "-n",
        "mlops",
        "-o",
        &format!("jsonpath={path}"),
    ])
}

/// A key's decoded value, as the cluster holds it.
fn secret_value(cluster: &Cluster, name: &str, key: &str) -> String {
    let template = format!("go-template={{{{index .data \"{key}\" | base64decode}}}}");
    cluster.kubectl_ok(&["get", "secret", name, "-n", "mlops", "-o", &template])
}

#[test]
fn apply_delivers_then_changes_nothing_then_restarts_exactly_the_consumers() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = Cluster::start();
    cluster.kubectl_apply(WORKLOADS);
    let p = Project::new(&cluster);
    p.spec(&with_context(EXAMPLE, "admin"));

    let started = std::time::Instant::now();
    let out = p.ok(&["apply", "-f", "tresor.yaml"]);
    eprintln!("apply + delivery of the example: {:?}", started.elapsed());
    for line in [
        "secret/api-secrets created",
        "secret/mlflow-secrets created",
        "secret/postgres-admin created",
    ] {
        assert!(out.contains(line), "{line} missing:\n{out}");
    }
    let pg = p.value("secret/postgres-secrets", "postgres-password");
    assert!(!out.contains(&pg), "a value was printed");
    assert_eq!(secret_value(&cluster, "mlflow-secrets", "db-password"), pg);
    assert_eq!(
        secret_value(&cluster, "postgres-admin", "password"),
        p.value("secret/postgres-admin", "password")
    );
    assert!(
        !out.contains("secret/postgres-secrets"),
        "kept in the store only: {out}"
    );
    assert_eq!(
        secret_field(
            &cluster,
            "mlflow-secrets",
            "{.metadata.labels.app\\.kubernetes\\.io/managed-by}"
        ),
        "tresor"
    );
    let hash = secret_field(
        &cluster,
        "mlflow-secrets",
        "{.metadata.annotations.tresor\\.dev/content-hash}",
    );
    assert!(hash.starts_with("sha256-") && !hash.contains(&pg));
    let managers = secret_field(
        &cluster,
        "mlflow-secrets",
        "{.metadata.managedFields[*].manager}",
    );
    assert_eq!(managers, "tresor");
    let operation = secret_field(
        &cluster,
        "mlflow-secrets",
        "{.metadata.managedFields[*].operation}",
    );
    assert_eq!(operation, "Apply", "server-side apply");
    assert_eq!(
        restarted_at(&cluster, "deployment/mlflow-server"),
        "",
        "a new Secret restarts nothing"
    );

    let version = secret_field(&cluster, "mlflow-secrets", "{.metadata.resourceVersion}");
    let out = p.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(
        out.contains("No changes: 4 secrets are up to date."),
        "{out}"
    );
    let unchanged = out
        .lines()
        .filter(|l| l.starts_with("secret/") && l.ends_with(" unchanged"));
    assert_eq!(unchanged.count(), 3, "{out}");
    assert!(!out.contains("restarted"), "{out}");
    assert_eq!(
        secret_field(&cluster, "mlflow-secrets", "{.metadata.resourceVersion}"),
        version
    );

    // A literal of postgres-admin changes: its one consumer restarts, no other.
    p.spec(
        &with_context(EXAMPLE, "admin")
            .replace("database: {value: mlflow}", "database: {value: mlflow_v2}"),
    );
    let out = p.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(out.contains("secret/postgres-admin configured"), "{out}");
    assert!(out.contains("statefulset.apps/postgres restarted"), "{out}");
    assert!(
        !out.contains("deployment.apps/mlflow-server restarted"),
        "{out}"
    );
    let stamp = restarted_at(&cluster, "statefulset/postgres");
    assert_eq!(stamp.len(), "2026-11-28T07:29:54Z".len(), "{stamp}");
    assert!(
        stamp.ends_with('Z') && humantime::parse_rfc3339(&stamp).is_ok(),
        "{stamp}"
    );
    assert_eq!(restarted_at(&cluster, "deployment/mlflow-server"), "");
    assert_eq!(restarted_at(&cluster, "deployment/inference-api"), "");
    assert_eq!(
        secret_value(&cluster, "postgres-admin", "database"),
        "mlflow_v2"
    );

    // A secret dropped from the spec stays until --prune; others' Secrets are never touched.
    cluster.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "hand-made",
        "-n",
        "mlops",
        "--from-literal=k=v",
    ]);
    let without_api = EXAMPLE.split("  api-secrets:").next().unwrap().to_owned();
    p.spec(&with_context(&without_api, "admin"));
    let out = p.ok(&["k8s", "apply", "-f", "tresor.yaml"]);
    assert!(
        out.contains("secret/api-secrets is no longer in the spec"),
        "{out}"
    );
    secret_field(&cluster, "api-secrets", "{.metadata.name}");
    let out = p.ok(&["k8s", "apply", "-f", "tresor.yaml", "--prune"]);
    assert!(out.contains("secret/api-secrets pruned"), "{out}");
    assert!(
        !cluster
            .kubectl(&["get", "secret", "api-secrets", "-n", "mlops"])
            .status
            .success()
    );
    secret_field(&cluster, "hand-made", "{.metadata.name}");
}

#[test]
fn rbac_grants_each_consumer_exactly_its_secrets_and_forbidden_is_clear() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = Cluster::start();
    cluster.kubectl_apply(WORKLOADS);
    let p = Project::new(&cluster);
    p.spec(EXAMPLE);
    let out = p.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(
        out.contains("Stored only"),
        "no context: nothing delivered\n{out}"
    );
    assert!(
        !cluster
            .kubectl(&["get", "secret", "mlflow-secrets", "-n", "mlops"])
            .status
            .success()
    );

    let out = p.ok(&[
        "k8s",
        "apply",
        "-f",
        "tresor.yaml",
        "--rbac",
        "--context",
        "admin",
    ]);
    assert!(
        out.contains(
            "role.rbac.authorization.k8s.io/tresor-deployment-mlflow-server serverside-applied"
        ),
        "{out}"
    );
    let can_i = |what: &[&str], who: &str| {
        let mut args = vec!["auth", "can-i"];
        args.extend_from_slice(what);
        let sa = format!("system:serviceaccount:mlops:{who}");
        args.extend_from_slice(&["-n", "mlops", "--as", &sa]);
        String::from_utf8(cluster.kubectl(&args).stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(
        can_i(&["get", "secret/mlflow-secrets"], "mlflow-server"),
        "yes"
    );
    assert_eq!(
        can_i(&["get", "secret/postgres-admin"], "mlflow-server"),
        "no"
    );
    assert_eq!(can_i(&["get", "secret/api-secrets"], "mlflow-server"), "no");
    assert_eq!(can_i(&["list", "secrets"], "mlflow-server"), "no");
    assert_eq!(
        can_i(&["get", "secret/api-secrets"], "inference-api"),
        "yes"
    );
    assert_eq!(can_i(&["get", "secret/postgres-admin"], "postgres"), "yes");

    // alice has no rights: the error names the resource, the namespace and the verb.
    let out = cluster.kubectl(&[
        "auth",
        "can-i",
        "get",
        "secrets",
        "-n",
        "mlops",
        "--context",
        "alice",
    ]);
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), "no");
    let (code, _, err) = p.run(&["k8s", "apply", "-f", "tresor.yaml", "--context", "alice"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("forbidden: may not get secret/"), "{err}");
    assert!(
        err.contains("in namespace mlops") && err.contains("Grant `get` on `secret`"),
        "{err}"
    );

    // A cluster that is down: the error says where it looked.
    let down = p.tmp.path().join("down.kubeconfig");
    let port = util::free_port();
    std::fs::write(
        &down,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: down\n  cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}\ncontexts:\n- name: down\n  context: {{cluster: down, user: u}}\ncurrent-context: down\nusers:\n- name: u\n  user: {{token: t}}\n"),
    )
    .unwrap();
    let p_down = Project {
        tmp: tempfile::tempdir().unwrap(),
        kubeconfig: down,
    };
    std::fs::create_dir_all(p_down.tmp.path().join("repo")).unwrap();
    std::fs::copy(
        p.tmp.path().join("repo/tresor.yaml"),
        p_down.tmp.path().join("repo/tresor.yaml"),
    )
    .unwrap();
    let store = p.tmp.path().join("repo/.tresor");
    let spec_down = EXAMPLE.replace(
        "kubernetes:\n",
        &format!("store: {{path: {}}}\nkubernetes:\n", store.display()),
    );
    p_down.spec(&spec_down);
    let (code, _, err) = p_down.run(&["k8s", "apply", "-f", "tresor.yaml"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "cannot reach the cluster at https://127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[test]
fn doctor_finds_missing_different_unreadable_and_stale_and_fixes_stale() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = Cluster::start();
    cluster.kubectl_apply(WORKLOADS);
    let p = Project::new(&cluster);
    p.spec(&with_context(EXAMPLE, "admin"));
    let (code, _, err) = p.run(&["k8s", "doctor", "-f", "tresor.yaml"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("run `tresor apply -f tresor.yaml` first"),
        "{err}"
    );

    p.ok(&["apply", "-f", "tresor.yaml"]);
    let (code, out, err) = p.run(&["k8s", "doctor", "-f", "tresor.yaml"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("deployment/mlflow-server's service account `mlflow-server` may not get secret/mlflow-secrets in namespace mlops: run `tresor k8s apply -f tresor.yaml --rbac`"), "{out}");
    assert!(err.contains("3 problems found"), "{err}");

    p.ok(&["k8s", "apply", "-f", "tresor.yaml", "--rbac"]);
    let out = p.ok(&["k8s", "doctor", "-f", "tresor.yaml"]);
    assert!(out.contains("No problems found."), "{out}");

    cluster.kubectl_ok(&["delete", "secret", "api-secrets", "-n", "mlops"]);
    cluster.kubectl_ok(&[
        "patch",
        "secret",
        "postgres-admin",
        "-n",
        "mlops",
        "-p",
        "{\"data\":{\"database\":\"eA==\"}}",
    ]);
    let (code, out, _) = p.run(&["k8s", "doctor", "-f", "tresor.yaml"]);
    assert_eq!(code, 1);
    assert!(out.contains("secret/api-secrets is missing in namespace mlops: run `tresor k8s apply -f tresor.yaml`"), "{out}");
    assert!(
        out.contains("secret/postgres-admin in namespace mlops differs from the store"),
        "{out}"
    );
    p.ok(&["k8s", "apply", "-f", "tresor.yaml", "--force-conflicts"]);
    assert!(
        p.ok(&["k8s", "doctor", "-f", "tresor.yaml"])
            .contains("No problems found.")
    );

    // A pod of mlflow-server (no kubelet runs it: the object is enough) that
    // predates the next change of its Secret is stale until restarted.
    cluster.kubectl_apply("apiVersion: v1\nkind: Pod\nmetadata: {name: mlflow-old, namespace: mlops, labels: {app: mlflow}}\nspec: {serviceAccountName: mlflow-server, containers: [{name: m, image: mlflow}]}\n");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    p.spec(&with_context(EXAMPLE, "admin").replace(
        "db-username: {ref: postgres-secrets/postgres-user}",
        "db-username: {value: mlflow2}",
    ));
    let out = p.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(
        out.contains("deployment.apps/mlflow-server restarted"),
        "{out}"
    );
    let (code, out, _) = p.run(&["k8s", "doctor", "-f", "tresor.yaml"]);
    assert_eq!(code, 1);
    assert!(out.contains("deployment/mlflow-server in namespace mlops runs pods started before secret/mlflow-secrets last changed: run `tresor k8s doctor -f tresor.yaml --fix`"), "{out}");
    let out = p.ok(&["k8s", "doctor", "-f", "tresor.yaml", "--fix"]);
    assert!(
        out.contains("deployment.apps/mlflow-server restarted"),
        "{out}"
    );
}
