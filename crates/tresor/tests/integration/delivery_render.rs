//! `tresor k8s render` for secrets delivered to AWS and Vault: the
//! SecretProviderClasses validated by kubectl against the schema of the CSI
//! driver's CRD installed in a real kube-apiserver, the Vault Agent patches
//! applied to real workloads, and the policies enforced by a real `tresor
//! server`.
#![cfg(feature = "kubernetes")]

use crate::util;
use crate::util::Cluster;
use serde_json::{Value, json};
use std::path::Path;

const PLAIN: &str = include_str!("../../../../examples/mlops-platform/tresor.yaml");
const AWS: &str = include_str!("../../../../examples/mlops-platform-aws/tresor.yaml");
const VAULT: &str = include_str!("../../../../examples/mlops-platform-vault/tresor.yaml");

/// The Secrets Store CSI driver's SecretProviderClass resource, written
/// from its documented API (secrets-store.csi.x-k8s.io/v1): a provider
/// name, its string parameters, the Kubernetes Secrets to sync, and the
/// pods using it in the status. kubectl's strict validation refuses any
/// field this schema does not declare.
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: secretproviderclasses.secrets-store.csi.x-k8s.io}
spec:
  group: secrets-store.csi.x-k8s.io
  scope: Namespaced
  names: {kind: SecretProviderClass, listKind: SecretProviderClassList, plural: secretproviderclasses, singular: secretproviderclass}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          apiVersion: {type: string}
          kind: {type: string}
          metadata: {type: object}
          spec:
            type: object
            properties:
              provider: {type: string}
              parameters: {type: object, additionalProperties: {type: string}}
              secretObjects:
                type: array
                items:
                  type: object
                  properties:
                    secretName: {type: string}
                    type: {type: string}
                    labels: {type: object, additionalProperties: {type: string}}
                    annotations: {type: object, additionalProperties: {type: string}}
                    data:
                      type: array
                      items:
                        type: object
                        properties:
                          objectName: {type: string}
                          key: {type: string}
          status:
            type: object
            properties:
              byPod:
                type: array
                items:
                  type: object
                  properties:
                    id: {type: string}
                    namespace: {type: string}
";

const WORKLOADS: &str = "apiVersion: v1
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
    spec: {containers: [{name: mlflow, image: mlflow}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: postgres, namespace: mlops}
spec:
  serviceName: postgres
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec: {containers: [{name: pg, image: postgres}]}
";

fn tresor(dir: &Path, args: &[&str]) -> String {
    let out = util::tresor()
        .args(args)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("VAULT_ADDR", "https://vault.example:8200")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Renders `spec` into `dir/out` from the values a plain apply stored.
fn render(dir: &Path, spec: &str) -> std::path::PathBuf {
    let file = dir.join("tresor.yaml");
    std::fs::write(&file, PLAIN).unwrap();
    tresor(dir, &["apply", "-f", file.to_str().unwrap()]);
    std::fs::write(&file, spec).unwrap();
    let out = dir.join("out");
    tresor(
        dir,
        &[
            "k8s",
            "render",
            "-f",
            file.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    out
}

/// `kubectl ARGS --dry-run=client -o json`: the object as kubectl understood it.
fn dry_run(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--dry-run=client", "-o", "json"]);
    serde_json::from_str(&cluster.kubectl_ok(&all)).unwrap()
}

/// `kubectl apply -f FILE`, dry run, validated against the CRD's schema
/// as the apiserver publishes it. Not for real: the test apiserver (1.20.2
/// built with Go 1.19 by scripts/setup/kube.sh) dies with SIGSEGV decoding
/// any custom resource (its vendored modern-go/reflect2 1.0.1 predates Go
/// 1.18), so creating one, or a server-side dry run, would kill it.
fn dry_apply(cluster: &Cluster, file: &Path) -> Value {
    dry_run(
        cluster,
        &["apply", "--validate=strict", "-f", file.to_str().unwrap()],
    )
}

fn cluster_with_crd() -> Cluster {
    let cluster = Cluster::start();
    cluster.kubectl_apply(CRD);
    cluster.kubectl_ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout=60s",
        "crd/secretproviderclasses.secrets-store.csi.x-k8s.io",
    ]);
    // kubectl validates against the apiserver's OpenAPI document, which
    // takes the CRD's schema in a few seconds after it is established.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !cluster
        .kubectl(&["explain", "secretproviderclasses.spec.secretObjects.data"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the CRD's schema never reached the OpenAPI document"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    cluster.kubectl_apply(WORKLOADS);
    cluster
}

#[test]
fn aws_secret_provider_classes_are_accepted_by_kubectl() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = cluster_with_crd();
    let dir = tempfile::tempdir().unwrap();
    let out = render(dir.path(), AWS);
    let file = out.join("mlops.mlflow-server-aws.secretproviderclass.yaml");
    let spc = dry_apply(&cluster, &file);
    assert_eq!(spc["kind"], "SecretProviderClass");
    // The validation is the CRD's: a field it does not declare is refused.
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("parameters:", "parameter:"),
    )
    .unwrap();
    let refused = cluster.kubectl(&[
        "apply",
        "--validate=strict",
        "--dry-run=client",
        "-f",
        typo.to_str().unwrap(),
    ]);
    assert!(
        !refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("parameter"),
        "{refused:?}"
    );
    assert_eq!(spc["metadata"]["namespace"], "mlops");
    assert_eq!(spc["spec"]["provider"], "aws");
    assert_eq!(spc["spec"]["parameters"]["region"], "eu-west-1");
    let objects = spc["spec"]["parameters"]["objects"].as_str().unwrap();
    assert!(
        objects.contains("objectName: mlops-platform/mlflow/db-credentials")
            && objects.contains("objectType: secretsmanager")
            && objects.contains("path: password")
            && objects.contains("objectAlias: db-password"),
        "{objects}"
    );
    let api = dry_apply(
        &cluster,
        &out.join("mlops.inference-api-aws.secretproviderclass.yaml"),
    );
    let objects = api["spec"]["parameters"]["objects"].as_str().unwrap();
    // The JMESPath `"api-key"` (a quoted identifier), as a YAML string.
    assert!(objects.contains(r#"path: "\"api-key\"""#), "{objects}");
    assert!(
        !std::fs::read_dir(&out).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".hcl")),
        "no Vault policy for an AWS-only platform"
    );
}

#[test]
fn vault_manifests_are_accepted_and_the_policies_hold() {
    util::need!("TRESOR_TEST_KUBE_APISERVER", "TRESOR_TEST_ETCD");
    let cluster = cluster_with_crd();
    let dir = tempfile::tempdir().unwrap();
    let out = render(dir.path(), VAULT);

    let spc = dry_apply(
        &cluster,
        &out.join("mlops.mlflow-server-vault.secretproviderclass.yaml"),
    );
    assert_eq!(spc["spec"]["provider"], "vault");
    let parameters = &spc["spec"]["parameters"];
    assert_eq!(parameters["roleName"], "mlflow-server");
    assert_eq!(parameters["vaultAddress"], "https://vault.example:8200");
    let objects = parameters["objects"].as_str().unwrap();
    assert!(
        objects.contains("secretPath: mlops-platform/data/mlflow")
            && objects.contains("secretKey: db-password")
            && objects.contains("objectName: db-username"),
        "{objects}"
    );

    let patch = out.join("mlops.deployment-mlflow-server.vault-agent.patch.yaml");
    let patched = dry_run(
        &cluster,
        &[
            "patch",
            "deployment",
            "mlflow-server",
            "-n",
            "mlops",
            "--patch-file",
            patch.to_str().unwrap(),
        ],
    );
    let annotations = &patched["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["vault.hashicorp.com/agent-inject"], "true");
    assert_eq!(annotations["vault.hashicorp.com/role"], "mlflow-server");
    assert_eq!(
        annotations["vault.hashicorp.com/agent-inject-secret-mlflow-secrets"],
        "mlops-platform/data/mlflow"
    );
    let template = annotations["vault.hashicorp.com/agent-inject-template-mlflow-secrets"]
        .as_str()
        .unwrap();
    assert!(
        template.contains(r#"{{- with secret "mlops-platform/data/mlflow" -}}"#)
            && template.contains(r#"DB_PASSWORD={{ index .Data.data "db-password" }}"#)
            && template.contains(r#"DB_USERNAME={{ index .Data.data "db-username" }}"#),
        "{template}"
    );
    let sts = out.join("mlops.statefulset-postgres.vault-agent.patch.yaml");
    cluster.kubectl_ok(&[
        "patch",
        "statefulset",
        "postgres",
        "-n",
        "mlops",
        "--patch-file",
        sts.to_str().unwrap(),
    ]);
    let live: Value = serde_json::from_str(&cluster.kubectl_ok(&[
        "get",
        "statefulset",
        "postgres",
        "-n",
        "mlops",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(
        live["spec"]["template"]["metadata"]["annotations"]["vault.hashicorp.com/role"],
        "postgres"
    );

    // The policy, enforced by a real server: read on its own path only.
    let hcl =
        std::fs::read_to_string(out.join("mlops-platform-mlops-mlflow-server.vault-policy.hcl"))
            .unwrap();
    assert!(hcl.contains("path \"mlops-platform/data/mlflow\""), "{hcl}");
    assert!(!hcl.contains("postgres"), "{hcl}");
    let server = util::TestServer::dev();
    let root = server.client(&server.root_token);
    let (status, body) = root.post(
        "sys/mounts/mlops-platform",
        json!({"type": "kv", "options": {"version": "2"}}),
    );
    assert!(status < 300, "{body}");
    for path in ["mlflow", "postgres"] {
        let (status, body) = root.post(
            &format!("mlops-platform/data/{path}"),
            json!({"data": {"k": "v"}}),
        );
        assert!(status < 300, "{body}");
    }
    let (status, body) = root.post("sys/policies/acl/mlflow-server", json!({"policy": hcl}));
    assert!(status < 300, "{body}");
    let (_, created) = root.post("auth/token/create", json!({"policies": ["mlflow-server"]}));
    let consumer = server.client(created["auth"]["client_token"].as_str().unwrap());
    assert_eq!(consumer.get("mlops-platform/data/mlflow").0, 200);
    assert_eq!(consumer.get("mlops-platform/data/postgres").0, 403);
    assert_eq!(
        consumer
            .post("mlops-platform/data/mlflow", json!({"data": {"k": "w"}}))
            .0,
        403
    );
}
