//! `tresor k8s render` prints, for the example's stored values, exactly what
//! the installed kubectl prints for the same `--from-literal`s.
#![cfg(feature = "kubernetes")]

use crate::util;
use std::path::Path;

const EXAMPLE: &str = include_str!("../../../../examples/mlops-platform/tresor.yaml");

fn tresor(dir: &Path, args: &[&str]) -> String {
    let out = util::tresor()
        .current_dir(dir.join("repo"))
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kubectl(name: &str, literals: &[(&str, &str)]) -> String {
    let mut args = vec![
        "create".to_owned(),
        "secret".into(),
        "generic".into(),
        name.into(),
        "-n".into(),
        "mlops".into(),
        "--dry-run=client".into(),
        "-o".into(),
        "yaml".into(),
    ];
    args.extend(
        literals
            .iter()
            .map(|(k, v)| format!("--from-literal={k}={v}")),
    );
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", "/nonexistent")
        .args(&args)
        .output()
        .expect("kubectl is installed on these machines");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn render_matches_kubectl_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("repo")).unwrap();
    std::fs::write(tmp.path().join("repo/tresor.yaml"), EXAMPLE).unwrap();
    tresor(tmp.path(), &["apply", "-f", "tresor.yaml"]);
    let store = tmp.path().join("repo/.tresor");
    let get = |path: &str, field: &str| {
        let f = format!("-field={field}");
        let args = ["--store", store.to_str().unwrap(), "kv", "get", &f, path];
        tresor(tmp.path(), &args).trim_end().to_owned()
    };
    let pg = get("secret/postgres-secrets", "postgres-password");
    let admin = get("secret/postgres-admin", "password");
    let api = get("secret/api-secrets", "api-key");

    let out = tmp.path().join("out");
    let listing = tresor(
        tmp.path(),
        &[
            "k8s",
            "render",
            "-f",
            "tresor.yaml",
            "-o",
            out.to_str().unwrap(),
            "--rbac",
            "--env",
        ],
    );
    assert!(!listing.contains(&pg) && !listing.contains(&admin));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap();
    assert_eq!(
        read("mlops.mlflow-secrets.secret.yaml"),
        kubectl(
            "mlflow-secrets",
            &[("db-username", "mlflow_a"), ("db-password", &pg)]
        )
    );
    assert_eq!(
        read("mlops.postgres-admin.secret.yaml"),
        kubectl(
            "postgres-admin",
            &[
                ("username", "postgres"),
                ("password", &admin),
                ("database", "mlflow")
            ]
        )
    );
    assert!(
        !out.join("mlops.postgres-secrets.secret.yaml").exists(),
        "kept in the store only"
    );
    assert_eq!(
        read("mlops.api-secrets.secret.yaml"),
        kubectl("api-secrets", &[("api-key", &api)])
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("mlops.api-secrets.secret.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let rbac = read("rbac.yaml");
    assert!(rbac.contains("kind: Role\nmetadata:\n  labels:\n    app.kubernetes.io/managed-by: tresor\n  name: tresor-deployment-mlflow-server\n  namespace: mlops\nrules:\n- apiGroups:\n  - \"\"\n  resourceNames:\n  - mlflow-secrets\n  resources:\n  - secrets\n  verbs:\n  - get\n"), "{rbac}");
    let env = read("env.yaml");
    assert!(env.contains("  - name: DB_PASSWORD\n    valueFrom:\n      secretKeyRef:\n        key: db-password\n        name: mlflow-secrets\n"), "{env}");
}
