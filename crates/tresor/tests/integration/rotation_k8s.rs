//! `tresor rotate` delivering to a real kube-apiserver (with etcd, started
//! per test on loopback, as in platform_k8s.rs): the Secret holds exactly
//! what the store holds, the consumers get their restart annotation, and a
//! delivery that fails while the API server is down keeps the rotation
//! marked undelivered until the next run delivers it. Needs
//! TRESOR_TEST_KUBE_APISERVER and TRESOR_TEST_ETCD (scripts/setup/kube.sh).
#![cfg(feature = "kubernetes")]

use crate::util;
use crate::util::Repo;
use crate::util::{Cluster, WORKLOADS};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLE: &str = include_str!("../../../../examples/mlops-platform/tresor.yaml");

/// The example platform, delivered to the test cluster's `admin` context,
/// MLflow's login rotated by `generate` (no database here).
fn repo() -> Repo {
    Repo::new(
        &util::generate_rotated(EXAMPLE)
            .replace("kubernetes:\n", "kubernetes:\n  context: admin\n"),
    )
}

/// A key's bytes as the cluster's Secret holds them (decoded from `.data`).
fn cluster_bytes(cluster: &Cluster, name: &str, key: &str) -> Vec<u8> {
    let template = format!("go-template={{{{index .data \"{key}\"}}}}");
    let encoded = cluster.kubectl_ok(&["get", "secret", name, "-n", "mlops", "-o", &template]);
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(encoded.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success(), "base64 -d of {name}/{key}");
    out.stdout
}

fn restarted_at(cluster: &Cluster, workload: &str) -> String {
    cluster.restarted_at("mlops", workload)
}

/// The kube-apiserver this test process started: its pid and command line
/// (read from /proc, as platform_support keeps its child to itself).
fn apiserver() -> (u32, Vec<String>) {
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((head, tail)) = stat.rsplit_once(") ") else {
            continue;
        };
        let parent = tail.split(' ').nth(1);
        if head.ends_with("(kube-apiserver") && parent == Some(me.as_str()) {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
            let args = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8(a.to_vec()).unwrap())
                .collect();
            return (pid, args);
        }
    }
    panic!("no kube-apiserver child of this test process");
}

/// A kube-apiserver started again with the same arguments (same etcd,
/// same port and certificates); killed on drop.
struct Restarted(Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_ready(cluster: &Cluster, up: bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while cluster
        .kubectl(&["get", "--raw", "/readyz"])
        .status
        .success()
        != up
    {
        assert!(
            Instant::now() < deadline,
            "kube-apiserver not {} after 90 s",
            if up { "ready" } else { "down" }
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn rotate_delivers_restarts_consumers_and_redelivers_after_an_apiserver_outage() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = Cluster::start();
    cluster.kubectl_apply(WORKLOADS);
    let kube = [("KUBECONFIG", cluster.kubeconfig.display().to_string())];
    let repo = repo();
    repo.ok_env(&kube, &["apply", "-f", "tresor.yaml"]);
    let before = repo.get("postgres-secrets", "postgres-password");
    assert_eq!(
        cluster_bytes(&cluster, "mlflow-secrets", "db-password"),
        before.as_bytes()
    );

    // Rotation: a new version in the store, the same bytes in the cluster
    // in the secret referring to it (the rotated one stays in the store),
    // and exactly its consumers restarted.
    let out = repo.ok_env(&kube, &["rotate", "-f", "tresor.yaml", "postgres-secrets"]);
    let after = repo.get("postgres-secrets", "postgres-password");
    assert_ne!(after, before);
    assert!(
        !out.contains(&after) && !out.contains(&before),
        "a value was printed"
    );
    for line in [
        "postgres-secrets: rotated; version 2 is current",
        "mlflow-secrets: follows `postgres-secrets` (a reference)",
        "secret/mlflow-secrets configured",
        "deployment.apps/mlflow-server restarted",
    ] {
        assert!(out.contains(line), "{line} missing:\n{out}");
    }
    assert!(!out.contains("inference-api"), "{out}");
    assert!(!out.contains("statefulset.apps/postgres"), "{out}");
    assert!(
        !out.contains("secret/postgres-secrets"),
        "kept out of the cluster: {out}"
    );
    assert!(!out.contains("no longer in the spec"), "{out}");
    assert_eq!(
        cluster_bytes(&cluster, "mlflow-secrets", "db-password"),
        after.as_bytes()
    );
    assert_eq!(repo.get("mlflow-secrets", "db-password"), after);
    let stamp = restarted_at(&cluster, "deployment/mlflow-server");
    assert!(humantime::parse_rfc3339(&stamp).is_ok(), "{stamp}");
    assert_eq!(restarted_at(&cluster, "deployment/inference-api"), "");
    assert_eq!(restarted_at(&cluster, "statefulset/postgres"), "");
    assert_eq!(
        repo.status_row(&kube, "postgres-secrets")["undelivered"],
        false
    );

    // The API server goes down: the rotation completes in the store, the
    // run says the delivery failed and exits non-zero, the record keeps
    // the rotation marked undelivered.
    let api_before = repo.get("api-secrets", "api-key");
    let (pid, args) = apiserver();
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_ready(&cluster, false);
    let (code, out, err) = repo.run_env(&kube, &["rotate", "-f", "tresor.yaml", "api-secrets"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("api-secrets: rotated; version 2 is current"),
        "{out}"
    );
    assert!(
        err.contains("rotated and stored, but not delivered to the cluster"),
        "{err}"
    );
    assert!(err.contains("tresor rotate --due"), "{err}");
    let api_after = repo.get("api-secrets", "api-key");
    assert_ne!(api_after, api_before);
    assert!(!err.contains(&api_after) && !out.contains(&api_after));
    let row = repo.status_row(&kube, "api-secrets");
    assert_eq!(row["undelivered"], true, "{row}");
    assert_eq!(row["version"], 2, "{row}");
    let table = repo.ok_env(&kube, &["status", "-f", "tresor.yaml"]);
    let line = table
        .lines()
        .find(|l| l.starts_with("api-secrets "))
        .unwrap();
    assert!(line.contains("not delivered"), "{table}");

    // Back up: the cluster still holds the old value until the next run,
    // which has nothing due but delivers what is marked undelivered.
    let _apiserver = Restarted(
        Command::new(&args[0])
            .args(&args[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(&cluster, true);
    assert_eq!(
        cluster_bytes(&cluster, "api-secrets", "api-key"),
        api_before.as_bytes()
    );
    assert_eq!(restarted_at(&cluster, "deployment/inference-api"), "");
    let out = repo.ok_env(&kube, &["rotate", "-f", "tresor.yaml", "--due"]);
    assert!(out.contains("Nothing is due"), "{out}");
    assert!(out.contains("secret/api-secrets configured"), "{out}");
    assert!(
        out.contains("deployment.apps/inference-api restarted"),
        "{out}"
    );
    assert_eq!(
        cluster_bytes(&cluster, "api-secrets", "api-key"),
        api_after.as_bytes()
    );
    assert_eq!(
        repo.get("api-secrets", "api-key"),
        api_after,
        "not rotated again"
    );
    assert!(!restarted_at(&cluster, "deployment/inference-api").is_empty());
    assert_eq!(repo.status_row(&kube, "api-secrets")["undelivered"], false);

    // Delivered: a further run has nothing to deliver.
    let out = repo.ok_env(&kube, &["rotate", "-f", "tresor.yaml", "--due"]);
    assert!(!out.contains("secret/"), "{out}");
}
